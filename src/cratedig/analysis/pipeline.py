"""path -> TrackAnalysis: decode once, one front end, every stage reads from it. Pure: no DB."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cratedig import ANALYSIS_VERSION
from cratedig.analysis import features as feat
from cratedig.analysis.fingerprint import fingerprint
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.keynet import (
    OPENING_NET_WEIGHT,
    POOL,
    KeyEvidence,
    key_prior,
    pitch_frames,
    prior_of,
)
from cratedig.analysis.loudness import loudness_blocks
from cratedig.analysis.quality import assess_quality
from cratedig.analysis.records import Section, Segment, SegmentFeatures, TrackAnalysis
from cratedig.analysis.rhythm import (
    ONSET_LAG,
    BeatGrid,
    GridHint,
    RangeTempo,
    TagTempo,
    active_span,
    bars_as_given,
    fit_loop,
    fold_into_range,
    follow_tag_tempo,
    track_beats,
)
from cratedig.analysis.structure import LOOP_LABEL, bar_bounds, bar_cues, segment_structure
from cratedig.analysis.tonal import (
    OPENING_WEIGHT,
    TAG_KEY_CLARITY,
    KeyEstimate,
    TagKey,
    bass_notes,
    chroma_pair,
    estimate_key,
    estimate_tuning,
    follow_tag_key,
    hypermetric_spans,
    opening_end,
)
from cratedig.audio.decode import (
    ANALYSIS_SR,
    MAX_DURATION,
    MIN_SONG_DURATION,
    DecodedAudio,
    decode,
)
from cratedig.errors import ParameterError, UnsupportedAudio
from cratedig.theory import Key, key_relation, tempo_relation

log = logging.getLogger("cratedig.analysis")

#: How strongly a segment's key leans toward the track's key when its own evidence is weak.
SEGMENT_KEY_PRIOR = 0.08


def analyze_file(
    path: str | os.PathLike[str],
    *,
    max_duration: float = MAX_DURATION,
    hint: GridHint | None = None,
    tags: Mapping[str, Any] | None = None,
    use_tags: bool = True,
    bpm_range: tuple[float, float] | None = None,
) -> TrackAnalysis:
    """Decode and analyse one audio file.

    Parameters
    ----------
    path : path-like
    max_duration : float
        Seconds; longer files raise :class:`~cratedig.errors.UnsupportedAudio`.
    hint : GridHint, optional
        What the user knows of the grid: a tempo (BPM, 30-300) the beat grid is fitted at, a
        time where a bar starts, beats per bar (:func:`cratedig.analysis.rhythm.track_beats`).
        Recorded as ``estimates["grid"]["given"]``.
    tags : mapping, optional
        What the file's tags say; default: read from ``path``
        (:func:`cratedig.audio.tags.file_tags`: its tags, else what its name states) unless
        ``use_tags`` is False. A ``bpm``
        decides the beat's level where the audio allows that reading
        (:func:`cratedig.analysis.rhythm.follow_tag_tempo`; a tempo in ``hint`` wins).
        Recorded as ``estimates["tempo"]["tags"]``.
    use_tags : bool
        False: the audio alone decides (no tags read or used).
    bpm_range : (float, float), optional
        The DJ's BPM range: a tempo outside it is read at its octave inside it where the audio
        holds that level (:func:`cratedig.analysis.rhythm.fold_into_range`); a tempo the user
        gives and a BPM tag that was followed win. Recorded as ``estimates["tempo"]["range"]``.

    Returns
    -------
    TrackAnalysis

    Raises
    ------
    cratedig.errors.AudioError
        With a one-line reason, for any file that cannot be analysed.

    Examples
    --------
    >>> a = analyze_file("song.wav")  # doctest: +SKIP
    >>> a.tempo, a.key.camelot  # doctest: +SKIP
    (126.0, '8A')
    """
    t0 = time.perf_counter()
    audio = decode(path, sr=ANALYSIS_SR, max_duration=max_duration)
    t1 = time.perf_counter()
    if not use_tags:
        tags = None
    elif tags is None:
        from cratedig.audio.tags import file_tags

        tags = file_tags(path)
    result = analyze_decoded(audio, path, hint=hint, tags=tags, bpm_range=bpm_range)
    result.timings = {"decode": t1 - t0, **result.timings}
    return result


def analyze_decoded(
    audio: DecodedAudio,
    path: str | os.PathLike[str],
    *,
    hint: GridHint | None = None,
    tags: Mapping[str, Any] | None = None,
    bpm_range: tuple[float, float] | None = None,
) -> TrackAnalysis:
    """:func:`analyze_file` on audio already decoded (ingest decodes once, hashes, then analyses).

    Parameters
    ----------
    audio : DecodedAudio
        From :func:`cratedig.audio.decode` at the analysis rate, mono.
    path : path-like
        Recorded in the result.
    hint : GridHint, optional
    tags : mapping, optional
    bpm_range : (float, float), optional
        See :func:`analyze_file`.

    Raises
    ------
    cratedig.errors.UnsupportedAudio
        Audio shorter than :data:`~cratedig.audio.decode.MIN_SONG_DURATION` that is not a loop.
    """
    result = analyze_signal(
        audio.samples,
        sr=audio.sr,
        path=str(Path(path)),
        track_id=track_id_from_hash(audio.content_hash),
        format=audio.format,
        source_sr=audio.source_sr,
        channels=audio.channels,
        hint=hint,
        tags=tags,
        bpm_range=bpm_range,
    )
    result.duration = audio.duration
    if audio.duration < MIN_SONG_DURATION and not (result.estimates.get("grid") or {}).get("loop"):
        raise UnsupportedAudio(
            f"only {audio.duration:.1f} s long and not a loop (whole bars sounding end to end); "
            f"cratedig needs at least {MIN_SONG_DURATION:g} s otherwise",
            str(path),
        )
    result.quality = assess_quality(audio, result)
    return result


def track_id_from_hash(content_hash: str) -> str:
    """Track ids are the first 16 hex digits (64 bits) of the decoded-audio hash."""
    return content_hash[:16]


def analyze_signal(
    y: np.ndarray,
    *,
    sr: int,
    path: str = "<signal>",
    track_id: str | None = None,
    format: str = "PCM",
    source_sr: int | None = None,
    channels: int = 1,
    hint: GridHint | None = None,
    tags: Mapping[str, Any] | None = None,
    bpm_range: tuple[float, float] | None = None,
) -> TrackAnalysis:
    """Analyse a mono signal: beats, downbeats, tempo, meter, key, structure and features.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
    sr : int > 0
    path, track_id, format, source_sr, channels
        Carried into the record; ``track_id`` defaults to a hash of ``y``.
    hint : GridHint, optional
    tags : mapping, optional
    bpm_range : (float, float), optional
        See :func:`analyze_file`.

    Returns
    -------
    TrackAnalysis
    """
    if y.ndim != 1:
        raise ParameterError(f"y must be mono with shape (n,), got {y.shape}")
    if track_id is None:
        import xxhash

        track_id = track_id_from_hash(xxhash.xxh3_128(np.ascontiguousarray(y).data).hexdigest())
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    fe = compute_frontend(y, sr=sr)
    audio_print = fingerprint(fe.mel_db)
    lap("frontend")
    tuning = estimate_tuning(fe)
    chroma, bass = chroma_pair(fe, tuning=tuning)
    lap("chroma")
    tag_bpm = (tags or {}).get("bpm")
    tag_tempo: TagTempo | None = None
    if tag_bpm and (hint is None or hint.bpm is None):
        own = track_beats(fe, harmony=bass, chroma=chroma)
        grid, tag_tempo = follow_tag_tempo(fe, own, float(tag_bpm), harmony=bass, chroma=chroma)
        if "bpm" in ((tags or {}).get("from_name") or []):
            tag_tempo = replace(tag_tempo, source="name")
        if hint is not None and not hint.empty:
            grid = bars_as_given(fe, grid, hint, harmony=bass, chroma=chroma)
    else:
        grid = track_beats(fe, harmony=bass, chroma=chroma, hint=hint)
    range_tempo: RangeTempo | None = None
    if (
        bpm_range is not None
        and (hint is None or hint.bpm is None)
        and not (tag_tempo is not None and tag_tempo.used)
    ):
        before = grid
        grid, range_tempo = fold_into_range(fe, grid, *bpm_range, harmony=bass, chroma=chroma)
        if grid is not before and hint is not None and not hint.empty:
            grid = bars_as_given(fe, grid, hint, harmony=bass, chroma=chroma)
    loop_bars: int | None = None
    if hint is None or (hint.bpm is None and hint.downbeat is None):
        # A short file sounding end to end is a loop: whole bars, bar 1 at its start.
        looped = fit_loop(fe, grid)
        if looped is not None:
            grid, loop_bars = looped
    lap("rhythm")
    a0, a1 = active_span(fe)
    blocks = loudness_blocks(y, sr)
    lap("loudness")

    beat_period = 60.0 / grid.tempo
    starts, ends = bar_bounds(grid.downbeats, beat_period, grid.meter, fe.duration)
    meter = grid.meter
    if len(starts) == 0:
        # No bar grid (free-time audio): the whole active span is one segment of one "beat".
        lo, hi = a0 / fe.fps, min(a1 / fe.fps, fe.duration)
        starts, ends, meter = np.array([lo]), np.array([hi]), 1
    bchroma = feat.bar_chroma(chroma, fe.tonal_fps, starts, ends)
    # Each bar split into its beats: one chroma row per beat for the harmonic match term.
    beat_len = np.repeat((ends - starts) / meter, meter)
    beat_s = np.repeat(starts, meter) + np.tile(np.arange(meter), len(starts)) * beat_len
    beat_chroma = feat.bar_chroma(chroma, fe.tonal_fps, beat_s, beat_s + beat_len)
    lap("features")
    structure = segment_structure(bar_cues(fe, bchroma, starts, ends), starts, ends)
    lap("sections")
    rhythm_rows = feat.rhythm_pattern(fe, starts, ends, grid.meter, lag=ONSET_LAG)
    t_lo, t_hi = int(a0 / fe.fps * fe.tonal_fps), int(np.ceil(a1 / fe.fps * fe.tonal_fps))
    notes = bass_notes(fe, tuning=tuning)
    h_starts, h_ends = hypermetric_spans(starts, ends)
    cadence = feat.span_means(notes, fe.tonal_fps, h_starts, h_ends)
    # The opening states the key (before any modulation): its own scores are a prior.
    o_hi = max(int(np.ceil(opening_end(starts, ends) * fe.tonal_fps)), t_lo + 1)
    # The key network (analysis v14) adds its log-probabilities to the opening's scores and,
    # floored, to the track's (keynet.OPENING_NET_WEIGHT, NET_WEIGHT, LOGP_FLOOR).
    opening = estimate_key(
        chroma[t_lo:o_hi],
        bass[t_lo:o_hi],
        cadence_weight=0.0,
        prior=key_prior(
            fe.tonal_mag[t_lo:o_hi], tuning=tuning, weight=OPENING_NET_WEIGHT, floor=None
        ),
    )
    evidence = KeyEvidence(pitch_frames(fe.tonal_mag[t_lo:t_hi], tuning=tuning))
    track_key = estimate_key(
        chroma[t_lo:t_hi],
        bass[t_lo:t_hi],
        cadence_chroma=cadence,
        prior=OPENING_WEIGHT * opening.scores + prior_of(evidence.logits()),
    )
    tag_key: TagKey | None = None
    if tags and tags.get("key"):
        track_key, tag_key = follow_tag_key(track_key, str(tags["key"]))
        if tag_key is not None and "key" in (tags.get("from_name") or []):
            tag_key = replace(tag_key, source="name")
    lap("key")

    segments = _phrase_segments(
        track_id,
        structure,
        grid,
        starts,
        ends,
        bchroma,
        beat_chroma,
        meter,
        rhythm_rows,
        chroma,
        bass,
        fe,
        blocks,
        track_key.scores,
    )
    sections = [
        Section(
            index=i,
            start=float(starts[structure.phrases[p0][0]]),
            end=float(
                ends[structure.phrases[p0 + k - 1][0] + structure.phrases[p0 + k - 1][1] - 1]
            ),
            bar=structure.phrases[p0][0],
            bars=sum(structure.phrases[p][1] for p in range(p0, p0 + k)),
            label=label,
            group=group,
            confidence=structure.confidence[i],
        )
        for i, (p0, k, label, group) in enumerate(structure.sections)
    ]
    if loop_bars is not None:
        # A loop is one thing played over and over, not an intro or a drop: the matcher
        # repeats it under longer phrases (match.scoring.LOOP_LABEL).
        for seg in segments:
            seg.label = LOOP_LABEL
        for sec in sections:
            sec.label = LOOP_LABEL
    lap("segments")
    analysis = TrackAnalysis(
        path=path,
        track_id=track_id,
        format=format,
        duration=len(y) / sr,
        sample_rate=int(source_sr or sr),
        channels=channels,
        tempo=grid.tempo,
        time_signature=(grid.meter, 4),
        key=track_key.key,
        tuning=tuning,
        key_clarity=track_key.clarity,
        loudness=blocks.integrated(),
        beats=grid.beats,
        downbeats=grid.downbeats,
        segments=segments,
        sections=sections,
        analysis_version=ANALYSIS_VERSION,
        timings=timings,
        fingerprint=audio_print,
        estimates=estimates_of(
            grid,
            track_key,
            max(
                key_confidence(
                    key_agreement(
                        segments,
                        track_key.key,
                        chroma,
                        bass,
                        fe.tonal_fps,
                        (h_starts, cadence),
                        evidence=(evidence, t_lo),
                    ),
                    track_key.clarity,
                    opening_agrees=opening.key == track_key.key,
                ),
                # a key the file's tag names and the audio allows is not unclear
                TAG_KEY_CLARITY if tag_key is not None and tag_key.used else 0.0,
            ),
            hint=hint,
            tag_tempo=tag_tempo,
            range_tempo=range_tempo,
            tag_key=tag_key,
            loop_bars=loop_bars,
        ),
    )
    if tag_key is not None and tag_key.used and (loop_bars is not None or len(segments) == 1):
        # A loop, or a file that is one phrase, whose tag or name states a key the audio
        # allows: its phrase is the file, and takes that key. Its chroma alone read a sample
        # pack's "F#m" loop as A major, and the matcher and the page named the loop by that.
        # (Without a tag the phrase keeps its own reading: on synthesized loops neither is the
        # nearer to the song's key, ``bench/loops.py``: MIREX track 0.387 / 0.309, phrase
        # 0.349 / 0.343 on two seed sets. After the confidence above: that compares phrase keys.)
        for seg in segments:
            seg.key = track_key.key
            if seg.features is not None:
                seg.features.key_clarity = float(track_key.clarity)
    return analysis


#: Factor of the key confidence when the opening's own key is not the track's
#: (:func:`key_confidence`).
OPENING_DISAGREE_FACTOR = 0.5


def key_confidence(agreement: float, clarity: float, *, opening_agrees: bool) -> float:
    """Confidence of the track key: the lesser of :func:`key_agreement` and the key's clarity
    (its margin over the runner-up), halved when the first bar's own key is another.

    Each cue alone flags wrong keys on some music and not on other: ROC AUC of right against
    wrong keys on the development groups (real dev keyed pieces / 76 Bach chorales / the
    synthesized seed-7 split, analysis v12): agreement 0.63 / 0.55 / 0.66, clarity 0.70 / 0.73 /
    0.56, this combination 0.70 / 0.70 / 0.85 (the mean instead of the lesser: 0.70 / 0.76 /
    0.82, but a track half in one key and half in another then reads 0.73 sure). A piece whose
    opening states another key than the whole is the one a listener would hesitate over too (a
    sonata excerpt that moved to the dominant, a song whose intro sits on the IV).

    >>> key_confidence(0.8, 0.6, opening_agrees=True), key_confidence(0.8, 0.6, opening_agrees=False)
    (0.6, 0.3)
    """
    value = min(float(agreement), float(clarity))
    return round(value * (1.0 if opening_agrees else OPENING_DISAGREE_FACTOR), 6)


def key_agreement(
    segments: list[Segment],
    key: Key,
    chroma: np.ndarray,
    bass: np.ndarray,
    tonal_fps: float,
    cadence: tuple[np.ndarray, np.ndarray],
    *,
    evidence: tuple[KeyEvidence, int] | None = None,
) -> float:
    """Share of the track's time (by phrase segment) whose own key, judged as the track's is
    (chroma, bass, and the bass at the hypermetric downbeats inside it), is the track's key.

    One of the two cues of the key's confidence (:func:`key_confidence`): a piece that leaves
    its key for long (a sonata exposition in the dominant) is one whose key is in doubt. Before
    analysis v12 it was all of it (real dev ROC AUC 0.71, the clarity's 0.47 then; with the opening prior of
    v12 the clarity separates better, 0.70 against this share's 0.63).
    ``cadence``: the start times (s) of the hypermetric spans and their bass chroma.
    ``evidence``: the key network's pass over the track's active span and the tonal frame where
    that span starts; each phrase's own key then has the network's opinion of its frames as a
    prior, as the track's key does (analysis v14; without it, the phrases' profile keys
    disagreed with a network-informed track key for no fault of the track: real dev ROC AUC of
    the key confidence 0.62 -> 0.72, validation chorales 0.62 -> 0.74).
    """
    c_starts, c_rows = cadence
    total = same = 0.0
    for s in segments:
        lo, hi = int(s.start * tonal_fps), max(int(np.ceil(s.end * tonal_fps)), 1)
        inside = (c_starts >= s.start - 1e-6) & (c_starts < s.end)
        prior = None
        if evidence is not None:
            net, first = evidence
            prior = prior_of(net.logits((lo - first) // POOL, -(-(hi - first) // POOL)))
        local = estimate_key(
            chroma[lo:hi],
            bass[lo:hi],
            cadence_chroma=c_rows[inside] if inside.any() else None,
            prior=prior,
        )
        total += s.duration
        same += s.duration * (local.key == key)
    return float(same / total) if total > 0 else 0.0


def estimates_of(
    grid: BeatGrid,
    key: KeyEstimate,
    key_confidence: float | None = None,
    *,
    hint: GridHint | None = None,
    tag_tempo: TagTempo | None = None,
    tag_key: TagKey | None = None,
    loop_bars: int | None = None,
    range_tempo: RangeTempo | None = None,
) -> dict[str, dict[str, Any]]:
    """Confidence and runner-up of each track-level estimate (the ``estimates`` record field).

    ``key_confidence`` defaults to the key's clarity (see :func:`key_agreement`). What the user
    gave of the grid (``hint``) is ``"grid": {"given": {...}}``; what the file's BPM tag did
    (``tag_tempo``) is ``"tempo": {"tags": {...}}``, its key tag (``tag_key``)
    ``"key": {"tags": {...}}``; what the DJ's BPM range did (``range_tempo``) is
    ``"tempo": {"range": {...}}``; a file read as a loop of ``loop_bars`` bars
    (:func:`cratedig.analysis.rhythm.fit_loop`) ``"grid": {"loop": {"bars": n}}``.
    """
    runner = Key.from_index(int(np.argsort(key.scores)[-2]))
    alt = float(grid.tempo_alternative)
    grid_json: dict[str, Any] = {}
    if hint is not None and not hint.empty:
        grid_json["given"] = hint.to_json()
    if loop_bars is not None:
        grid_json["loop"] = {"bars": int(loop_bars)}
    given = {"grid": grid_json} if grid_json else {}
    return given | {
        "tempo": {
            "value": round(float(grid.tempo), 2),
            "confidence": round(float(grid.tempo_confidence), 3),
            "alternative": round(alt, 2) if alt > 0 else None,
            "relation": tempo_relation(grid.tempo, alt) if alt > 0 else None,
        }
        | ({"tags": tag_tempo.to_json()} if tag_tempo is not None else {})
        | ({"range": range_tempo.to_json()} if range_tempo is not None else {}),
        "meter": {
            "value": int(grid.meter),
            "confidence": round(float(grid.meter_confidence), 3),
            "alternative": 3 if grid.meter == 4 else 4,
        },
        "downbeat": {
            "value": round(float(grid.downbeats[0]), 3) if len(grid.downbeats) else None,
            "confidence": round(float(grid.downbeat_confidence), 3),
        },
        "key": {
            "value": key.key.name + (" minor" if key.key.mode == "minor" else " major"),
            "camelot": key.key.camelot,
            "confidence": round(
                float(key.clarity if key_confidence is None else key_confidence), 3
            ),
            "alternative": runner.name + (" minor" if runner.mode == "minor" else " major"),
            "relation": key_relation(key.key, runner),
        }
        | ({"tags": tag_key.to_json()} if tag_key is not None else {}),
    }


def _phrase_segments(
    track_id,
    structure,
    grid,
    starts,
    ends,
    bchroma,
    beat_chroma,
    meter,
    rhythm_rows,
    chroma,
    bass,
    fe,
    blocks,
    track_scores,
) -> list[Segment]:
    section_of_phrase = {}
    labels = {}
    for si, (p0, k, label, _group) in enumerate(structure.sections):
        for p in range(p0, p0 + k):
            section_of_phrase[p] = si
            labels[p] = label
    seg_starts = np.array([starts[b0] for b0, _ in structure.phrases])
    seg_ends = np.array([ends[b0 + n - 1] for b0, n in structure.phrases])
    seg_db = feat.rms_db(fe, seg_starts, seg_ends)
    loudest = float(seg_db.max()) if len(seg_db) else 0.0
    # Pull each segment toward the track key: short spans have little harmonic evidence.
    prior = np.zeros(24)
    prior[int(np.argmax(track_scores))] = SEGMENT_KEY_PRIOR
    tonal_bounds = np.stack(
        [np.floor(seg_starts * fe.tonal_fps), np.ceil(seg_ends * fe.tonal_fps)], axis=1
    ).astype(np.int64)
    segments = []
    for i, (b0, n) in enumerate(structure.phrases):
        lo, hi = tonal_bounds[i]
        hi = max(hi, lo + 1)
        k = estimate_key(chroma[lo:hi], bass[lo:hi], prior=prior)
        s, e = float(seg_starts[i]), float(seg_ends[i])
        in_seg = grid.beats[(grid.beats >= s - 1e-6) & (grid.beats < e - 1e-6)]
        tempo = (
            60.0 / float(np.median(np.diff(in_seg)))
            if (not grid.steady and len(in_seg) >= 3)
            else grid.tempo
        )
        f = SegmentFeatures(
            chroma=bchroma[b0 : b0 + n],
            beat_chroma=beat_chroma[b0 * meter : (b0 + n) * meter],
            rhythm=_max_scale(rhythm_rows[b0 : b0 + n].mean(axis=0)),
            spectral_balance=feat.spectral_balance(fe, s, e),
            energy=float(10 ** ((seg_db[i] - loudest) / 20.0)),
            rms_db=float(seg_db[i]),
            loudness=blocks.integrated(s, e),
            key_clarity=k.clarity,
        )
        segments.append(
            Segment(
                id=f"{track_id}_{i}",
                track_id=track_id,
                index=i,
                level="phrase",
                start=s,
                end=e,
                bar=int(b0),
                bars=int(n),
                label=labels.get(i, "verse"),
                tempo=float(tempo),
                key=k.key,
                features=f,
                section=section_of_phrase.get(i, 0),
            )
        )
    return segments


def _max_scale(x: np.ndarray) -> np.ndarray:
    top = float(np.max(x)) if x.size else 0.0
    return x / top if top > 0 else x
