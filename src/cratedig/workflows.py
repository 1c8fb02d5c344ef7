"""The application layer: every workflow a front end offers, written once.

The command line (:mod:`cratedig.cli`), the demo (:mod:`cratedig.demo`) and the web service
(:mod:`cratedig.service`) call these functions and print or return what they give back, so the
JSON ``cratedig match --json`` prints is the JSON ``POST /api/match`` answers. Each function
takes an open :class:`~cratedig.library.db.Library` and names its parameters in the domain's
words (``max_shift``, ``tempo_ratio``), never as command-line flags.

- :func:`update_library`: ingest a folder, then bring the match index and the segment clusters
  up to date (cancellable, with progress);
- :func:`resolve_query`: the analysis of a file (in the library or not) or a library track id;
- :func:`match`: per query phrase, the ranked partners (:class:`~cratedig.match.query.MatchResult`);
- :func:`render_pair`: hear a suggestion; the query may be a file that is not in the library;
- :func:`render_mashup`: a partner for every phrase of a song, layered, with its cue sheet;
- :func:`rate`, :func:`list_ratings`: the user's 1-5 scores of suggestions;
- :func:`train_ranker`, :func:`evaluate_rankers`: learn from stems and ratings, and measure
  rule vs learned vs blend on held-out tracks;
- :func:`list_tracks`, :func:`track_detail`: browse the library.

Examples
--------
>>> from cratedig import workflows
>>> from cratedig.library.db import open_library
>>> with open_library("crate.db") as lib:  # doctest: +SKIP
...     update = workflows.update_library(lib, "~/Music")
...     result = workflows.match(lib, "song.mp3", top=3)
...     best = result.matches[0].candidates[0]
...     pair = workflows.render_pair(lib, result.matches[0].query.id, best["segment"],
...                                  query_file="song.mp3")
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cratedig.analysis.records import TrackAnalysis
from cratedig.audio.decode import MAX_DURATION
from cratedig.errors import AudioError, OutputError, ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.query import MatchOptions, MatchResult
from cratedig.match.scoring import DEFAULT_MAX_SHIFT, DEFAULT_MAX_STRETCH
from cratedig.render.service import AudioLoader, Mashup, RenderedPair

if TYPE_CHECKING:
    from cratedig.analysis.rhythm import GridHint

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "DEFAULT_MAX_STRETCH",
    "DEFAULT_PER_TRACK",
    "DEFAULT_TOP",
    "MAX_DURATION",
    "LibraryUpdate",
    "ScanCancelled",
    "activate_model",
    "active_ranker",
    "check_trainable",
    "evaluate_rankers",
    "import_rekordbox_grids",
    "list_models",
    "list_ratings",
    "list_tracks",
    "match",
    "partner_fit",
    "rate",
    "regrid",
    "render_mashup",
    "render_pair",
    "resolve_query",
    "resolve_tracks",
    "stem_training_lists",
    "stem_training_pairs",
    "tag_name",
    "track_detail",
    "track_names",
    "train_ranker",
    "update_library",
]

#: Candidates per query phrase unless asked otherwise.
DEFAULT_TOP = 5
#: Phrases of one track per query segment that ``match`` (CLI, service, web page) lists by
#: default: the best phrase of a song and one alternative, so that five suggestions name
#: several songs. 0 lists every phrase.
DEFAULT_PER_TRACK = 2
#: Candidates per phrase a mashup plan chooses from.
MASHUP_TOP = 8

TRACK_ID = re.compile(r"^[0-9a-f]{16}$")
SEGMENT_ID = re.compile(r"^([0-9a-f]{16})_(\d+)$")

ProgressCallback = Callable[..., None]


def _no_progress(event: str, **details: Any) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# Library


class ScanCancelled(KeyboardInterrupt):
    """Raised inside an ingest's loop when its ``cancel`` event is set; the ingest keeps what
    it stored (as after Ctrl-C) and :func:`update_library` raises
    :class:`~cratedig.library.ingest.IngestInterrupted`."""


@dataclass
class LibraryUpdate:
    """What :func:`update_library` did: the ingest, the match index, the clusters."""

    ingest: Any  # IngestReport
    index: Any  # IndexSync
    clusters: Any  # ClusterReport
    segments: int = 0
    #: Tracks this run stored that are another file of a recording the library holds
    #: (:func:`cratedig.library.duplicates.copies_of_run`).
    same_recording: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ingest report with ``index``, ``clusters`` and ``same_recording`` (``cratedig
        ingest --json``)."""
        return {
            **self.ingest.to_json(),
            "index": self.index.to_json(),
            "clusters": self.clusters.to_json(),
            "same_recording": self.same_recording,
        }


def update_library(
    library: Library,
    folder: str | os.PathLike[str],
    *,
    executor: Any = None,
    slices_dir: str | os.PathLike[str] | None = None,
    slice_fmt: str = "flac",
    retry_failed: bool = False,
    max_duration: float = MAX_DURATION,
    use_tags: bool = True,
    bpm_range: tuple[float, float] | str | None = None,
    progress: ProgressCallback = _no_progress,
    cancel: threading.Event | None = None,
) -> LibraryUpdate:
    r"""Ingest the audio under ``folder``, then update the match index and segment clusters.

    Parameters
    ----------
    library : Library
    folder : path-like
        Scanned recursively; only new or changed files are analysed.
    executor : Executor, optional
        Where analysis runs (:func:`cratedig.compute.make_executor`); default: this process.
    slices_dir, slice_fmt, retry_failed, max_duration, use_tags, bpm_range
        As :func:`cratedig.library.ingest.ingest`.
    progress : callable
        ``progress(event, **details)``: the ingest's ``"planned"`` (``total``) and ``"done"``
        (``path``, ``status``) per file, then ``"index"`` and ``"clusters"``.
    cancel : threading.Event, optional
        Set it (from another thread) to stop after the file being stored.

    Returns
    -------
    LibraryUpdate

    Raises
    ------
    LibraryError
        ``folder`` does not exist, or the database failed.
    IngestInterrupted
        Interrupted or cancelled during the ingest: what was stored stays (``.report``); the
        index is not updated.
    ScanCancelled
        ``cancel`` was set before anything started. Both are ``KeyboardInterrupt``\ s.
    """
    from cratedig.learn.clusters import refresh_clusters
    from cratedig.library.duplicates import copies_of_run
    from cratedig.library.errors import LibraryError
    from cratedig.library.ingest import ingest
    from cratedig.match.store import sync_index

    if not Path(folder).expanduser().exists():
        raise LibraryError(f"{folder}: no such folder")

    def on_event(event: str, **details: Any) -> None:
        progress(event, **details)
        # Only between two files: there the ingest catches the interrupt and keeps its report.
        if event == "done" and cancel is not None and cancel.is_set():
            raise ScanCancelled()

    if cancel is not None and cancel.is_set():
        raise ScanCancelled()

    report = ingest(
        library,
        folder,
        executor=executor,
        slices_dir=slices_dir,
        slice_fmt=slice_fmt,
        retry_failed=retry_failed,
        max_duration=max_duration,
        use_tags=use_tags,
        bpm_range=bpm_range,
        progress=on_event,
    )
    progress("index")
    index, synced = sync_index(library)
    progress("clusters")
    clusters = refresh_clusters(library)
    copies = copies_of_run(library, report.ingest_id) if report.analysed else []
    return LibraryUpdate(report, synced, clusters, segments=len(index), same_recording=copies)


def list_tracks(
    library: Library,
    *,
    key: str | None = None,
    bpm: str | tuple[float, float] | None = None,
    text: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    quality: str | None = None,
    sort: str = "tempo",
    descending: bool = False,
    kind: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Tracks by key (Camelot or name), BPM range, text (in the path, the id or the tags: artist,
    title, album, genre), kind (``"loops"``, ``"songs"``) and input quality (``"low"``:
    suspects only, ``"ok"``), in ``sort``
    order (:data:`TRACK_SORTS`: ``tempo``, slowest first, by default; ``name`` is "Artist -
    Title" from the tags, else the file name; ``camelot`` goes round the wheel, 1A 1B 2A...).

    Returns the page ``[offset, offset + limit)`` of the tracks' JSON (``cratedig tracks
    --json``, plus ``energy``: the mean of its phrases') and how many tracks match in all.
    """
    if offset < 0:
        raise ParameterError(f"offset={offset} must be >= 0")
    if limit is not None and limit < 1:
        raise ParameterError(f"limit={limit} must be >= 1")
    if sort not in TRACK_SORTS:
        raise ParameterError(f"sort={sort!r} must be one of {', '.join(TRACK_SORTS)}")
    with library.reader() as s:
        rows = repo.query_tracks(s, key=key, bpm=bpm, quality=quality, kind=kind)
        energy = repo.track_energies(s)
    if text:
        needle = text.strip().lower()
        rows = [
            r
            for r in rows
            if needle in r.path.lower()
            or r.track_id.startswith(needle)
            or any(needle in str(v).lower() for v in r.tags.values())
        ]
    total = len(rows)

    def order(r: Any) -> Any:
        if sort == "name":
            return _display_name(r.tags, r.path).lower()
        if sort == "camelot":
            number, letter = int(r.camelot[:-1]), r.camelot[-1]
            return (number, letter)
        if sort == "energy":
            return energy.get(r.track_id, 0.0)
        return getattr(r, sort)

    # stable: ties keep the slowest-first order of the query
    rows = sorted(rows, key=order, reverse=descending)
    page = rows[offset : None if limit is None else offset + limit]
    out = []
    for r in page:
        j = r.to_json()
        j["energy"] = round(energy.get(r.track_id, 0.0), 4)
        out.append(j)
    return out, total


#: The orders :func:`list_tracks` sorts in (``cratedig tracks``, ``GET /api/tracks?sort=``).
TRACK_SORTS = ("tempo", "name", "camelot", "energy", "duration")


def tag_name(tags: dict[str, Any]) -> str:
    """ "Artist – Title" from a track's tags (either alone if the other is missing), or ""."""
    return " – ".join(str(tags[k]) for k in ("artist", "title") if tags.get(k))


def _display_name(tags: dict[str, Any], path: str) -> str:
    """:func:`tag_name`, else the file name."""
    return tag_name(tags) or Path(path).name


def track_names(library: Library, track_ids: Iterable[str]) -> dict[str, str]:
    """ "Artist – Title" of each track whose file's tags name it (either alone if the other is
    missing); tracks without such tags are left out (show their file name)."""
    out: dict[str, str] = {}
    with library.reader() as s:
        for tid in sorted(set(track_ids)):
            name = tag_name(repo.track_tags(s, tid))
            if name:
                out[tid] = name
    return out


def track_detail(library: Library, track_id: str) -> dict[str, Any] | None:
    """One track's analysis JSON (``analyze --json``) with its files and ``tags`` (what its
    file's tags say, :func:`cratedig.audio.tags.read_tags`), or None if unknown."""
    with library.reader() as s:
        a = repo.load_analysis(s, track_id)
        paths = repo.track_paths(s, track_id) if a is not None else []
        tags = repo.track_tags(s, track_id)
    if a is None:
        return None
    a.path = paths[0] if paths else ""
    return {**a.to_json(), "paths": paths, "tags": tags}


# ---------------------------------------------------------------------------------------------
# Matching


def _short_id(text: str | os.PathLike[str]) -> str:
    """A hint when ``text`` looks like a track id prefix too short to name a track (the
    library table cuts ids to fit the terminal: "3b14f…")."""
    t = os.fspath(text).strip().rstrip("…").lower()
    if re.fullmatch(r"[0-9a-f]{1,5}", t):
        return (
            " (a track id prefix needs at least 6 hex digits; `cratedig tracks --json` shows "
            "whole ids)"
        )
    return ""


def resolve_query(
    library: Library,
    query: str | os.PathLike[str],
    *,
    max_duration: float = MAX_DURATION,
    hint: GridHint | None = None,
) -> tuple[TrackAnalysis, bool]:
    """The analysis of ``query`` and whether it is a library track.

    ``query`` is an audio file (analysed now; when the library holds the same audio at the
    current analysis version, its stored analysis is used, so segment ids are the library's)
    or a library track id or id prefix.

    ``hint``: what the user knows of the grid (a tempo, a bar line, beats per bar); the query
    is analysed afresh on that grid (:func:`cratedig.analysis.rhythm.track_beats`), a library
    track from its file, instead of the stored analysis.

    Raises
    ------
    ParameterError
        Neither a file nor a known track id; a hint for a library track whose file is gone.
    AudioError
        The file cannot be analysed.
    """
    from cratedig.analysis.pipeline import analyze_file

    if hint is not None and hint.empty:
        hint = None
    with library.reader() as s:
        tempo_range = repo.stored_bpm_range(s)  # the DJ's BPM range, as the library reads
    path = Path(query).expanduser()
    if path.exists():
        analysis = analyze_file(path, max_duration=max_duration, hint=hint, bpm_range=tempo_range)
        stored = stored_analysis(library, analysis)
        if stored is not None and hint is None:
            stored.path = str(path)
            return stored, True
        return analysis, stored is not None
    text = os.fspath(query)
    with library.reader() as s:
        track_id = repo.resolve_track_id(s, text)
        stored = repo.load_analysis(s, track_id) if track_id else None
        paths = repo.track_paths(s, track_id) if stored is not None and track_id else []
    if stored is None:
        raise ParameterError(
            f"{text}: neither an audio file nor a track id in the library{_short_id(text)}"
        )
    if hint is not None:
        here = [p for p in paths if os.path.exists(p)]
        if not here:
            raise ParameterError(
                f"{text}: the track's file is gone, so it cannot be analysed again on the "
                f"grid given ({hint.describe()}); match it without one or give its file"
            )
        return analyze_file(
            here[0], max_duration=max_duration, hint=hint, bpm_range=tempo_range
        ), True
    if paths:
        stored.path = next((p for p in paths if os.path.exists(p)), paths[0])
    return stored, True


@dataclass
class Regrid:
    """What :func:`regrid` did: the grid before and after, and the ratings that followed."""

    track_id: str
    path: str
    given: dict[str, Any]  # what the user gave (empty: the analysis' own grid again)
    before: dict[str, Any]
    after: dict[str, Any]
    ratings: dict[str, int]
    segments: int

    def to_json(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "path": self.path,
            "given": self.given,
            "before": self.before,
            "after": self.after,
            "ratings": self.ratings,
            "segments": self.segments,
        }


def _grid_summary(a: TrackAnalysis) -> dict[str, Any]:
    return {
        "tempo": round(float(a.tempo), 2),
        "beats_per_bar": int(a.time_signature[0]),
        "first_downbeat": round(float(a.downbeats[0]), 3) if len(a.downbeats) else None,
        "segments": len(a.segments),
    }


@dataclass
class _RegridPlan:
    """A library track to analyse again on a grid (:func:`regrid`)."""

    track_id: str
    path: str
    hint: GridHint | None
    before: TrackAnalysis
    ingest_id: str | None


def _regrid_plan(library: Library, track: str, hint: GridHint | None) -> _RegridPlan:
    """Resolve ``track``, find a file of it on disk and merge ``hint`` with the stored one."""
    if hint is not None and hint.empty:
        hint = None
    path = Path(track).expanduser()
    with library.reader() as s:
        if path.is_file():
            track_id = repo.track_of_path(s, os.path.abspath(path))
        else:
            track_id = repo.resolve_track_id(s, os.fspath(track))
        before = repo.load_analysis(s, track_id) if track_id else None
        paths = repo.track_paths(s, track_id) if track_id else []
        row_ingest = repo.track_ingest_id(s, track_id) if track_id else None
        stored = repo.grid_hints(s, [track_id]).get(track_id) if track_id else None
    if track_id is None or before is None:
        raise ParameterError(
            f"{track}: not a track of the library (a track id or a file of it){_short_id(track)}"
        )
    if hint is not None and stored:
        from cratedig.analysis.rhythm import GridHint as _GridHint

        hint = _GridHint.from_json({**stored, **hint.to_json()})
    here = [p for p in paths if os.path.exists(p)]
    if not here:
        raise ParameterError(
            f"{track}: the track's files are gone ({', '.join(paths) or 'none recorded'}), so it "
            "cannot be analysed again; ingest its folder where it is now"
        )
    return _RegridPlan(track_id, here[0], hint, before, row_ingest)


def _regrid_analysis(
    max_duration: float,
    item: tuple[str, dict[str, Any] | None, tuple[float, float] | None],
) -> TrackAnalysis:
    """Worker: the analysis of file ``item[0]`` on the grid of hint JSON ``item[1]``, in the
    library's BPM range ``item[2]`` (a tempo in the hint wins over it)."""
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.analysis.rhythm import GridHint as _GridHint

    path, given, tempo_range = item
    hint = _GridHint.from_json(given) if given else None
    return analyze_file(path, max_duration=max_duration, hint=hint, bpm_range=tempo_range)


def _store_regrid(library: Library, plan: _RegridPlan, analysis: TrackAnalysis) -> Regrid:
    """Store the new analysis of ``plan``'s track and keep its hint (no index sync)."""
    if analysis.track_id != plan.track_id:
        raise ParameterError(
            f"{plan.path} no longer holds track {plan.track_id} (its audio changed): run "
            "ingest on its folder first"
        )
    reattached = repo.Reattachment()
    with library.transaction() as s:
        repo.store_analysis(s, analysis, ingest_id=plan.ingest_id, reattached=reattached)
        repo.set_grid_hint(s, plan.track_id, plan.hint.to_json() if plan.hint else None)
    return Regrid(
        track_id=plan.track_id,
        path=plan.path,
        given=plan.hint.to_json() if plan.hint is not None else {},
        before=_grid_summary(plan.before),
        after=_grid_summary(analysis),
        ratings={
            "kept": reattached.kept,
            "moved": reattached.moved,
            "orphaned": reattached.orphaned,
        },
        segments=len(analysis.segments),
    )


def _sync_after_regrid(library: Library) -> None:
    from cratedig.learn.clusters import refresh_clusters
    from cratedig.match.store import sync_index

    sync_index(library)
    refresh_clusters(library)


def regrid(
    library: Library,
    track: str,
    hint: GridHint | None,
    *,
    max_duration: float = MAX_DURATION,
    sync: bool = True,
) -> Regrid:
    """Analyse a library track again on the grid its user gives, and keep that grid for it.

    As a DJ fixes a beat grid in rekordbox or Mixxx: ``hint`` says the tempo, a time where a
    bar starts and/or the beats per bar (:class:`~cratedig.analysis.rhythm.GridHint`); the
    track is analysed again from its file on that grid, its phrases and features replace the
    old ones (its ratings follow their music, :func:`~cratedig.library.repository.reattach_ratings`),
    the match index and clusters are brought up to date, and the hint is stored with the track
    so that every later re-analysis (a new analysis version) lays the same grid. What is given
    adds to the hint stored before (a tempo first, then a bar line: both are kept; a field
    given again replaces its value). ``hint=None`` (or empty) forgets the stored hint and
    restores the analysis' own grid.

    ``track``: a track id or id prefix, or a path of one of its files. ``sync=False`` leaves
    the match index and clusters to the caller (several tracks regridded, then one sync).

    Raises
    ------
    ParameterError
        Not a library track; its files are gone; the file now holds other audio; a bar line
        past the end of the audio.
    AudioError
        The file cannot be analysed.
    """
    plan = _regrid_plan(library, track, hint)
    given = plan.hint.to_json() if plan.hint is not None else None
    with library.reader() as s:
        tempo_range = repo.stored_bpm_range(s)
    done = _store_regrid(
        library, plan, _regrid_analysis(max_duration, (plan.path, given, tempo_range))
    )
    if sync:
        _sync_after_regrid(library)
    return done


#: A rekordbox grid agrees with the analysis (nothing to do) when its BPM is within this share
#: of the analysis' tempo and the analysis' bar lines lie within this many seconds of its
#: bar grid (median), at the same beats per bar.
GRID_AGREES_TEMPO = 0.002
GRID_AGREES_SECONDS = 0.02


def _bars_agree(
    a: TrackAnalysis,
    downbeat: float,
    bpm: float | None,
    meter: int | None,
    bar_lines: Sequence[float] = (),
) -> bool:
    """Whether the analysis' grid is the rekordbox grid's: same meter, tempo within
    :data:`GRID_AGREES_TEMPO` (a steady grid), and its bar lines within
    :data:`GRID_AGREES_SECONDS` (median) of the grid's. A grid whose tempo moves (``bpm``
    None) is compared bar line by bar line (``bar_lines``), as its own marks lay them out: a
    constant bar from its first bar line would drift off the analysis' own bar lines (a
    collection exported by cratedig and read back would not agree with itself)."""
    import numpy as np

    if meter is not None and meter != a.time_signature[0]:
        return False
    if bpm is not None and abs(a.tempo / bpm - 1.0) > GRID_AGREES_TEMPO:
        return False
    d = np.asarray(a.downbeats, dtype=np.float64)
    if len(d) == 0:
        return False
    lines = np.asarray(bar_lines, dtype=np.float64)
    if bpm is None and len(lines) >= 2:
        inside = d[(d >= lines[0] - GRID_AGREES_SECONDS) & (d <= lines[-1] + GRID_AGREES_SECONDS)]
        if len(inside) == 0:
            return False
        i = np.clip(np.searchsorted(lines, inside), 1, len(lines) - 1)
        off = np.minimum(np.abs(inside - lines[i - 1]), np.abs(inside - lines[i]))
        return bool(np.median(off) <= GRID_AGREES_SECONDS)
    bar = a.time_signature[0] * 60.0 / (bpm or a.tempo)
    off = np.mod(d - downbeat + bar / 2, bar) - bar / 2
    return bool(np.median(np.abs(off)) <= GRID_AGREES_SECONDS)


def import_rekordbox_grids(
    library: Library,
    source: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    max_duration: float = MAX_DURATION,
    executor: Any = None,
    progress: ProgressCallback = _no_progress,
) -> list[dict[str, Any]]:
    """Take the beat grids a DJ set in rekordbox (its XML collection) for the library's tracks.

    For each track of the collection with a grid (:func:`cratedig.library.rekordbox.read_grids`)
    whose file is a library file: where the library's grid already agrees (tempo within
    :data:`GRID_AGREES_TEMPO`, bar lines within :data:`GRID_AGREES_SECONDS`, same beats per
    bar) nothing is done; otherwise the track is :func:`regrid`-ded on rekordbox's tempo, first
    bar line and meter, and keeps them. The analyses run on ``executor``
    (:func:`cratedig.compute.make_executor`; default: this process), each stored as it
    finishes. One row per collection track: ``path``, ``track_id``, ``action`` (``agrees``,
    ``regridded``, ``would regrid`` with ``dry_run``, ``not in the library``, ``failed`` with
    its ``reason``), ``given`` and, when regridded, ``before``/``after``. The match index and
    clusters are synced once at the end.
    """
    from cratedig.analysis.rhythm import GridHint
    from cratedig.compute import InProcessExecutor
    from cratedig.library.rekordbox import read_grids

    grids = read_grids(source)
    progress("planned", total=len(grids))
    rows: list[dict[str, Any]] = []
    plans: dict[str, tuple[_RegridPlan, dict[str, Any]]] = {}  # by track id
    for g in grids:
        row: dict[str, Any] = {"path": g.path, "track_id": None, "action": None}
        rows.append(row)
        with library.reader() as s:
            tid = repo.track_of_path(s, g.path)
            a = repo.load_analysis(s, tid) if tid else None
        try:
            hint = GridHint(bpm=g.bpm, downbeat=g.downbeat, beats_per_bar=g.beats_per_bar)
            row.update(track_id=tid, given=hint.to_json())
            if tid is None or a is None:
                row["action"] = "not in the library"
            elif _bars_agree(a, g.downbeat, g.bpm, g.beats_per_bar, g.bar_lines):
                row["action"] = "agrees"
            elif tid in plans:
                # two files of one track in the collection: the first one's grid is taken
                row.update(action="duplicate", reason=f"same audio as {plans[tid][1]['path']}")
            elif dry_run:
                row["action"] = "would regrid"
                plans[tid] = (_regrid_plan(library, tid, hint), row)
            else:
                plans[tid] = (_regrid_plan(library, tid, hint), row)
                continue
        except ParameterError as exc:
            row.update(action="failed", reason=str(exc))
        progress("done", path=g.path, status=row["action"])
    todo = {tid: v for tid, v in plans.items() if v[1]["action"] is None}
    if todo:
        executor = executor or InProcessExecutor()
        with library.reader() as s:
            tempo_range = repo.stored_bpm_range(s)
        items = [
            (p.path, p.hint.to_json() if p.hint else None, tempo_range) for p, _ in todo.values()
        ]
        by_file = {p.path: (p, row) for p, row in todo.values()}
        for item, result in executor.imap_unordered(_regrid_analysis, items, context=max_duration):
            plan, row = by_file[item[0]]
            try:
                if isinstance(result, BaseException):
                    raise result
                done = _store_regrid(library, plan, result)
            except (ParameterError, AudioError) as exc:
                row.update(action="failed", reason=getattr(exc, "reason", None) or str(exc))
            else:
                row.update(action="regridded", before=done.before, after=done.after)
            progress("done", path=row["path"], status=row["action"])
        if any(r["action"] == "regridded" for r in rows):
            _sync_after_regrid(library)
    return rows


def resolve_tracks(library: Library, names: Sequence[str]) -> tuple[str, ...]:
    """Library track ids of ``names``: each a file the library holds or a track id (prefix).

    Raises
    ------
    ParameterError
        A name that is neither (a file not ingested yet says so).
    """
    out: list[str] = []
    with library.reader() as s:
        for name in names:
            path = Path(name).expanduser()
            if path.is_file():
                found = repo.track_of_path(s, os.path.abspath(path))
                if found is None:
                    raise ParameterError(f"{name}: not in the library (ingest it first)")
            else:
                found = repo.resolve_track_id(s, os.fspath(name))
                if found is None:
                    raise ParameterError(
                        f"{name}: neither a library file nor a track id (no such file, and no "
                        f"library track id starts with it){_short_id(name)}"
                    )
            if found not in out:
                out.append(found)
    return tuple(out)


def partner_fit(
    library: Library, analysis: TrackAnalysis, tracks: Sequence[str], options: MatchOptions
) -> list[str]:
    """Why a named partner track (``match --with``) cannot go under ``analysis`` at all: one
    line per track that the rules rule out whole (its meter, or the stretch its tempo needs at
    1:1, 2:1 and 1:2), none for a track that may fit.

    The phrases of a track whose tempo and meter pass may still be left out one by one (a
    phrase in another meter, a local tempo off the track's).
    """
    from cratedig.library.schema import TrackRow
    from cratedig.theory import TEMPO_RATIOS

    lines = []
    q_meter = f"{analysis.time_signature[0]}/{analysis.time_signature[1]}"
    with library.reader() as s:
        paths = repo.first_paths(s, tracks)
        for track_id in tracks:
            row = s.get(TrackRow, track_id)
            if row is None:
                continue
            name = Path(paths[track_id]).name if track_id in paths else track_id
            meter = f"{row.beats_per_bar}/{row.beat_unit}"
            if meter != q_meter:
                lines.append(
                    f"{name}: {meter} against the query's {q_meter}: its bars would drift "
                    "against the query's, never layered"
                )
                continue
            stretch = min(abs(analysis.tempo / (row.tempo * r) - 1.0) for r in TEMPO_RATIOS)
            if stretch > options.max_stretch:
                lines.append(
                    f"{name}: {row.tempo:.1f} BPM against the query's {analysis.tempo:.1f} needs "
                    f"a {100 * stretch:.0f} % stretch at best (1:1, 2:1 or 1:2; the limit is "
                    f"{100 * options.max_stretch:g} %, --max-stretch)"
                )
    return lines


def stored_analysis(library: Library, analysis: TrackAnalysis) -> TrackAnalysis | None:
    """The library's analysis of the same audio (same track id) at the same analysis version,
    whose segment ids are the library's; None when the library does not hold it."""
    with library.reader() as s:
        stored = repo.load_analysis(s, analysis.track_id)
    if stored is not None and stored.analysis_version == analysis.analysis_version:
        return stored
    return None


def match_options(
    *,
    top: int = DEFAULT_TOP,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_stretch: float = DEFAULT_MAX_STRETCH,
    segment: int | None = None,
    include_own_track: bool = False,
    per_track: int = DEFAULT_PER_TRACK,
    tracks: Sequence[str] | None = None,
) -> MatchOptions:
    """Checked :class:`MatchOptions` (raises :class:`ParameterError` on a value out of range).

    ``per_track``: at most this many phrases of one track per query segment; 0 for no limit.
    ``tracks``: library track ids whose segments alone are candidates (see
    :func:`resolve_tracks` for names).
    """
    if per_track < 0:
        raise ParameterError(f"per_track={per_track}: must be >= 0 (0 lists every phrase)")
    options = MatchOptions(
        top=top,
        max_shift=max_shift,
        max_stretch=max_stretch,
        segment=segment,
        include_own_track=include_own_track,
        per_track=per_track or None,
        tracks=tuple(tracks) if tracks is not None else None,
    )
    options.check()
    return options


def match(
    library: Library,
    query: str | os.PathLike[str] | TrackAnalysis,
    *,
    index: Any = None,
    in_library: bool | None = None,
    top: int = DEFAULT_TOP,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_stretch: float = DEFAULT_MAX_STRETCH,
    segment: int | None = None,
    include_own_track: bool = False,
    per_track: int = DEFAULT_PER_TRACK,
    with_tracks: Sequence[str] | None = None,
) -> MatchResult:
    """For each phrase of ``query``, the library phrases that mix with it.

    Parameters
    ----------
    library : Library
    query : path, track id or TrackAnalysis
        Resolved with :func:`resolve_query` unless already analysed.
    index : SegmentIndex, optional
        The library's match index; default: brought up to date now
        (:func:`cratedig.match.store.sync_index`). A server passes the one it keeps loaded.
    in_library : bool, optional
        For an analysis passed in: whether it is a library track (default: look it up).
    top, max_shift, max_stretch, segment, include_own_track
        See :class:`cratedig.match.query.MatchOptions`.
    per_track : int
        At most this many phrases of one track per query segment (default
        :data:`DEFAULT_PER_TRACK`); 0 lists every phrase.
    with_tracks : sequence of str, optional
        Only these library tracks (files or track ids, :func:`resolve_tracks`) are partners,
        every phrase of them scored: where one chosen track fits under the query.

    Returns
    -------
    MatchResult
        ``.to_json()`` is the ``match --json`` contract of DESIGN.md.
    """
    from cratedig.match.query import match_analysis
    from cratedig.match.store import sync_index

    options = match_options(
        top=top,
        max_shift=max_shift,
        max_stretch=max_stretch,
        segment=segment,
        include_own_track=include_own_track,
        per_track=per_track,
        tracks=resolve_tracks(library, with_tracks) if with_tracks else None,
    )
    if isinstance(query, TrackAnalysis):
        analysis = query
        if in_library is None:
            with library.reader() as s:
                in_library = repo.resolve_track_id(s, analysis.track_id) == analysis.track_id
    else:
        analysis, in_library = resolve_query(library, query)
    if index is None:
        index, _ = sync_index(library)
    result = match_analysis(
        library, index, analysis, options=options, in_library=in_library,
        ranker=active_ranker(library),
    )  # fmt: skip
    if options.tracks is not None:
        result.ruled_out = partner_fit(library, analysis, options.tracks, options)
    with library.reader() as s:
        result.stale_tracks = repo.stale_track_count(s)
    return result


# ---------------------------------------------------------------------------------------------
# Rendering


class _QueryLoader(AudioLoader):
    """An :class:`AudioLoader` that also knows tracks that are not in the library (a query
    file analysed on the fly), so their segment ids can be rendered."""

    def __init__(self, library: Library, extra: list[TrackAnalysis], **kwargs: Any) -> None:
        super().__init__(library, **kwargs)
        self.extra = {a.track_id: a for a in extra}

    def track(self, track_id: str) -> TrackAnalysis:
        if track_id in self.extra:
            return self.extra[track_id]
        return super().track(track_id)


def _query_analysis(
    library: Library, query_file: str | os.PathLike[str] | TrackAnalysis | None
) -> TrackAnalysis | None:
    if query_file is None:
        return None
    if isinstance(query_file, TrackAnalysis):
        return query_file
    analysis, _ = resolve_query(library, query_file)
    return analysis


def render_pair(
    library: Library,
    query_segment: str,
    candidate_segment: str,
    *,
    semitones: float | None = None,
    tempo_ratio: float | None = None,
    stems: list[str] | None = None,
    query_file: str | os.PathLike[str] | TrackAnalysis | None = None,
    use_cache: bool = True,
    offset_beats: int = 0,
) -> RenderedPair:
    """The candidate phrase stretched onto the query phrase's beats, shifted and layered.

    Parameters
    ----------
    library : Library
    query_segment, candidate_segment : str
        Segment ids (``<trackid>_<n>``) as :func:`match` gives them.
    semitones, tempo_ratio : optional
        The candidate's transform; default: the matcher's suggestion for the pair.
    stems : list of str, optional
        Layer only these stems of the candidate.
    query_file : path or TrackAnalysis, optional
        The query song when it is not in the library (a file matched on the fly): its
        segments are rendered from this file.
    use_cache : bool
        Read and write the render cache beside the database.
    offset_beats : int
        Start the candidate this many of its beats later (earlier when negative): a nudge
        for bar lines read a beat or half a bar off.

    Returns
    -------
    RenderedPair
        ``audio`` (the mix) and, unless it came from the cache, ``partner`` (the candidate
        layer alone).
    """
    from cratedig.render.service import RENDER_SR, render_segments

    extra = _query_analysis(library, query_file)
    loader = _QueryLoader(library, [extra] if extra is not None else [], sr=RENDER_SR)
    return render_segments(
        library,
        query_segment,
        candidate_segment,
        semitones=semitones,
        ratio=tempo_ratio,
        stems=stems,
        use_cache=use_cache,
        loader=loader,
        offset_beats=offset_beats,
    )


def segment_audio(
    library: Library,
    segment_id: str,
    *,
    query_file: str | os.PathLike[str] | TrackAnalysis | None = None,
) -> tuple[Any, int]:
    """One segment's audio alone: ``(samples (channels, n), sr)`` at the render rate."""
    from cratedig.render.service import RENDER_SR

    extra = _query_analysis(library, query_file)
    loader = _QueryLoader(library, [extra] if extra is not None else [], sr=RENDER_SR)
    seg, a = loader.segment(segment_id)
    y = loader.decoded(a.path)
    lo = int(round(seg.start * loader.sr))
    hi = min(int(round(seg.end * loader.sr)), y.shape[1])
    return y[:, lo:hi], loader.sr


def render_mashup(
    library: Library,
    query: str | os.PathLike[str] | TrackAnalysis,
    *,
    index: Any = None,
    output: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    stems: list[str] | None = None,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_stretch: float = DEFAULT_MAX_STRETCH,
    with_tracks: Sequence[str] | None = None,
) -> Mashup:
    """A partner for every phrase of ``query`` (a file or a track id), layered over the
    whole song; ``.plan.to_json()`` is its cue sheet. With ``output`` the mix is written there
    block by block (bounded memory) and ``.audio`` is not kept. ``with_tracks`` (library files
    or track ids, :func:`resolve_tracks`): only those tracks are partners."""
    from cratedig.match.store import sync_index
    from cratedig.render.service import render_mashup as render

    match_options(max_shift=max_shift, max_stretch=max_stretch)
    tracks = resolve_tracks(library, with_tracks) if with_tracks else None
    analysis = query if isinstance(query, TrackAnalysis) else resolve_query(library, query)[0]
    if index is None:
        index, _ = sync_index(library)
    mashup = render(
        library,
        index,
        analysis,
        output=output,
        fmt=fmt,
        stems=stems,
        top=MASHUP_TOP,
        max_shift=max_shift,
        max_stretch=max_stretch,
        tracks=tracks,
    )
    if tracks is not None:
        options = match_options(max_shift=max_shift, max_stretch=max_stretch)
        mashup.ruled_out = partner_fit(library, analysis, tracks, options)
    return mashup


# ---------------------------------------------------------------------------------------------
# Ratings


@dataclass
class Rating:
    """A user's 1-5 score of a suggestion (the ``ratings`` table)."""

    id: int
    query_segment: str
    candidate_segment: str
    score: int
    semitones: int = 0
    tempo_ratio: float = 1.0
    #: Beats the candidate was moved when heard (``render --offset-beats``; 0: as suggested).
    offset_beats: int = 0
    comment: str | None = None
    created_at: str = ""
    analysis_version: int = 0
    #: ``attached`` (never moved), ``reattached`` (followed its music after a re-analysis) or
    #: ``orphaned`` (no segment covers what was rated any more; see ``orphaned``).
    state: str = "attached"
    #: Per side (``query``, ``candidate``): the track and the time span rated, in seconds.
    query_track: str | None = None
    query_span: tuple[float, float] | None = None
    candidate_track: str | None = None
    candidate_span: tuple[float, float] | None = None
    #: Why the rating is orphaned (one reason per orphaned side), empty otherwise.
    orphaned: list[str] = field(default_factory=list)
    #: Every re-attachment: when, side, from and to segment, share of the span covered.
    reattachments: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "query_segment": self.query_segment,
            "candidate_segment": self.candidate_segment,
            "score": self.score,
            "semitones": self.semitones,
            "tempo_ratio": self.tempo_ratio,
            "offset_beats": self.offset_beats,
            "comment": self.comment,
            "created_at": self.created_at,
            "analysis_version": self.analysis_version,
            "state": self.state,
            "query_track": self.query_track,
            "query_span": list(self.query_span) if self.query_span else None,
            "candidate_track": self.candidate_track,
            "candidate_span": list(self.candidate_span) if self.candidate_span else None,
            "orphaned": list(self.orphaned),
            "reattachments": list(self.reattachments),
        }


#: Longest comment kept with a rating.
MAX_COMMENT = 2000


def rate(
    library: Library,
    query_segment: str,
    candidate_segment: str,
    score: int,
    *,
    semitones: int | None = None,
    tempo_ratio: float | None = None,
    offset_beats: int = 0,
    comment: str | None = None,
    query_known: bool = False,
) -> int:
    """Store a 1-5 rating of ``candidate_segment`` layered on ``query_segment``; its id.

    Both ids must look like segment ids; the candidate must be a library segment, the query
    too unless ``query_known`` (a file matched on the fly whose segments the caller saw).
    ``semitones`` / ``tempo_ratio`` are the transform that was heard; left out, the matcher's
    suggestion for the pair (what ``render`` plays by default), or 0 / 1 when the query is not
    in the library. ``offset_beats`` is how many of its beats the candidate was moved when it
    was heard (``render --offset-beats``, the web page's nudge; within
    ``render.service.MAX_OFFSET_BEATS``); training leaves such ratings out, since they rate a
    span that is not the suggested segment. Each side's track and time span are stored too, so
    the rating survives a re-analysis (:func:`cratedig.library.repository.reattach_ratings`).

    Raises
    ------
    ParameterError
        A score outside 1..5, a malformed or unknown segment id, a transform out of range.
    """
    from cratedig.theory import TEMPO_RATIOS

    if isinstance(score, bool) or int(score) != score or not 1 <= int(score) <= 5:
        raise ParameterError(f"score {score!r}: must be a whole number from 1 to 5")
    for what, sid in (("query", query_segment), ("candidate", candidate_segment)):
        if not SEGMENT_ID.match(sid):
            raise ParameterError(f"{what} segment {sid!r}: not a segment id (<trackid>_<n>)")
    wanted = [candidate_segment] if query_known else [query_segment, candidate_segment]
    with library.reader() as s:
        found = {seg.id: seg for seg in repo.load_segments(s, segment_ids=wanted)}
    for sid in wanted:
        if sid not in found:
            raise ParameterError(f"segment {sid} is not in the library")
    if semitones is None or tempo_ratio is None:
        suggested = (0, 1.0)
        if query_segment in found:
            from cratedig.render.service import suggested_transform

            suggested = suggested_transform(found[query_segment], found[candidate_segment])
        semitones = suggested[0] if semitones is None else semitones
        tempo_ratio = suggested[1] if tempo_ratio is None else tempo_ratio
    if int(semitones) != semitones or abs(int(semitones)) > 12:
        raise ParameterError(f"semitones {semitones!r}: must be a whole number within -12..12")
    if not any(abs(float(tempo_ratio) - r) < 1e-9 for r in TEMPO_RATIOS):
        raise ParameterError(f"tempo_ratio {tempo_ratio!r}: must be one of 1, 2 or 0.5")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ParameterError(f"comment: at most {MAX_COMMENT} characters")
    from cratedig.render.service import MAX_OFFSET_BEATS

    if (
        isinstance(offset_beats, bool)
        or int(offset_beats) != offset_beats
        or abs(int(offset_beats)) > MAX_OFFSET_BEATS
    ):
        raise ParameterError(
            f"offset_beats {offset_beats!r}: must be a whole number within "
            f"-{MAX_OFFSET_BEATS}..{MAX_OFFSET_BEATS}"
        )
    with library.transaction() as s:
        return repo.add_rating(
            s,
            query_segment=query_segment,
            candidate_segment=candidate_segment,
            score=int(score),
            semitones=int(semitones),
            tempo_ratio=float(tempo_ratio),
            offset_beats=int(offset_beats),
            comment=comment,
        )


def list_ratings(library: Library, *, orphaned: bool | None = None) -> list[Rating]:
    """Every rating, oldest first; only the orphaned ones with ``orphaned=True`` (only the
    usable ones with False)."""

    def span(start: float | None, end: float | None) -> tuple[float, float] | None:
        return None if start is None or end is None else (round(start, 3), round(end, 3))

    with library.reader() as s:
        rows = repo.ratings(s, orphaned=orphaned)
        return [
            Rating(
                id=r.id,
                query_segment=r.query_segment_id,
                candidate_segment=r.candidate_segment_id,
                score=r.score,
                semitones=r.semitones,
                tempo_ratio=r.tempo_ratio,
                offset_beats=r.offset_beats or 0,
                comment=r.comment,
                created_at=r.created_at.isoformat(),
                analysis_version=r.analysis_version,
                state=r.state,
                query_track=r.query_track_id,
                query_span=span(r.query_start, r.query_end),
                candidate_track=r.candidate_track_id,
                candidate_span=span(r.candidate_start, r.candidate_end),
                orphaned=[x for x in (r.query_orphaned, r.candidate_orphaned) if x],
                reattachments=list(r.reattachments or []),
            )
            for r in rows
        ]


def _stem_sources(
    library: Library, *, on_skip: Callable[[str, str], None] | None
) -> dict[str, dict[str, tuple[str, int]]]:
    """Every gated library track with stems naming a vocal or lead layer -> its stem files
    (stem name -> (path, stream)).

    A track that the training gate keeps out, or without a vocal/lead stem, is skipped with
    its reason passed to ``on_skip(track_id, reason)`` (logged when None).
    """
    from cratedig.learn.gate import gate_tracks
    from cratedig.learn.pairs import QUERY_STEMS

    skip = on_skip or _log_skip
    with library.reader() as s:
        stems = repo.all_stems(s)
        qualities = repo.track_qualities(s)
    # The training gate keeps low-quality tracks (fake lossless, clipped, no stable beat...)
    # out of the training data, as it keeps them out of the clusters.
    gate = gate_tracks(qualities, track_ids=sorted(stems))
    for track_id, reason in sorted(gate.excluded.items()):
        skip(track_id, f"kept out by the training gate: {reason}")
    songs: dict[str, dict[str, tuple[str, int]]] = {}
    for track_id, infos in sorted(stems.items()):
        if track_id not in gate.kept:
            continue
        if not any(i.name in QUERY_STEMS for i in infos):
            names = ", ".join(sorted(i.name for i in infos))
            skip(track_id, f"no vocal or lead stem to query with (its stems: {names})")
            continue
        songs[track_id] = {i.name: (i.path, i.stream or 0) for i in infos}
    return songs


def _log_skip(track_id: str, reason: str) -> None:
    log.warning("stem training: track %s skipped: %s", track_id, reason)


def stem_training_pairs(
    library: Library,
    *,
    sr: int = 22050,
    others_per_query: int = 8,
    seed: int = 0,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[Any]:
    """Self-supervised pairs (:func:`cratedig.learn.pairs.stem_pairs`) from the library's stems.

    Every track with stems (``.stems/`` folders, ``.stem.mp4``) that passes the training gate
    (:mod:`cratedig.learn.gate`) and whose stems name a vocal or lead layer is decoded at
    ``sr``; a track whose stems cannot be read or split is skipped
    with its reason passed to ``on_skip(track_id, reason)`` (logged when None).

    Returns
    -------
    list of cratedig.learn.pairs.StemPair
    """
    from cratedig.audio.decode import decode
    from cratedig.errors import CratedigError
    from cratedig.learn.pairs import stem_pairs

    skip = on_skip or _log_skip
    songs: dict[str, dict[str, Any]] = {}
    for track_id, files in _stem_sources(library, on_skip=skip).items():
        try:
            songs[track_id] = {
                name: decode(path, sr=sr, stream=stream).samples
                for name, (path, stream) in files.items()
            }
        except (CratedigError, OSError) as exc:
            skip(track_id, str(exc))
    if not songs:
        return []
    return stem_pairs(songs, sr=sr, others_per_query=others_per_query, seed=seed)


def stem_training_lists(
    library: Library,
    *,
    sr: int = 22050,
    executor: Any = None,
    progress: ProgressCallback | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> Any:
    """The matcher's own candidate lists for the library's stems, labelled by them
    (:func:`cratedig.match.lists.mined_lists`): what ``train`` and ``evaluate`` learn from.

    The songs are those of :func:`stem_training_pairs` (gated, with a vocal or lead stem),
    decoded and analysed one at a time on ``executor`` (a local
    :mod:`cratedig.compute` executor; this process when None); a song whose stems cannot be
    read or split is skipped with its reason passed to ``on_skip`` (logged when None).
    The lists are kept beside the database (``train-lists-<key>.npz``, plain arrays) under a
    key of the stem files (path, size, modification time), the analysis version and the code
    that makes them (:func:`cratedig.match.lists.lists_key`): a retrain with unchanged stems
    reads them back.

    Returns
    -------
    cratedig.match.lists.TrainingLists or None
        None when no song has usable stems or no query phrase found its partner.
    """
    from cratedig.match.lists import lists_key, load_lists, mined_lists, save_lists

    skip = on_skip or _log_skip
    songs = _stem_sources(library, on_skip=skip)
    if not songs:
        return None
    # The lists change only when the stems, the analysis or the matcher do: a library retrained
    # after new ratings reads them back instead of analysing every stem song again.
    try:
        key = lists_key(songs, sr=sr)
    except OSError:  # a stem file gone since the ingest: mined, and its song skipped there
        key = None
    cache = library.artefact_dir / f"train-lists-{key}.npz" if key else None
    if cache is not None and cache.exists():
        try:
            kept, kept_failed = load_lists(cache)
        except (OSError, ValueError) as exc:
            log.warning("training lists cache %s unreadable (%s): made again", cache.name, exc)
        else:
            for song, why in kept_failed.items():
                skip(song, why)
            return kept
    failed: dict[str, str] = {}

    def note(song: str, why: str) -> None:
        failed[song] = why
        skip(song, why)

    lists = mined_lists(songs, sr=sr, executor=executor, progress=progress, on_skip=note)
    if lists is not None and cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            for old in cache.parent.glob("train-lists-*.npz"):
                old.unlink(missing_ok=True)  # one set of lists: the library's current one
            save_lists(lists, cache, failed=failed)
        except (OSError, OutputError) as exc:  # a read-only or full disk: the next train's time
            log.warning("training lists not cached: %s", exc)
    return lists


#: Model kind of the learned ranker in the ``models`` table.
RANKER_KIND = "ranker"
#: Weight of a human rating against one self-supervised pair in training.
RATING_WEIGHT = 3.0


def _pair_matrix(pairs: list[tuple[Any, Any]]) -> tuple[Any, list[str], Any]:
    """Features (:func:`cratedig.learn.ranker.pair_features`) and rule scores of (q, c) pairs."""
    import numpy as np

    from cratedig.learn.ranker import pair_features
    from cratedig.match.batch import SegmentBatch
    from cratedig.match.scoring import score_candidates

    rows, rules = [], []
    names: list[str] = []
    for q_seg, c_seg in pairs:
        q = SegmentBatch.from_segments([q_seg], unit="beat")
        c = SegmentBatch.from_segments([c_seg], unit="beat")
        sc = score_candidates(q, c)
        x, names = pair_features(
            sc.terms, stretch=sc.stretch, semitones=sc.semitones, tempo_ratio=sc.tempo_ratio,
            query_balance=q.balance[0], balance=c.balance, relation=sc.relation,
            rule_score=sc.score, coverage=sc.coverage,
        )  # fmt: skip
        rows.append(x[0])
        rules.append(float(sc.score[0]))
    return np.array(rows), names, np.array(rules)


def _stack_rows(lists: Any, items: list[tuple[Any, Any]]) -> tuple[Any, list[str], Any]:
    """Features, names and rule scores of the stem lists' rows, then of the (query, candidate)
    ``items`` (ratings) in order."""
    import numpy as np

    parts_x, parts_r, names = [], [], []
    if lists is not None:
        parts_x.append(lists.X)
        parts_r.append(lists.X[:, lists.names.index("rule")])
        names = list(lists.names)
    if items:
        x, names, r = _pair_matrix(items)
        if lists is not None and names != lists.names:  # one feature set: learn.ranker's
            raise AssertionError(f"feature names differ: {names} vs {lists.names}")
        parts_x.append(x)
        parts_r.append(r)
    return np.concatenate(parts_x), names, np.concatenate(parts_r)


#: What ``train`` says when the library gives it nothing to learn from.
NOTHING_TO_LEARN = (
    "nothing to learn from: add songs with stems (a vocals or lead stem) or rate "
    "suggestions (both good and bad ones)"
)


def check_trainable(library: Library) -> None:
    """Raise what :func:`train_ranker` would when the library has nothing it can learn from,
    without analysing anything: no song with a vocal or lead stem, and no ratings that name
    their music with both a good (4-5) and a bad (1-2) score. (A library that passes may still
    fail later: stems whose lead phrases find no partner.)

    Raises
    ------
    ParameterError
    """
    if _stem_sources(library, on_skip=lambda track_id, why: None):
        return
    scores = {
        r.score >= 4
        for r in list_ratings(library, orphaned=False)
        if r.score != 3 and not r.offset_beats
    }
    if len(scores) < 2:
        raise ParameterError(NOTHING_TO_LEARN)


def train_ranker(
    library: Library,
    *,
    seed: int = 0,
    executor: Any = None,
    progress: ProgressCallback | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Train the learned ranker from the library's stems and ratings; store it as a new version.

    The matcher's own candidate lists for the library's stems (:func:`stem_training_lists`:
    each lead phrase matched against every song's accompaniment and transposed copies of it,
    the accompaniment at its bars or under its chords the partner) and ratings (4-5: layers
    well, 1-2: does not, 3 left out) train the ranker. Without ratings (or with one score
    only) LambdaRank trees (``STEM_MODEL``) are fitted on the lists, ratings weighing
    ``RATING_WEIGHT`` rows each, and the
    blend is chosen by cross-validation over the songs
    (:func:`cratedig.learn.ranker.cv_evidence_blend`: each song's queries ranked by probes
    trained without it; 0 unless the blend ranks their partners better than the rule score by
    two standard errors; ``DEFAULT_BLEND`` when the library has under four songs); with ratings
    of different scores :func:`cratedig.learn.ranker.train_from_ratings` fits them as soft
    labels beside the pairs and chooses the blend weight by cross-validation over the rated
    queries (0 until the ratings show the learned term ranks better).
    Metrics: pairwise accuracy of the rule score and of the learned term out of fold (split by
    song, so none leaks), the queries that were evidence and the cross-validated MRR of each
    blend weight. The new version is stored (JSON beside the database) and becomes the active
    one. ``executor`` (a local :mod:`cratedig.compute` executor) analyses the stem songs'
    layers in parallel; ``progress(event, **details)`` hears of each song analysed
    (:func:`cratedig.match.lists.mined_lists`), then ``"fitting"``. A stem song left out (kept
    out by the training gate, no vocal or lead stem, stems unreadable) is passed to
    ``on_skip(track_id, reason)`` (logged when None) and listed in the result's ``left_out``
    (``[path, reason]``); training goes on without it.

    Raises
    ------
    ParameterError
        Too little to learn from (no stems with a lead/vocal and no ratings of both kinds).
    """
    import numpy as np

    from cratedig.learn.ranker import (
        STEM_BLEND_CAP,
        STEM_MODEL,
        cv_evidence_blend,
        save_ranker,
        train_from_ratings,
    )
    from cratedig.learn.ranker import train_ranker as fit

    left_out: list[tuple[str, str]] = []

    def skip(track_id: str, reason: str) -> None:
        left_out.append((track_id, reason))
        (on_skip or _log_skip)(track_id, reason)

    lists = stem_training_lists(library, executor=executor, progress=progress, on_skip=skip)
    n_stems = 0 if lists is None else len(lists)
    items: list[tuple[Any, Any]] = []
    labels: list[int] = [] if lists is None else lists.y.tolist()
    groups: list[str] = [] if lists is None else lists.songs.tolist()
    queries: list[str] = [] if lists is None else lists.queries.tolist()
    weights = [1.0] * n_stems
    ratings = list_ratings(library, orphaned=False)  # an orphan no longer names its music
    # A rating of a nudged candidate rates a span that is not the suggested segment, whose
    # features are what the ranker sees: left out (counted in the metrics).
    moved = sum(1 for r in ratings if r.offset_beats)
    ratings = [r for r in ratings if not r.offset_beats]
    with library.reader() as s:
        segs = {
            seg.id: seg
            for seg in repo.load_segments(
                s, segment_ids=sorted({x for r in ratings for x in (r.query_segment, r.candidate_segment)})
            )
        }  # fmt: skip
    used = 0
    for r in ratings:
        if r.score == 3 or r.query_segment not in segs or r.candidate_segment not in segs:
            continue
        items.append((segs[r.query_segment], segs[r.candidate_segment]))
        labels.append(int(r.score >= 4))
        groups.append(segs[r.query_segment].track_id)
        queries.append(r.query_segment)
        weights.append(RATING_WEIGHT)
        used += 1
    y = np.array(labels)
    if len(set(labels)) < 2:
        raise ParameterError(NOTHING_TO_LEARN)
    if progress is not None:
        progress("fitting")
    X, names, rule = _stack_rows(lists, items)
    g = np.array(groups)
    q_all = np.array(queries)
    songs = sorted(set(groups))
    metrics: dict[str, Any] = {
        "stem_pairs": n_stems,
        "stem_queries": 0 if lists is None else len(set(lists.queries.tolist())),
        "stem_lists_cached": bool(lists is not None and lists.cached),
        "ratings": used,
        "ratings_moved_left_out": moved,
        "songs": len(songs),
        "stem_songs_left_out": len(left_out),
    }
    w = np.array(weights)
    stem_blend = None
    if len(songs) >= 4:
        # Every song is evidence: scored by probes trained without it (learn.ranker).
        stem_blend, evidence = cv_evidence_blend(X, y, names, g, q_all, sample_weight=w, seed=seed)
        for k in ("pairwise_accuracy_rule", "pairwise_accuracy_learned"):
            if k in evidence:
                evidence[k] = _rounded(evidence[k])
        metrics.update(evidence)
        metrics["blend_by_held_out_songs"] = stem_blend
        stem_blend = min(stem_blend, STEM_BLEND_CAP)  # the rules keep at least half the say
    rated = _rated_lists(ratings, segs, X[n_stems:], rule[n_stems:])
    if rated and len({float(v) for r in rated for v in r.scores}) > 1:
        # Ratings in: learn the user's taste from their scores (as soft labels) with the stem
        # lists' pairs, and let the evidence set the blend (learn.ranker.train_from_ratings).
        stems_x = X[:n_stems] if n_stems else None
        ranker = train_from_ratings(rated, names, pairs_X=stems_x, pairs_y=y[:n_stems])
    else:
        ranker = fit(X, y, names, sample_weight=w, queries=q_all, model=STEM_MODEL, seed=seed)
        if stem_blend is not None:  # the held-out songs' evidence sets the learned term's share
            ranker.blend = stem_blend
    metrics["blend"] = round(float(ranker.blend), 4)  # the learned term's share, as it serves
    ranker.metrics.update(metrics)
    with library.transaction() as s:
        version = repo.store_model(
            s, kind=RANKER_KIND, parameters={"blend": ranker.blend, "features": names},
            metrics=metrics, artefact=None,
        )  # fmt: skip
        path = save_ranker(ranker, library.artefact_dir / f"ranker-v{version}.json")
        repo.set_model_artefact(s, RANKER_KIND, version, path.name)
        repo.activate_model(s, RANKER_KIND, version)
        paths = repo.first_paths(s, [t for t, _ in left_out])
    return {
        "kind": RANKER_KIND,
        "version": version,
        "metrics": metrics,
        "left_out": [[paths.get(t, t), why] for t, why in left_out],
    }


def evaluate_rankers(
    library: Library,
    *,
    folds: int = 4,
    seed: int = 0,
    fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0),
    executor: Any = None,
) -> dict[str, Any]:
    """Rule vs learned vs blend on the library's own stems and ratings, split by track.

    The judged pairs are the stems' match lists (:func:`stem_training_lists`: the
    accompaniment at the query's bars or under its chords is relevant, every other candidate
    the rules accept is not) and the
    ratings that still name their music (graded relevance 1-5; orphans left out). The ranker is
    trained afresh on the training folds only (nothing is stored, the active model is not used);
    see :mod:`cratedig.learn.evaluate` for the split, the metrics and the learning curve.
    ``executor`` analyses the stem songs' layers (:func:`stem_training_lists`).

    Returns
    -------
    dict
        :meth:`cratedig.learn.evaluate.Evaluation.to_json` plus ``ratings_left_out`` (ratings
        whose query is not a library segment).

    Raises
    ------
    ParameterError
        Nothing to evaluate (no songs with stems and no query with two rated candidates, or
        fewer than two tracks).
    """
    import numpy as np

    from cratedig.learn.evaluate import EvaluationSet, evaluate

    lists = stem_training_lists(library, executor=executor)
    items: list[tuple[Any, Any]] = []
    rows: list[tuple[str, str, float, int, float, str, str]] = [
        # source, query id, relevance, label, weight, query track, candidate track
        ("stems", q, float(label), int(label), 1.0, song, other)
        for q, label, song, other in zip(
            lists.queries, lists.y, lists.songs, lists.candidate_songs, strict=True
        )
    ] if lists is not None else []  # fmt: skip
    ratings = list_ratings(library, orphaned=False)
    wanted = sorted({x for r in ratings for x in (r.query_segment, r.candidate_segment)})
    with library.reader() as s:
        segs = {seg.id: seg for seg in repo.load_segments(s, segment_ids=wanted)}
    left_out = 0
    for r in ratings:
        if r.query_segment not in segs or r.candidate_segment not in segs:
            left_out += 1
            continue
        q, c = segs[r.query_segment], segs[r.candidate_segment]
        items.append((q, c))
        label = 1 if r.score >= 4 else 0 if r.score <= 2 else -1
        rows.append(("ratings", q.id, float(r.score), label, RATING_WEIGHT, q.track_id, c.track_id))
    if not rows:
        raise ParameterError(
            "nothing to evaluate: no song with stems (a vocals or lead stem and others) and "
            "no ratings (cratedig rate)"
        )
    X, names, rule = _stack_rows(lists, items)
    source, query, relevance, labels, weight, q_track, c_track = zip(*rows, strict=True)
    data = EvaluationSet(
        X=X, names=names, rule=rule, source=np.array(source), query=np.array(query),
        relevance=np.array(relevance), label=np.array(labels), weight=np.array(weight),
        query_track=np.array(q_track), candidate_track=np.array(c_track),
    )  # fmt: skip
    result = evaluate(data, folds=folds, seed=seed, fractions=fractions).to_json()
    result["ratings_left_out"] = left_out
    return result


def _rated_lists(ratings: list[Rating], segs: dict[str, Any], X: Any, rule: Any) -> list[Any]:
    """Ratings as one :class:`cratedig.learn.ranker.RatedList` per query segment.

    ``X`` and ``rule`` hold the features of the ratings kept by :func:`train_ranker` (scores
    other than 3 whose segments exist), in order.
    """
    import numpy as np

    from cratedig.learn.ranker import RatedList

    kept = [
        r
        for r in ratings
        if r.score != 3 and r.query_segment in segs and r.candidate_segment in segs
    ]
    by_query: dict[str, list[int]] = {}
    for i, r in enumerate(kept):
        by_query.setdefault(r.query_segment, []).append(i)
    return [
        RatedList(
            X[rows],
            rule[rows],
            np.array([kept[i].score for i in rows], float),
            segs[q].track_id,
        )  # fmt: skip
        for q, rows in by_query.items()
    ]


def _rounded(acc: float) -> float | None:
    """A pairwise accuracy rounded for the models table; None when nothing could be measured."""
    return None if math.isnan(acc) else round(float(acc), 4)


def list_models(library: Library, *, kind: str = RANKER_KIND) -> list[dict[str, Any]]:
    """Every trained model of ``kind``: version, when, metrics, whether active."""
    with library.reader() as s:
        infos = repo.list_models(s, kind)
    return [
        {
            "kind": m.kind,
            "version": m.version,
            "trained_at": m.trained_at.isoformat(),
            "active": bool(m.parameters.get("active")),
            "metrics": m.metrics,
            "artefact": m.artefact,
        }
        for m in infos
    ]


def activate_model(library: Library, version: int, *, kind: str = RANKER_KIND) -> None:
    """Make ``version`` the model that serves (roll back or forward).

    Raises
    ------
    ParameterError
        No such version.
    """
    with library.transaction() as s:
        if not repo.activate_model(s, kind, version):
            raise ParameterError(f"no {kind} model version {version}: see `cratedig models`")


def active_ranker(library: Library) -> Any:
    """The active ranker (:class:`cratedig.learn.ranker.Ranker`), or None: then the rule score."""
    from cratedig.learn.ranker import load_ranker

    with library.reader() as s:
        infos = repo.list_models(s, RANKER_KIND)
    active = next((m for m in reversed(infos) if m.parameters.get("active")), None)
    if active is None or active.artefact is None:
        return None
    return load_ranker(library.artefact_dir / active.artefact)
