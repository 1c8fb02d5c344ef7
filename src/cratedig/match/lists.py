"""Training lists from stems: the matcher's own candidate lists, labelled by the stems.

Stem pairs (:mod:`cratedig.learn.pairs`) cut every layer on the mix's grid and draw their
negatives: bent copies of the partner, its other bars, other songs at random. A ranker learns
from them what tells the partner from those negatives, which is not what decides the top of
a real list: there the query is analysed on its own grid, the candidates are cut on theirs,
and the rivals are the candidates the rules rank highest (issue 10: trained on the real stems'
match lists, the held-out partner reached the top 10 for 0.782 of lead phrases, trained on stem
pairs for 0.724, the rule score's own figure).

:func:`mined_lists` builds those lists from stems alone, with no human truth:

1. every song's stems are split into a query layer (the vocal or lead) and a partner layer
   (the sum of the others, :func:`cratedig.learn.pairs.split_stems`);
2. the partner layers, with copies of each transposed by :data:`COPY_SHIFTS` semitones (a
   fourth: its key a fifth away, which the key rule calls fine; a semitone), are analysed as
   tracks of a scratch library, as ``ingest`` would analyse them;
3. each query layer is analysed on its own and matched against that library with the rule
   score (:func:`cratedig.match.query.match_analysis`), keeping every candidate the rules
   accept;
4. a candidate is the partner (label 1) when it is the song's own partner layer at the query
   phrase's bars (starting within half a beat, overlapping at least half of the shorter) or
   under the same chords (its bar chroma correlating at least
   :data:`cratedig.learn.pairs.SAME_CHORDS` with the partner cut on the query's own bars: a
   repeat of the progression fits as well); everything else in the list is a negative.

A phrase whose list holds no partner teaches no ranking and is left out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.analysis.records import Segment, TrackAnalysis
from cratedig.learn.ranker import pair_features
from cratedig.theory import RELATIONS

log = logging.getLogger(__name__)

#: Semitone shifts of the transposed copies of every partner layer in the scratch library.
COPY_SHIFTS: tuple[int, ...] = (5, 1)
#: Candidates kept per query phrase: every one the rules accept in any library a user trains
#: on (a ranker that never saw the candidates below the first hundred puts some of them first).
LIST_TOP = 5000


@dataclass
class TrainingLists:
    """Labelled candidate lists: one row per (query phrase, candidate), rows of a query together.

    ``kinds`` says what each candidate is (``partner``, ``own other bars``, ``copy +5 st``,
    ``other song``) for the reports; ``candidate_songs`` whose stems it was cut from.
    """

    X: np.ndarray
    y: np.ndarray
    names: list[str]
    songs: np.ndarray
    queries: np.ndarray
    kinds: np.ndarray
    candidate_songs: np.ndarray
    #: Read back from the library's cache (:func:`load_lists`) rather than made afresh.
    cached: bool = False

    def __len__(self) -> int:
        return len(self.y)


def list_features(
    records: list[dict[str, Any]], query: Segment, segments: Mapping[str, Segment]
) -> tuple[np.ndarray, list[str]]:
    """The ranker's features (:func:`cratedig.learn.ranker.pair_features`) of ``match``
    candidate records of ``query``, with the score the ranker sees at match time (the rule
    score, before the tempo-doubt weight: ``rule_score``, or read back from ``score`` and the
    doubt note in records written before it existed)."""
    terms = {
        t: np.array([r["terms"][t] for r in records]) for t in records[0]["terms"] if t != "learned"
    }
    return pair_features(
        terms,
        stretch=np.array([r["stretch"] for r in records]),
        semitones=np.array([r["semitones"] for r in records]),
        tempo_ratio=np.array([r["tempo_ratio"] for r in records]),
        query_balance=np.asarray(query.features.spectral_balance, np.float64),
        balance=np.array([segments[r["segment"]].features.spectral_balance for r in records]),
        relation=np.array([RELATIONS.index(r["key_relation"]) for r in records], np.int64),
        rule_score=np.array([rule_score_of(r) for r in records]),
        coverage=np.array([float(r.get("coverage", 1.0)) for r in records]),
    )


def rule_score_of(record: dict[str, Any]) -> float:
    """The rule score of a candidate record as the ranker saw it (before the doubt weight)."""
    if "rule_score" in record:
        return float(record["rule_score"])
    for note in record.get("doubts") or []:
        m = re.search(r"^partner tempo uncertain: .*confidence ([0-9.]+)$", note)
        if m:
            return float(record["score"]) / (0.5 + 0.5 * float(m.group(1)))
    return float(record["score"])


def _same_bars(q: Segment, c: Segment, beat: float) -> bool:
    overlap = min(q.end, c.end) - max(q.start, c.start)
    short = min(q.end - q.start, c.end - c.start)
    return abs(c.start - q.start) <= 0.5 * beat and overlap >= 0.5 * short


def cut_on_query(partner_y: np.ndarray, sr: int, qa: TrackAnalysis, pa: TrackAnalysis) -> list:
    """The partner layer cut on the query analysis' own phrases (empty when the two analyses
    disagree on tempo or meter: their bars then do not compare)."""
    from cratedig.learn.pairs import Grid, segments_on_grid

    if abs(pa.tempo / qa.tempo - 1) > 0.04 or pa.time_signature != qa.time_signature:
        return []
    starts = np.asarray(qa.downbeats, np.float64)
    if len(starts) < 2 or not qa.segments:
        return []
    bar = qa.time_signature[0] * 60.0 / qa.tempo
    ends = np.r_[starts[1:], min(starts[-1] + bar, len(partner_y) / sr)]
    grid = Grid(starts, ends, [(g.bar, g.bars) for g in qa.segments], qa.time_signature[0],
                qa.tempo, pa.tuning)  # fmt: skip
    return segments_on_grid(partner_y, sr=sr, grid=grid, track_id="ideal")


def _same_chords(ideal: Segment, c: Segment) -> bool:
    from cratedig.learn.pairs import SAME_CHORDS, chord_similarity

    n_ideal, n_c = len(ideal.features.chroma), len(c.features.chroma)
    return 2 * min(n_ideal, n_c) >= n_ideal > 0 and chord_similarity(ideal, c) >= SAME_CHORDS


def _kind(track_id: str, song: str) -> str:
    if track_id == f"{song}-partner":
        return "own other bars"
    if track_id.startswith(f"{song}-partner"):
        return "copy " + track_id.rsplit("_", 1)[-1] + " st"
    return "other song"


#: A song's stems: arrays at the lists' rate, or files to decode (stem name -> (path, stream)).
StemSource = Mapping[str, np.ndarray] | Mapping[str, tuple[str, int]]


@dataclass
class _SongLayers:
    """One song's layers analysed (what a worker hands back)."""

    name: str
    query: TrackAnalysis
    versions: list[tuple[str, TrackAnalysis, str]]  # track id, analysis, audio file written
    ideal: list[Segment]  # the partner layer cut on the query's own phrases


def _analyse_song(context: tuple[int, tuple[int, ...], str], item: tuple[str, StemSource]) -> Any:
    """Decode (where given files), split, transpose and analyse one song's layers (a worker)."""
    import soundfile as sf
    from pedalboard import time_stretch

    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.audio.decode import decode
    from cratedig.learn.pairs import split_stems

    sr, shifts, folder = context
    name, source = item
    stems = {
        stem: (decode(v[0], sr=sr, stream=v[1]).samples if isinstance(v, tuple) else v)
        for stem, v in source.items()
    }
    query_y, partner_y = split_stems(stems)
    del stems
    audio = {f"{name}-partner": partner_y}
    for k in shifts:
        shifted = time_stretch(
            partner_y[None], sr, stretch_factor=1.0, pitch_shift_in_semitones=float(k)
        )[0]
        audio[f"{name}-partner_+{k}"] = np.asarray(shifted, np.float32)
    versions = []
    for i, (track_id, y) in enumerate(audio.items()):
        path = Path(folder) / f"{hashlib.sha1(name.encode()).hexdigest()[:16]}-{i}.wav"
        sf.write(path, y, sr, subtype="FLOAT")
        a = analyze_signal(y, sr=sr, path=str(path), track_id=track_id)
        a.duration = len(y) / sr
        versions.append((track_id, a, str(path)))
    qa = analyze_signal(query_y, sr=sr, track_id=f"{name}-query")
    return _SongLayers(name, qa, versions, cut_on_query(partner_y, sr, qa, versions[0][1]))


def mined_lists(
    songs: Mapping[str, StemSource],
    *,
    sr: int,
    copy_shifts: tuple[int, ...] = COPY_SHIFTS,
    executor: Any = None,
    progress: Callable[..., None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> TrainingLists | None:
    """The matcher's candidate lists for every song's query layer, labelled by its stems.

    Parameters
    ----------
    songs : mapping of song name to StemSource
        Each song's stems, sample-aligned, one of them a vocal or lead
        (:data:`cratedig.learn.pairs.QUERY_STEMS`): arrays at ``sr``, or ``(path, stream)``
        of each stem file, decoded where the song is analysed (so that a large library is
        never in memory at once).
    sr : int > 0
    copy_shifts : tuple of int
        Transposed copies of each partner layer put among the candidates.
    executor : cratedig.compute.Executor, optional
        Where the songs are analysed (a local one: the layers' audio is written to a scratch
        folder of this machine); one song after the other in this process when None.
    progress : callable, optional
        ``progress(event, **details)`` as ingest reports it: ``"planned"`` (``total`` songs),
        then ``"done"`` per song (``path``: the song, ``status``: ``"analysed"`` or
        ``"failed"``), then ``"lists"`` when the songs are matched. An exception it raises
        (a cancel) stops the mining; the scratch library is closed and removed.
    on_skip : callable, optional
        ``on_skip(song, reason)`` for a song that could not be decoded, split or analysed (it is
        left out; logged when None).

    Returns
    -------
    TrainingLists or None
        None when no query phrase found its partner in its list.
    """
    from cratedig.compute import InProcessExecutor
    from cratedig.learn.pairs import MIN_QUERY_DB
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library
    from cratedig.match.query import MatchOptions, match_analysis
    from cratedig.match.store import sync_index

    say = progress or (lambda event, **details: None)
    skip = on_skip or (lambda song, why: log.warning("lists: song %s left out: %s", song, why))
    keys = ("X", "y", "songs", "queries", "kinds", "candidate_songs")
    rows: dict[str, list[Any]] = {k: [] for k in keys}
    names: list[str] = []
    run = executor if executor is not None else InProcessExecutor()
    with tempfile.TemporaryDirectory(prefix="cratedig-lists-") as tmp:
        lib = open_library(f"sqlite:///{Path(tmp) / 'lists.sqlite'}")
        try:
            layers: dict[str, _SongLayers] = {}
            song_of: dict[str, str] = {}
            items = sorted(songs.items())
            say("planned", total=len(items))
            for (name, _), got in run.imap_unordered(
                _analyse_song, items, context=(sr, tuple(copy_shifts), tmp)
            ):
                if isinstance(got, BaseException):
                    skip(name, str(got) or type(got).__name__)
                    say("done", path=name, status="failed")
                    continue
                with lib.transaction() as s:
                    for track_id, a, path in got.versions:
                        st = Path(path).stat()
                        repo.store_analysis(s, a)
                        repo.record_file(
                            s,
                            path=path,
                            track_id=track_id,
                            size=st.st_size,
                            mtime_ns=st.st_mtime_ns,
                        )
                        song_of[track_id] = name
                layers[name] = got
                say("done", path=name, status="analysed")
            say("lists")
            index, _ = sync_index(lib)
            with lib.reader() as s:
                segs = {g.id: g for g in repo.load_segments(s)}
            by_track: dict[str, list[Segment]] = {}
            for g in segs.values():
                by_track.setdefault(g.track_id, []).append(g)
            opt = MatchOptions(top=LIST_TOP, fetch=LIST_TOP)
            for name, got in sorted(layers.items()):
                qa, ideal = got.query, got.ideal
                own = by_track.get(f"{name}-partner", [])
                beat = 60.0 / qa.tempo
                result = match_analysis(lib, index, qa, options=opt)
                for qi, (q, m) in enumerate(zip(qa.segments, result.matches, strict=True)):
                    if q.features is None or q.features.rms_db < MIN_QUERY_DB or not m.candidates:
                        continue
                    right = {c.id for c in own if _same_bars(q, c, beat)}
                    if qi < len(ideal):
                        right |= {c.id for c in own if _same_chords(ideal[qi], c)}
                    y = np.array([r["segment"] in right for r in m.candidates], int)
                    if not y.any():
                        continue
                    X, names = list_features(m.candidates, q, segs)
                    rows["X"].append(X)
                    rows["y"].append(y)
                    rows["songs"].append(np.full(len(y), name, dtype=object))
                    rows["queries"].append(np.full(len(y), f"{name}:{qi}", dtype=object))
                    rows["candidate_songs"].append(
                        np.array([song_of[r["track_id"]] for r in m.candidates], dtype=object)
                    )
                    rows["kinds"].append(
                        np.array(
                            ["partner" if v else _kind(r["track_id"], name)
                             for r, v in zip(m.candidates, y, strict=True)],
                            dtype=object,
                        )
                    )  # fmt: skip
        finally:
            lib.close()
    if not rows["y"]:
        return None
    return TrainingLists(
        X=np.concatenate(rows["X"]),
        y=np.concatenate(rows["y"]),
        names=names,
        songs=np.concatenate(rows["songs"]).astype(str),
        queries=np.concatenate(rows["queries"]).astype(str),
        kinds=np.concatenate(rows["kinds"]).astype(str),
        candidate_songs=np.concatenate(rows["candidate_songs"]).astype(str),
    )


#: Modules whose code decides the lists (besides the analysis, versioned on its own): a cache
#: of lists made by other code is not used.
_LIST_CODE = (
    "cratedig.match.lists",
    "cratedig.match.query",
    "cratedig.match.scoring",
    "cratedig.match.batch",
    "cratedig.learn.ranker",
    "cratedig.learn.pairs",
)


def lists_key(songs: Mapping[str, Mapping[str, tuple[str, int]]], *, sr: int) -> str:
    """A key of everything the lists of these stem files depend on: each stem file's path,
    size and modification time, the analysis version, the copies, the rate, the list length and
    the code of the modules that make and score them (:data:`_LIST_CODE`)."""
    import importlib
    import json
    import os

    from cratedig.analysis.pipeline import ANALYSIS_VERSION

    files = []
    for name in sorted(songs):
        for stem, (path, stream) in sorted(songs[name].items()):
            st = os.stat(path)
            files.append([name, stem, str(path), int(stream), st.st_size, st.st_mtime_ns])
    h = hashlib.sha256()
    h.update(json.dumps([files, ANALYSIS_VERSION, list(COPY_SHIFTS), sr, LIST_TOP]).encode())
    for module in _LIST_CODE:
        source = importlib.import_module(module).__file__
        if source is not None:
            h.update(Path(source).read_bytes())
    return h.hexdigest()[:20]


_FIELDS = ("X", "y", "songs", "queries", "kinds", "candidate_songs")


def save_lists(lists: TrainingLists, path: Path, *, failed: Mapping[str, str]) -> None:
    """Write ``lists`` (and the songs that failed, with why) as a ``.npz`` of plain arrays
    (read back without pickle), atomically."""
    from cratedig.fileio import atomic_path

    arrays = {k: np.asarray(getattr(lists, k)) for k in _FIELDS}
    for k in ("songs", "queries", "kinds", "candidate_songs"):
        arrays[k] = arrays[k].astype(str)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        arrays["names"] = np.array(lists.names, dtype=str)
        arrays["failed"] = np.array(sorted(failed.items()), dtype=str).reshape(-1, 2)
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub: names only


def load_lists(path: Path) -> tuple[TrainingLists, dict[str, str]]:
    """:func:`save_lists`' file -> (lists, failed songs and why); ValueError/OSError when it is
    damaged or not such a file."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            got = {k: z[k] for k in (*_FIELDS, "names", "failed")}
    except (zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(f"{path.name}: {exc or type(exc).__name__}") from exc
    n = len(got["y"])
    if got["X"].ndim != 2 or any(len(got[k]) != n for k in _FIELDS):
        raise ValueError(f"{path.name}: arrays of different lengths")
    lists = TrainingLists(
        X=got["X"].astype(np.float64),
        y=got["y"].astype(int),
        names=[str(x) for x in got["names"]],
        songs=got["songs"],
        queries=got["queries"],
        kinds=got["kinds"],
        candidate_songs=got["candidate_songs"],
        cached=True,
    )
    if lists.X.shape[1] != len(lists.names):
        raise ValueError(f"{path.name}: {lists.X.shape[1]} columns, {len(lists.names)} names")
    return lists, {str(a): str(b) for a, b in got["failed"]}
