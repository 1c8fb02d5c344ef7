"""Rendering from the library: segment ids in, audio files out (the I/O edge of rendering).

:func:`render_segments` loads two segments' audio (the track's file, or only the chosen stems),
cuts them on the stored beat grid and hands them to :func:`cratedig.render.engine.render_pair`;
previews are cached by (segments, transform, stems, rate) in the library's artefact folder.
:func:`render_mashup` matches a whole song, plans one partner per phrase
(:func:`cratedig.render.plan.plan_mashup`) and layers every partner over the full song.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.analysis.pipeline import track_id_from_hash
from cratedig.analysis.records import Segment, TrackAnalysis
from cratedig.analysis.structure import LOOP_LABEL
from cratedig.audio.decode import AudioStream, content_hash, decode, decode_region
from cratedig.errors import CratedigError, ParameterError
from cratedig.fileio import check_output, output_path
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.render.engine import (
    DEFAULT_CEILING_DB,
    DEFAULT_MIX_GAIN_DB,
    MAX_SEMITONES,
    PIECE_MARGIN,
    DCBlocker,
    PairRender,
    RenderCache,
    cache_key,
    limit_true_peak_stream,
    render_pair,
)
from cratedig.render.plan import MashupPlan, plan_mashup
from cratedig.theory import tuning_correction

log = logging.getLogger(__name__)

#: Output sample rate of renders.
RENDER_SR = 44100
#: Seconds of candidate audio kept after its segment (Rubber Band context, ragged last beat).
TAIL = 0.5
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", None)}
TEMPO_RATIOS_ALLOWED = (0.5, 1.0, 2.0)
_SEGMENT_ID = re.compile(r"^([0-9a-f]{16})_(\d+)$")


class AudioChanged(CratedigError):
    """A track's file no longer holds the audio that was analysed (replaced or edited)."""


def check_transform(semitones: float | None, ratio: float | None) -> None:
    """Refuse a shift outside +-12 semitones or a tempo ratio outside 0.5-2 (or not metrical)."""
    if semitones is not None and (not np.isfinite(semitones) or abs(semitones) > MAX_SEMITONES):
        raise ParameterError(f"--semitones {semitones}: must be within -12..12")
    if ratio is not None:
        if not np.isfinite(ratio) or not 0.5 <= ratio <= 2.0:
            raise ParameterError(f"--ratio {ratio}: must be within 0.5..2")
        if not any(abs(ratio - r) < 1e-9 for r in TEMPO_RATIOS_ALLOWED):
            raise ParameterError(
                f"--ratio {ratio}: a metrical ratio, 1 (beat on beat), 2 (half time: one "
                "candidate beat per two query beats) or 0.5 (double time)"
            )


def audio_format(fmt: str | None, path: str | os.PathLike[str]) -> str:
    """The output format: ``fmt`` or the file's suffix; wav, flac or mp3."""
    f = (fmt or Path(path).suffix.lstrip(".") or "wav").lower()
    if f not in FORMATS:
        raise ParameterError(f"format {f!r}: choose wav, flac or mp3")
    return f


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, sr: int, fmt: str) -> Path:
    """Write mono or channels-first ``audio`` in ``fmt`` to ``path`` (see
    :func:`cratedig.fileio.output_path`: a regular file is replaced atomically, a symbolic link
    written through, a FIFO, device or ``-`` streamed into)."""
    return write_audio_blocks(
        path, iter([audio]), sr, fmt, channels=audio.shape[0] if audio.ndim == 2 else 1
    )


def write_audio_blocks(
    path: str | os.PathLike[str],
    blocks: Iterator[np.ndarray],
    sr: int,
    fmt: str,
    *,
    channels: int,
) -> Path:
    """Write channels-first (or mono) blocks one after another, never holding them all."""
    import soundfile as sf

    container, subtype = FORMATS[fmt]
    with output_path(path) as tmp:
        with sf.SoundFile(str(tmp), "w", sr, channels, subtype, format=container) as f:
            for block in blocks:
                f.write(block.T if block.ndim == 2 else block)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Loading segments' audio


@dataclass
class SegmentSource:
    """A segment, its track and its audio cut for rendering."""

    segment: Segment
    track: TrackAnalysis
    audio: np.ndarray  # (channels, n) at sr
    sr: int
    offset: float  # track time of audio[:, 0]
    beats: np.ndarray  # beat times relative to audio[:, 0]; beats[0] is the segment's downbeat
    stems: list[str] = field(default_factory=list)


class AudioLoader:
    """Decodes tracks and stems at one rate, keeping the last few in memory (a mashup reads
    the same partner track for several phrases).

    A track's file is only used while it still holds the analysed audio: every decode
    compares the file's content hash with the track id (the hash is computed while decoding,
    so the check is free), so a file replaced by other audio since the last ingest is refused
    in one line instead of cut at the old track's beats.
    """

    def __init__(self, library: Library, *, sr: int = RENDER_SR, keep: int = 6) -> None:
        self.library, self.sr, self.keep = library, sr, keep
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._tracks: dict[str, TrackAnalysis] = {}
        self._paths: dict[str, list[str]] = {}
        self._verified: dict[str, bool] = {}  # path -> holds its track's audio
        self._stamps: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) at ingest

    def decoded(self, path: str, stream: int = 0, *, track_id: str | None = None) -> np.ndarray:
        """The file's audio, channels first; with ``track_id``, only if it is that track's.

        Raises
        ------
        AudioChanged
            ``track_id`` is given and the file's audio is no longer that track's.
        """
        key = (path, stream)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        d = decode(path, sr=self.sr, mono=False, stream=stream, allow_silent=True,
                   max_duration=float("inf"))  # fmt: skip
        if track_id is not None and track_id_from_hash(d.content_hash) != track_id:
            raise _changed(path, track_id)
        y = d.samples if d.samples.ndim == 2 else d.samples[None, :]
        del d
        if y.shape[0] > 2:
            y = y[:2]
        self._cache[key] = y
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return y

    def track(self, track_id: str) -> TrackAnalysis:
        if track_id not in self._tracks:
            with self.library.reader() as s:
                a = repo.load_analysis(s, track_id)
                paths = repo.track_paths(s, track_id)
                self._stamps.update(repo.file_stamps(s, track_id))
            if a is None:
                raise ParameterError(f"track {track_id} is not in the library")
            existing = [p for p in paths if os.path.exists(p)]
            if not existing:
                raise ParameterError(
                    f"track {track_id}: no file on disk any more (was {paths[0] if paths else '?'})"
                )
            a.path = existing[0]
            self._tracks[track_id] = a
            self._paths[track_id] = existing
        return self._tracks[track_id]

    def track_audio(self, a: TrackAnalysis) -> np.ndarray:
        """The audio of a library track from the first of its files that still holds it."""
        paths = self._paths.get(a.track_id, [a.path])
        changed: AudioChanged | None = None
        for p in paths:
            try:
                y = self.decoded(p, track_id=a.track_id)
            except AudioChanged as exc:
                changed = changed or exc
                continue
            a.path = p
            return y
        assert changed is not None
        raise changed

    def segment(self, segment_id: str) -> tuple[Segment, TrackAnalysis]:
        m = _SEGMENT_ID.match(segment_id.strip())
        if not m:
            raise ParameterError(
                f"{segment_id!r} is not a segment id (<16 hex digit track id>_<n>, as `cratedig "
                "match` prints)"
            )
        a = self.track(m.group(1))
        n = int(m.group(2))
        if n >= len(a.segments):
            raise ParameterError(
                f"segment {segment_id}: track {a.track_id} has segments 0..{len(a.segments) - 1}"
            )
        return a.segments[n], a

    def audio_of(self, a: TrackAnalysis, stems: list[str] | None) -> tuple[np.ndarray, list[str]]:
        """The track's audio, or the sum of the named stems (``["vocals"]``...)."""
        if not stems:
            return self.track_audio(a), []
        with self.library.reader() as s:
            have = {st.name: st for st in repo.stems_of(s, a.track_id)}
        if not have:
            raise ParameterError(
                f"track {a.track_id} has no stems (put them in a '<name>.stems/' folder beside "
                "it, or use an NI .stem.mp4, and ingest again)"
            )
        missing = [n for n in stems if n not in have]
        if missing:
            raise ParameterError(
                f"track {a.track_id} has no stem {', '.join(missing)}; it has {', '.join(sorted(have))}"
            )
        parts = [self.decoded(have[n].path, have[n].stream or 0) for n in stems]
        n = min(p.shape[1] for p in parts)
        ch = max(p.shape[0] for p in parts)
        total = np.zeros((ch, n), np.float32)
        for p in parts:
            total += p[:, :n] if p.shape[0] == ch else np.repeat(p[:, :n], ch, axis=0)
        return total, list(stems)

    def cut(
        self,
        segment_id: str,
        *,
        lead: float = 0.0,
        tail: float = 0.0,
        stems: list[str] | None = None,
        offset_beats: int = 0,
    ) -> SegmentSource:
        """The segment's audio from ``lead`` seconds before it to ``tail`` after it.

        A track in a format that seeks exactly (WAV, FLAC, AIFF, OGG...) is read only there
        (:func:`~cratedig.audio.decode.decode_region`); others (MP3, ffmpeg formats) and
        stems are decoded whole and kept among the loader's last few tracks.

        ``offset_beats`` moves the span by that many of the track's beats (later when
        positive): where its bar lines are read half a bar off, the music that belongs on
        the query's bar 1 starts 2 beats later.
        """
        seg, a = self.segment(segment_id)
        if offset_beats:
            seg = _moved(seg, a, offset_beats)
        start = max(seg.start - lead, 0.0)
        region = None if stems else self.track_region(a, start, seg.end + tail)
        used: list[str] = []
        if region is not None:
            audio, lo = region
            hi = lo + audio.shape[1]
        else:
            y, used = self.audio_of(a, stems)
            lo = int(round(start * self.sr))
            hi = min(int(round((seg.end + tail) * self.sr)), y.shape[1])
            audio = np.ascontiguousarray(y[:, lo:hi])
        if hi - lo < int(0.5 * self.sr):
            raise ParameterError(f"segment {segment_id}: its audio is missing from {a.path}")
        beats = np.asarray(a.beats, np.float64)
        inside = beats[(beats >= seg.start - 0.02) & (beats < seg.end + tail - 1e-6)]
        if len(inside) < 2:
            raise ParameterError(f"segment {segment_id} has no beat grid to align to")
        return SegmentSource(seg, a, audio, self.sr, lo / self.sr, inside - lo / self.sr, used)

    def track_region(
        self, a: TrackAnalysis, start: float, end: float
    ) -> tuple[np.ndarray, int] | None:
        """``[start, end)`` seconds of a library track's audio read from its file, and the
        index of its first sample; None when the file's format cannot seek exactly."""
        changed: AudioChanged | None = None
        for p in self._paths.get(a.track_id, [a.path]):
            if (p, 0) in self._cache:
                return None  # decoded whole already: cut from that
            if self._verified.get(p) is None:
                self._verified[p] = self._unchanged(p) or (
                    track_id_from_hash(content_hash(p)) == a.track_id
                )
            if not self._verified[p]:
                changed = changed or _changed(p, a.track_id)
                continue
            region = decode_region(p, start, end, sr=self.sr)
            if region is None:
                return None
            y, lo = region
            y = y if y.ndim == 2 else y[None, :]
            a.path = p
            return (y[:2] if y.shape[0] > 2 else y), lo
        if changed is not None:
            raise changed
        return None

    def _unchanged(self, path: str) -> bool:
        """Fast path: the file has the size and mtime it had when ingested (else: hash it)."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        return self._stamps.get(path) == (st.st_size, st.st_mtime_ns)


#: Candidates per phrase a mashup with chosen partner tracks plans over: all their phrases.
MASHUP_WITH_TOP = 64
#: Largest ``offset_beats`` of a render, either way (four bars of 4/4).
MAX_OFFSET_BEATS = 16


def _moved(seg: Segment, a: TrackAnalysis, offset_beats: int) -> Segment:
    """``seg`` moved by ``offset_beats`` of ``a``'s beats (its length kept)."""
    beats = np.asarray(a.beats, np.float64)
    if len(beats) < 2:
        raise ParameterError(f"segment {seg.id} has no beat grid to move along")
    i = int(np.argmin(np.abs(beats - seg.start)))
    j = i + offset_beats
    if not 0 <= j < len(beats):
        raise ParameterError(
            f"offset {offset_beats:+d} beats: segment {seg.id} would start outside its track's "
            f"beats (it starts on beat {i} of {len(beats)})"
        )
    shift = float(beats[j] - beats[i])
    return dataclasses.replace(seg, start=seg.start + shift, end=min(seg.end + shift, a.duration))


def _changed(path: str, track_id: str) -> AudioChanged:
    return AudioChanged(
        f"{path} is no longer the audio of track {track_id}: it changed since it was "
        "analysed (run `cratedig ingest` on its folder again)"
    )


# ---------------------------------------------------------------------------------------------
# Pairs


@dataclass
class RenderedPair:
    """A pair preview and how it was made."""

    query: str
    candidate: str
    audio: np.ndarray
    sr: int
    semitones: float
    tempo_ratio: float
    stems: list[str]
    cached: bool
    seconds: float  # work time (0 for a cache hit)
    info: dict[str, Any] = field(default_factory=dict)
    partner: np.ndarray | None = None  # the partner layer alone (None for a cache hit)
    tuning_cents: float = 0.0  # shifted on top of ``semitones`` to meet the query's tuning
    offset_beats: int = 0  # the candidate starts this many of its beats later

    def to_json(self) -> dict[str, Any]:
        return {
            "query_segment": self.query,
            "candidate_segment": self.candidate,
            "semitones": self.semitones,
            "tuning_cents": self.tuning_cents,
            "tempo_ratio": self.tempo_ratio,
            "offset_beats": self.offset_beats,
            "stems": self.stems,
            "sr": self.sr,
            "samples": int(self.audio.shape[-1]),
            "duration": round(self.audio.shape[-1] / self.sr, 4),
            "cached": self.cached,
            "render_seconds": round(self.seconds, 4),
            **({"render": self.info} if self.info else {}),
        }


def suggested_transform(
    query: Segment, candidate: Segment, *, max_shift: int = 6
) -> tuple[int, float]:
    """The semitone shift and tempo ratio the matcher suggests for this pair."""
    from cratedig.match.batch import SegmentBatch
    from cratedig.match.scoring import score_candidates

    sc = score_candidates(
        SegmentBatch.from_segments([query]),
        SegmentBatch.from_segments([candidate]),
        max_shift=max_shift,
        max_stretch=1.0,
    )
    return int(sc.semitones[0]), float(sc.tempo_ratio[0])


def render_segments(
    library: Library,
    query_id: str,
    candidate_id: str,
    *,
    semitones: float | None = None,
    ratio: float | None = None,
    stems: list[str] | None = None,
    sr: int = RENDER_SR,
    use_cache: bool = True,
    loader: AudioLoader | None = None,
    offset_beats: int = 0,
) -> RenderedPair:
    """Render the candidate segment layered over the query segment (both in the library).

    ``semitones``/``ratio`` default to the matcher's suggestion for the pair; ``stems`` layers
    only those stems of the candidate (its track must have them). ``offset_beats`` starts the
    candidate that many of its beats later (earlier when negative): a nudge for bar lines
    read off by a beat or half a bar (the match's "check where its bar 1 falls").
    """
    check_transform(semitones, ratio)
    if not -MAX_OFFSET_BEATS <= offset_beats <= MAX_OFFSET_BEATS:
        raise ParameterError(
            f"offset {offset_beats:+d} beats: must be within +-{MAX_OFFSET_BEATS} beats"
        )
    loader = loader or AudioLoader(library, sr=sr)
    q_seg, q_track = loader.segment(query_id)
    c_seg, c_track = loader.segment(candidate_id)
    cents = tuning_correction(q_track.tuning, c_track.tuning)
    if semitones is None or ratio is None:
        s, r = suggested_transform(q_seg, c_seg)
        semitones = s if semitones is None else semitones
        ratio = r if ratio is None else ratio
    key = cache_key(
        query_id, candidate_id, float(semitones), float(ratio), sorted(stems or []), sr,
        *([{"offset_beats": offset_beats}] if offset_beats else []),
    )  # fmt: skip
    cache = RenderCache(library.artefact_dir / "renders")
    if use_cache:
        hit = _cache_get(cache, key)
        if hit is not None:
            return RenderedPair(query_id, candidate_id, hit[0], hit[1], float(semitones),
                                float(ratio), list(stems or []), True, 0.0,
                                tuning_cents=cents, offset_beats=offset_beats)  # fmt: skip
    t0 = time.perf_counter()
    pair, used = _render(
        loader, query_id, candidate_id, float(semitones), float(ratio), stems, cents,
        offset_beats,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    if use_cache:
        _cache_put(cache, key, pair.mix, pair.sr)
    return RenderedPair(query_id, candidate_id, pair.mix, pair.sr, float(semitones), float(ratio),
                        used, False, elapsed, pair.metadata(), pair.partner,
                        tuning_cents=cents, offset_beats=offset_beats)  # fmt: skip


def _cache_get(cache: RenderCache, key: str) -> tuple[np.ndarray, int] | None:
    """A cached render, or None when absent or unreadable (the cache is only a speed-up)."""
    try:
        return cache.get(key)
    except (OSError, RuntimeError, ValueError) as exc:
        log.warning("render cache %s unreadable (%s): rendering again", cache.directory, exc)
        return None


def _cache_put(cache: RenderCache, key: str, audio: np.ndarray, sr: int) -> None:
    """Store a render; a cache that cannot be written (read-only, full, a file in the way)
    costs a warning, never the render."""
    try:
        cache.put(key, audio, sr)
    except (OSError, RuntimeError, AssertionError, CratedigError) as exc:
        log.warning("render cache %s not written (%s)", cache.directory, exc)


def looped(c: SegmentSource, beats_needed: float) -> SegmentSource:
    """A loop's audio played over and over until it has ``beats_needed`` beats (as a sampler
    loops it under a longer phrase); any other segment, or a loop long enough, as it is.

    A loop (its segment labelled ``"loop"``, :func:`cratedig.analysis.rhythm.fit_loop`) is the
    whole file, cut on bar lines, so copies join sample to sample.
    """
    if c.segment.label != LOOP_LABEL or len(c.beats) >= beats_needed or len(c.beats) == 0:
        return c
    n = c.audio.shape[1]
    reps = int(np.ceil(beats_needed / len(c.beats)))
    audio = np.tile(c.audio, (1, reps))
    beats = np.concatenate([c.beats + k * n / c.sr for k in range(reps)])
    return replace(c, audio=np.ascontiguousarray(audio), beats=beats)


def _render(
    loader: AudioLoader,
    query_id: str,
    candidate_id: str,
    semitones: float,
    ratio: float,
    stems: list[str] | None,
    cents: float,
    offset_beats: int = 0,
) -> tuple[PairRender, list[str]]:
    q = loader.cut(query_id)
    c = loader.cut(candidate_id, lead=PIECE_MARGIN, tail=TAIL, stems=stems,
                   offset_beats=offset_beats)  # fmt: skip
    c = looped(c, len(q.beats) / ratio)
    meter = q.track.time_signature[0]
    pair = render_pair(
        q.audio,
        q.sr,
        q.beats,
        c.audio,
        c.beats,
        semitones=semitones + cents / 100.0,
        tempo_ratio=ratio,
        candidate_sr=c.sr,
        piece_beats=meter,
    )
    pair.tuning_cents = cents
    return pair, c.stems


# ---------------------------------------------------------------------------------------------
# Whole-song mashups


@dataclass
class Mashup:
    """A rendered mashup and its plan.

    ``audio`` is the mix (channels first) when :func:`render_mashup` was given no ``output``;
    with one, the mix went to that file block by block and ``audio`` is None.
    """

    audio: np.ndarray | None
    sr: int
    plan: MashupPlan
    seconds: float
    limiter_db: float
    frames: int = 0
    channels: int = 0
    output: str | None = None
    #: With chosen partner tracks: why each track the rules rule out whole cannot partner
    #: the song (see :func:`cratedig.workflows.partner_fit`); None otherwise.
    ruled_out: list[str] | None = None

    @property
    def duration(self) -> float:
        """Seconds of mix."""
        return self.frames / self.sr if self.sr else 0.0


#: Seconds of query audio handed on at once between partnered phrases (bounds the copies).
MIX_BLOCK = 10.0


def render_mashup(
    library: Library,
    index: Any,
    analysis: TrackAnalysis,
    *,
    output: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    stems: list[str] | None = None,
    top: int = 8,
    max_shift: int = 3,
    max_stretch: float = 0.08,
    sr: int = RENDER_SR,
    mix_gain_db: float = DEFAULT_MIX_GAIN_DB,
    tracks: tuple[str, ...] | None = None,
) -> Mashup:
    """Match every phrase of ``analysis`` (a file or a library track), choose partners with
    :func:`plan_mashup` and layer them over the whole song, beat-aligned. ``tracks``: only
    these library tracks are partners (every phrase of them scored), "mash this song with
    that one".

    The mix is made phrase by phrase and limited block by block
    (:func:`~cratedig.render.engine.limit_true_peak_stream`); with ``output`` each block goes
    straight to the file, so peak memory is the query's decoded audio (about 21 MB per
    minute, 44.1 kHz stereo float32), the few partner tracks the loader keeps decoded and one
    phrase's render: a constant plus a small term per minute of song, never a whole-song
    buffer of partners, mix and oversampled limiter envelope.

    Parameters
    ----------
    output : path-like, optional
        Write the mix there (see :func:`cratedig.fileio.output_path`) and return no audio.
    fmt : str, optional
        wav, flac or mp3 (default: from ``output``'s suffix).
    """
    from cratedig.match.query import MatchOptions, match_analysis

    t0 = time.perf_counter()
    f = audio_format(fmt, output if output is not None else "mix.wav")
    if output is not None:
        check_output(output)
    result = match_analysis(
        library,
        index,
        analysis,
        options=MatchOptions(
            top=top if tracks is None else max(top, MASHUP_WITH_TOP),
            max_shift=max_shift,
            max_stretch=max_stretch,
            tracks=tracks,
        ),
    )
    plan = plan_mashup(
        [s.to_json() for s in analysis.segments],
        [m.candidates for m in result.matches],
        query={
            "track_id": analysis.track_id,
            "path": analysis.path,
            "tempo": round(analysis.tempo, 2),
            "camelot": analysis.key.camelot,
            "stems": list(stems or []),
            # left out as partners: the query's own recording in other files
            "same_recording": [
                {
                    "track_id": t,
                    "path": result.same_recording_paths.get(t),
                    "ber": o.ber,
                    "pieces": o.pieces,
                }
                for t, o in result.same_recording.items()
            ],
        },
    )
    del result
    # The query plus the partner tracks of the current and the next phrases.
    loader = AudioLoader(library, sr=sr, keep=3)
    query = _QueryCursor(AudioStream(_query_file(library, analysis), sr=sr), analysis.track_id)
    limiter = limit_true_peak_stream(
        _mix_blocks(loader, query, analysis, plan, stems=stems, sr=sr, mix_gain_db=mix_gain_db),
        sr,
        ceiling_db=DEFAULT_CEILING_DB,
    )
    frames = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal frames
        for block in limiter:
            frames += block.shape[-1]
            yield block

    audio: np.ndarray | None = None
    if output is not None:
        write_audio_blocks(output, counted(), sr, f, channels=query.channels)
    else:
        audio = np.concatenate(list(counted()), axis=1)
    return Mashup(audio, sr, plan, time.perf_counter() - t0, limiter.reduction_db, frames,
                  query.channels, os.fspath(output) if output is not None else None)  # fmt: skip


def _query_file(library: Library, analysis: TrackAnalysis) -> str:
    """The query's file: its own path, or the first recorded path of its track on disk."""
    if analysis.path and os.path.exists(analysis.path):
        return analysis.path
    with library.reader() as s:
        paths = repo.track_paths(s, analysis.track_id)
    found = next((p for p in paths if os.path.exists(p)), None)
    if found is None:
        raise ParameterError(
            f"track {analysis.track_id}: no file on disk any more (was {analysis.path or '?'})"
        )
    return found


class _QueryCursor:
    """The query song read once, front to back: ``take`` hands out consecutive spans, keeping
    only the samples not yet handed out (a block or two), whatever the song's length. When the
    file is exhausted its content hash is checked against the analysed track id."""

    def __init__(self, stream: AudioStream, track_id: str) -> None:
        self.stream, self.track_id = stream, track_id
        self.channels = min(stream.channels, 2)
        self._blocks = iter(stream)
        self._buf = np.zeros((self.channels, 0), np.float32)
        self._start = 0  # file sample index of _buf[:, 0]
        self._done = False

    def take(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``[lo, hi)`` (fewer at the end of the file); ``lo`` never goes back."""
        assert lo >= self._start, (lo, self._start)
        while self._start + self._buf.shape[1] < hi and not self._done:
            block = next(self._blocks, None)
            if block is None:
                self._done = True
                self._check()
                break
            block = block if block.ndim == 2 else block[None, :]
            self._buf = np.concatenate([self._buf, block[: self.channels]], axis=1)
        self._buf = self._buf[:, lo - self._start :]
        self._start = lo
        return self._buf[:, : hi - lo].copy()

    def rest(self, lo: int, step: int) -> Iterator[np.ndarray]:
        """Everything from ``lo`` to the end of the file, ``step`` samples at a time."""
        while True:
            y = self.take(lo, lo + step)
            if y.shape[1] == 0:
                return
            yield y
            lo += y.shape[1]

    def _check(self) -> None:
        h = self.stream.content_hash
        if h is not None and track_id_from_hash(h) != self.track_id:
            raise _changed(self.stream.name, self.track_id)


def _mix_blocks(
    loader: AudioLoader,
    query: _QueryCursor,
    analysis: TrackAnalysis,
    plan: MashupPlan,
    *,
    stems: list[str] | None,
    sr: int,
    mix_gain_db: float,
) -> Iterator[np.ndarray]:
    """``gain * (query + partner)`` from the first sample to the last, phrase by phrase."""
    gain = np.float32(10 ** (mix_gain_db / 20))
    step = int(MIX_BLOCK * sr)
    # The query's DC offset out, causally over the whole song (every span is taken in order).
    hp = DCBlocker(sr)
    beats = np.asarray(analysis.beats, np.float64)
    by_id = {s.id: s for s in analysis.segments}

    def alone(a: int, b: int) -> Iterator[np.ndarray]:
        for i in range(a, b, step):
            yield hp(query.take(i, min(i + step, b))) * gain

    pos = 0
    cues = sorted(
        (c for c in plan.cues if c.partner is not None), key=lambda c: by_id[c.query_segment].start
    )
    for cue in cues:
        assert cue.partner is not None
        seg = by_id[cue.query_segment]
        lo, hi = int(round(seg.start * sr)), int(round(seg.end * sr))
        q_beats = beats[(beats >= seg.start - 0.02) & (beats < seg.end - 1e-6)] - lo / sr
        if len(q_beats) < 2 or hi <= lo or lo < pos:  # phrases never overlap
            continue
        yield from alone(pos, lo)
        y = hp(query.take(lo, hi))
        pos = lo + y.shape[1]
        if y.shape[1] < int(0.5 * sr):
            yield y * gain
            continue
        c = loader.cut(str(cue.partner["segment"]), lead=PIECE_MARGIN, tail=TAIL, stems=stems)
        t = cue.partner.get("transform", cue.partner)
        c = looped(c, len(q_beats) / float(t["tempo_ratio"]))
        cents = tuning_correction(analysis.tuning, c.track.tuning)
        pair = render_pair(
            y,
            sr,
            q_beats,
            c.audio,
            c.beats,
            semitones=float(t["semitones"]) + cents / 100.0,
            tempo_ratio=float(t["tempo_ratio"]),
            candidate_sr=sr,
            piece_beats=analysis.time_signature[0],
        )
        p = pair.partner if pair.partner.ndim == 2 else pair.partner[None, :]
        if p.shape[0] != y.shape[0]:
            p = np.repeat(p, y.shape[0], 0)
        del pair, c
        yield (y + p[:, : y.shape[1]]) * gain
    for y in query.rest(pos, step):
        yield hp(y) * gain
