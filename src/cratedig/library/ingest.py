"""Ingest a folder into the library: incremental, resumable, parallel, one writer.

The flow::

    scan (stat only) -> plan (skip unchanged paths without decoding) -> workers -> one writer

- **Identity**: a track's id is the hash of its decoded audio, so a renamed, moved or re-tagged
  file keeps it. Workers decode once; if the hash is already a current track, the worker stops
  there and the path is recorded as a move or a duplicate without analysing anything.
- **Incremental**: a known path with the same size and mtime whose track is at the current
  ``ANALYSIS_VERSION`` is skipped without opening it; bumping the version re-analyses only
  stale tracks. A file that failed before and has not changed is not retried unless asked.
- **Resumable**: each file's outcome is written in one transaction (track, segments, features,
  file row together, replacing any earlier rows of that track), so a killed ingest loses at most
  the files in flight and running it again neither duplicates nor loses anything.
- **Parallel**: workers (:mod:`cratedig.compute`: this process, a process pool or Dask) return
  plain picklable results; only this process writes to the database.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cratedig import ANALYSIS_VERSION
from cratedig.analysis.pipeline import analyze_decoded, track_id_from_hash
from cratedig.analysis.records import TrackAnalysis
from cratedig.analysis.rhythm import GridHint
from cratedig.audio.decode import (
    ANALYSIS_SR,
    MAX_DURATION,
    DecodedAudio,
    check_max_duration,
    decode,
)
from cratedig.audio.tags import file_tags
from cratedig.compute import Executor, InProcessExecutor
from cratedig.errors import AudioError, ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.library.errors import DatabaseReadOnly, DiskFull, LibraryError, SliceError
from cratedig.library.scan import ScannedFile, scan_folder, stat_file
from cratedig.library.slices import (
    check_slices_dir,
    slice_format,
    slices_complete,
    write_track_slices,
)

log = logging.getLogger("cratedig.library")


# ---------------------------------------------------------------------------------------------
# What workers get and give back (all picklable)


@dataclass(frozen=True)
class WorkerContext:
    """Sent to every worker once.

    Attributes
    ----------
    known_ids : np.ndarray [dtype=uint64]
        Sorted ids (as integers) of tracks whose analysis is current.
    max_duration : float
        Seconds; longer files are refused.
    slices_dir : str or None
        Write phrase slices there after analysing.
    slice_format : str
    grid_hints : dict
        Track id -> what its user gave of its grid (``cratedig regrid``): laid again when the
        track is analysed again.
    use_tags : bool
        A file's BPM and key tags (else what its name states) pick among the readings the
        audio allows (:func:`cratedig.analysis.rhythm.follow_tag_tempo`,
        :func:`cratedig.analysis.tonal.follow_tag_key`); False: the audio alone.
    tags_considered : dict
        Track id -> the BPM and key tags its stored analysis considered (absent: none): a
        known track's file whose BPM or key tag now says something else is analysed again.
    bpm_range : (float, float) or None
        The DJ's BPM range (:func:`cratedig.analysis.rhythm.fold_into_range`) for the files
        analysed in this run.
    refold : frozenset
        Known tracks whose stored tempo lies outside ``bpm_range`` (and that this range was not
        already tried on): analysed again.
    """

    known_ids: np.ndarray
    max_duration: float = MAX_DURATION
    slices_dir: str | None = None
    slice_format: str = "flac"
    grid_hints: dict[str, dict[str, object]] = field(default_factory=dict)
    use_tags: bool = True
    tags_considered: dict[str, dict[str, Any]] = field(default_factory=dict)
    bpm_range: tuple[float, float] | None = None
    refold: frozenset[str] = frozenset()

    def retagged(self, track_id: str, tags: dict[str, Any], hint: GridHint | None) -> bool:
        """Whether a known track's file now has a BPM or key tag its stored analysis did not
        consider (a tempo its user gave wins over any BPM tag: that one never counts)."""
        if not self.use_tags:
            return False
        before = self.tags_considered.get(track_id, {})
        bpm, key = tags.get("bpm"), tags.get("key")
        if bpm and (hint is None or hint.bpm is None):
            if before.get("bpm") is None or abs(float(bpm) - float(before["bpm"])) > 1e-6:
                return True
        return bool(key) and key != before.get("key")

    def knows(self, track_id: str) -> bool:
        key = np.uint64(int(track_id, 16))
        i = int(np.searchsorted(self.known_ids, key))
        return i < len(self.known_ids) and self.known_ids[i] == key


def ids_to_array(track_ids: Iterable[str]) -> np.ndarray:
    """Sorted uint64 array of 16-hex-digit track ids (compact to send to workers)."""
    return np.sort(np.array([int(t, 16) for t in track_ids], dtype=np.uint64))


@dataclass
class Analysed:
    """A file analysed (and sliced, when asked)."""

    file: ScannedFile
    analysis: TrackAnalysis
    seconds: float  # wall time of decode + analysis
    slices: int = 0
    slice_error: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # cratedig.audio.tags.file_tags
    #: A known track analysed again because its file's BPM or key tag changed: its analysis
    #: replaces the stored one.
    replaces: bool = False


@dataclass
class AlreadyKnown:
    """A file whose decoded audio is a track the library already has, current."""

    file: ScannedFile
    track_id: str
    duration: float
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failed:
    """A file that cannot be analysed, and why."""

    file: ScannedFile
    reason: str


@dataclass
class Vanished:
    """A file that disappeared between the scan and its turn."""

    file: ScannedFile


Outcome = Analysed | AlreadyKnown | Failed | Vanished


def analyse_decoded(
    audio: DecodedAudio,
    path: str | os.PathLike[str],
    *,
    hint: GridHint | None = None,
    tags: dict[str, Any] | None = None,
    bpm_range: tuple[float, float] | None = None,
) -> TrackAnalysis:
    """Analyse audio the worker already decoded (see :func:`~cratedig.analysis.pipeline.analyze_decoded`),
    on the grid its user gave (``hint``) if any, the BPM and key of its file's ``tags``
    considered, in the DJ's ``bpm_range`` if any."""
    return analyze_decoded(audio, path, hint=hint, tags=tags, bpm_range=bpm_range)


def _hint_of(ctx: WorkerContext, track_id: str) -> GridHint | None:
    """What the user gave of this track's grid (``cratedig regrid``), kept across re-analyses;
    None if nothing, or if what is stored no longer reads as a grid (logged, not fatal)."""
    given = ctx.grid_hints.get(track_id)
    if not given:
        return None
    try:
        return GridHint.from_json(given)
    except ParameterError as exc:
        log.warning("track %s: the grid its user gave is ignored (%s)", track_id, exc)
        return None


def process_file(ctx: WorkerContext, scanned: ScannedFile) -> Outcome:
    """Worker: decode a file once, and analyse it unless its audio is already a current track.

    Never raises for a bad file (that is a :class:`Failed` with the reason); raises
    :class:`~cratedig.library.errors.DiskFull` when slices cannot be written for lack of space,
    which stops the ingest.
    """
    t0 = time.perf_counter()
    # Stat just before reading: if the file changes after this, the next ingest sees it.
    current = stat_file(scanned.path) or scanned
    try:
        audio = decode(current.path, sr=ANALYSIS_SR, max_duration=ctx.max_duration)
    except AudioError as exc:
        if not os.path.exists(current.path):
            return Vanished(current)
        return Failed(current, exc.reason)
    track_id = track_id_from_hash(audio.content_hash)
    tags = file_tags(current.path)
    hint = _hint_of(ctx, track_id)
    known = ctx.knows(track_id)
    if known and not ctx.retagged(track_id, tags, hint) and track_id not in ctx.refold:
        return AlreadyKnown(current, track_id, audio.duration, tags)
    try:
        analysis = analyse_decoded(
            audio,
            current.path,
            hint=hint,
            tags=tags if ctx.use_tags else None,
            bpm_range=ctx.bpm_range,
        )
    except AudioError as exc:
        return Failed(current, exc.reason)
    except Exception as exc:  # a bug on one odd file must not stop a 10 000-file ingest
        log.exception("analysis of %s failed", current.path)
        return Failed(current, f"analysis failed ({type(exc).__name__}: {exc})")
    result = Analysed(current, analysis, time.perf_counter() - t0, tags=tags, replaces=known)
    if ctx.slices_dir is not None:
        # A mono file already at the analysis rate was decoded exactly as slicing needs it.
        native = audio if audio.sr == audio.source_sr and audio.channels == 1 else None
        try:
            written = write_track_slices(
                analysis, ctx.slices_dir, source=current.path, fmt=ctx.slice_format, audio=native
            )
            result.slices = len(written)
        except SliceError as exc:
            result.slice_error = str(exc)
    return result


@dataclass(frozen=True)
class SliceTask:
    """Worker input of :func:`slice_track`."""

    analysis: TrackAnalysis
    source: str


def slice_track(ctx: WorkerContext, task: SliceTask) -> int:
    """Worker: write one track's slices; returns how many (raises SliceError, DiskFull)."""
    assert ctx.slices_dir is not None
    return len(
        write_track_slices(task.analysis, ctx.slices_dir, source=task.source, fmt=ctx.slice_format)
    )


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class IngestReport:
    """What an ingest did; the CLI prints it as a summary (or JSON)."""

    root: str
    db: str
    executor: str
    scanned: int = 0
    analysed: int = 0
    unchanged: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)  # (path, track id)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, existing path)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    failed_before: int = 0  # unchanged files that failed in an earlier ingest (not retried)
    vanished: list[str] = field(default_factory=list)
    pruned: int = 0  # library paths under root that are gone from disk
    gone_tracks: list[str] = field(default_factory=list)  # tracks no file holds any more: dropped
    unreadable_folders: list[tuple[str, str]] = field(default_factory=list)
    slices: int = 0
    stems: int = 0  # tracks whose stems were recorded or updated
    slice_errors: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0  # of the files analysed
    elapsed: float = 0.0
    interrupted: bool = False
    #: Unchanged files analysed again for the BPM range (a tempo outside it, or one another
    #: range folded).
    refolded: int = 0
    #: The BPM range this ingest read tempi in (given or kept by the library), if any.
    bpm_range: tuple[float, float] | None = None
    #: Names this run in ``tracks.ingest_id`` (``cratedig drift --batch``): UTC start time.
    ingest_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))

    @property
    def tracks_per_minute(self) -> float:
        """Files analysed per minute of wall time."""
        return 60.0 * self.analysed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio analysed per second of wall time."""
        return self.audio_seconds / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "db": self.db,
            "executor": self.executor,
            "scanned": self.scanned,
            "analysed": self.analysed,
            "unchanged": self.unchanged,
            "moved": [{"path": p, "track_id": t} for p, t in self.moved],
            "duplicates": [{"path": p, "duplicate_of": o} for p, o in self.duplicates],
            "failed": [{"path": p, "error": r} for p, r in self.failed],
            "failed_before": self.failed_before,
            "vanished": self.vanished,
            "pruned": self.pruned,
            "gone_tracks": self.gone_tracks,
            "unreadable_folders": [{"path": p, "error": r} for p, r in self.unreadable_folders],
            "slices": self.slices,
            "stems": self.stems,
            "slice_errors": [{"path": p, "error": r} for p, r in self.slice_errors],
            "audio_seconds": round(self.audio_seconds, 3),
            "elapsed": round(self.elapsed, 3),
            "tracks_per_minute": round(self.tracks_per_minute, 2),
            "realtime_factor": round(self.realtime_factor, 2),
            "interrupted": self.interrupted,
            "refolded": self.refolded,
            "bpm_range": list(self.bpm_range) if self.bpm_range is not None else None,
            "ingest_id": self.ingest_id,
        }


#: Progress callback: ``(event, **details)``; events are "planned" (total=, skipped=),
#: "done" (path=, status=) and "slicing" (total=).
ProgressCallback = Callable[..., None]


def _no_progress(event: str, **details: Any) -> None:
    return None


# ---------------------------------------------------------------------------------------------
# The ingest


def ingest(
    library: Library,
    root: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    slices_dir: str | os.PathLike[str] | None = None,
    slice_fmt: str = "flac",
    retry_failed: bool = False,
    max_duration: float = MAX_DURATION,
    use_tags: bool = True,
    bpm_range: tuple[float, float] | str | None = None,
    progress: ProgressCallback = _no_progress,
) -> IngestReport:
    """Bring the library up to date with the audio under ``root``.

    Parameters
    ----------
    library : Library
        An open library (:func:`cratedig.library.db.open_library`).
    root : path-like
        Folder to scan recursively (or one audio file).
    executor : Executor, optional
        Where analysis runs; default: this process.
    slices_dir : path-like, optional
        Also write every phrase segment there (see :mod:`cratedig.library.slices`); workers
        write them, so with Dask it must be a path every worker can reach. Not scanned.
    slice_fmt : str
        Slice format: flac, wav, aiff or ogg.
    retry_failed : bool
        Retry files that failed before even if unchanged.
    max_duration : float
        Refuse files longer than this many seconds.
    use_tags : bool
        A file's BPM and key tags (else what its name states) pick among the readings the
        audio allows (:func:`cratedig.analysis.rhythm.follow_tag_tempo`,
        :func:`cratedig.analysis.tonal.follow_tag_key`); False: the audio alone, for the files
        analysed in this run.
    bpm_range : (float, float) or "off", optional
        The DJ's BPM range (:func:`cratedig.analysis.rhythm.fold_into_range`), kept in the
        library (``settings``) for every later ingest; ``"off"`` clears it; None (default):
        the one the library keeps, if any. Files analysed read their tempo in it where the
        audio allows, and known tracks it would read otherwise are analysed again
        (:func:`cratedig.library.repository.tempos_to_refold`: a tempo outside it, or one
        another range folded; once per range).
    progress : callable, optional
        Called with ``"planned"`` once, then ``"done"`` per file processed.

    Returns
    -------
    IngestReport

    Raises
    ------
    LibraryError
        ``root`` does not exist; database read-only, disk full, unreachable: the ingest stops,
        everything committed so far stays, and running it again resumes.

    Examples
    --------
    >>> from cratedig.library.db import open_library
    >>> with open_library("crate.db") as lib:  # doctest: +SKIP
    ...     report = ingest(lib, "~/Music")
    >>> report.analysed, report.unchanged, len(report.failed)  # doctest: +SKIP
    (120, 0, 2)
    """
    t0 = time.perf_counter()
    check_max_duration(max_duration)
    executor = executor or InProcessExecutor()
    if slices_dir is not None:
        slice_format(slice_fmt)  # validate before any work
        check_slices_dir(slices_dir)
    # Two ingests of one library (two terminals, a cron job and a DJ) take turns: the second
    # plans after the first has stored its tracks, so no file is analysed twice.
    with library.exclusive("ingest"):
        return _ingest(
            library,
            root,
            executor=executor,
            slices_dir=slices_dir,
            slice_fmt=slice_fmt,
            retry_failed=retry_failed,
            max_duration=max_duration,
            use_tags=use_tags,
            bpm_range=bpm_range,
            progress=progress,
            t0=t0,
        )


def _ingest(
    library: Library,
    root: str | os.PathLike[str],
    *,
    executor: Executor,
    slices_dir: str | os.PathLike[str] | None,
    slice_fmt: str,
    retry_failed: bool,
    max_duration: float,
    use_tags: bool,
    bpm_range: tuple[float, float] | str | None,
    progress: ProgressCallback,
    t0: float,
) -> IngestReport:
    # Slices written under the music folder are not music to ingest.
    scan = scan_folder(root, exclude=[slices_dir] if slices_dir is not None else [])
    top = os.path.abspath(os.path.expanduser(os.fspath(root)))
    report = IngestReport(
        root=top, db=library.shown_url, executor=executor.describe(), scanned=len(scan.files)
    )
    report.unreadable_folders = scan.unreadable
    with library.reader() as s:
        files = repo.known_files(s)
        errors = repo.known_errors(s)
    report.pruned = _prune_missing(library, top, {f.path for f in scan.files}, files)
    with library.reader() as s:
        current = repo.current_track_ids(s, analysis_version=ANALYSIS_VERSION)
        hints = repo.grid_hints(s)
        considered = repo.tags_considered(s) if use_tags else {}
    tempo_range = _bpm_range_of(library, bpm_range)
    report.bpm_range = tempo_range
    refold: frozenset[str] = frozenset()
    if bpm_range is not None or tempo_range is not None:
        # Nothing to read again where no range was given and none is kept (most ingests).
        with library.reader() as s:
            refold = repo.tempos_to_refold(
                s,
                tempo_range,
                analysis_version=ANALYSIS_VERSION,
                changed=bpm_range is not None,
            )
    todo: list[ScannedFile] = []
    seen_tracks: set[str] = set()  # tracks this ingest saw unchanged: may need their slices
    refolding: set[str] = set()  # tracks read again in the BPM range
    for f in scan.files:
        k = files.get(f.path)
        if (
            k
            and (k.size, k.mtime_ns) == (f.size, f.mtime_ns)
            and k.analysis_version == ANALYSIS_VERSION
        ):
            if k.track_id in refold and k.track_id not in refolding:
                # read again in the DJ's BPM range (one of its files is enough)
                refolding.add(k.track_id)
                report.refolded += 1
                todo.append(f)
                continue
            report.unchanged += 1
            seen_tracks.add(k.track_id)
            continue
        e = errors.get(f.path)
        if (
            e
            and not retry_failed
            and (e.size, e.mtime_ns) == (f.size, f.mtime_ns)
            and e.analysis_version == ANALYSIS_VERSION
        ):
            report.failed_before += 1
            continue
        todo.append(f)
    log.info(
        "%d audio files under %s: %d to process, %d unchanged, %d failed before",
        len(scan.files),
        top,
        len(todo),
        report.unchanged,
        report.failed_before,
    )
    progress("planned", total=len(todo), skipped=report.unchanged + report.failed_before)

    ctx = WorkerContext(
        known_ids=ids_to_array(current),
        max_duration=max_duration,
        slices_dir=os.fspath(slices_dir) if slices_dir is not None else None,
        slice_format=slice_fmt,
        grid_hints=hints,
        use_tags=use_tags,
        tags_considered=considered,
        bpm_range=tempo_range,
        refold=refold,
    )
    stored: set[str] = set(current)  # current tracks, including those stored by this ingest
    try:
        for f, outcome in executor.imap_unordered(process_file, todo, context=ctx):
            status = _write_outcome(library, f, outcome, report, stored, seen_tracks)
            progress("done", path=f.path, status=status)
    except KeyboardInterrupt:
        report.interrupted = True
    if not report.interrupted:
        report.stems = _sync_stems(library, scan.files)
        # Only now: a file moved inside the folder has found its track again by this point.
        with library.transaction() as s:
            report.gone_tracks = repo.delete_tracks_without_files(s)
    if slices_dir is not None and not report.interrupted:
        _slice_unchanged(library, executor, ctx, seen_tracks, report, progress)
    report.elapsed = time.perf_counter() - t0
    if report.interrupted:
        raise IngestInterrupted(report)
    return report


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest; carries the report of what was done (all of it committed)."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__("ingest interrupted")
        self.report = report


def _sync_stems(library: Library, scanned: list[ScannedFile]) -> int:
    """Record the stems found beside (or inside) the scanned files' tracks; returns how many
    tracks' stems changed. Stems whose files are all gone are forgotten."""
    with library.reader() as s:
        files = repo.known_files(s)
        stored = repo.all_stems(s)
    wanted: dict[str, set[repo.StemInfo]] = {}
    for f in scanned:
        k = files.get(f.path)
        if k is None:
            continue
        found = {repo.StemInfo(st.name, st.path, st.stream) for st in f.stems}
        wanted.setdefault(k.track_id, set()).update(found)
    changed = 0
    for track_id, stems in wanted.items():
        have = stored.get(track_id, set())
        if stems == have:
            continue
        if not stems and any(os.path.exists(st.path) for st in have):
            continue  # stems recorded from another path of this track
        with library.transaction() as s:
            repo.replace_stems(s, track_id, sorted(stems, key=lambda st: st.name))
        changed += 1
    return changed


def _prune_missing(
    library: Library, top: str, present: set[str], known: dict[str, repo.KnownFile]
) -> int:
    """Forget library paths under ``top`` that are no longer on disk (moved or deleted)."""
    prefix = top.rstrip(os.sep) + os.sep
    gone = [
        p
        for p in known
        if (p == top or p.startswith(prefix)) and p not in present and not os.path.exists(p)
    ]
    if not gone:
        return 0
    with library.transaction() as s:
        return repo.forget_files(s, gone)


def _bpm_range_of(
    library: Library, given: tuple[float, float] | str | None
) -> tuple[float, float] | None:
    """The BPM range of this ingest: ``given`` (then kept in the library), cleared by "off", or
    the one the library keeps."""
    from cratedig.analysis.rhythm import check_bpm_range

    if given is None:
        with library.reader() as s:
            return repo.stored_bpm_range(s)
    if given == "off":
        value = None
    elif isinstance(given, str):
        raise ParameterError(f"bpm_range {given!r}: a (lo, hi) pair or 'off'")
    else:
        value = check_bpm_range(*given)
    with library.transaction() as s:
        repo.set_setting(s, "bpm_range", list(value) if value is not None else None)
    return value


def _write_outcome(
    library: Library,
    scanned: ScannedFile,
    outcome: Outcome | BaseException,
    report: IngestReport,
    stored: set[str],
    seen_tracks: set[str],
) -> str:
    """Write one file's outcome in one transaction; returns its status word."""
    if isinstance(outcome, (DiskFull, DatabaseReadOnly)):
        raise outcome
    if isinstance(outcome, BaseException):
        reason = f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__
        outcome = Failed(scanned, reason)
    f = outcome.file
    if isinstance(outcome, Vanished):
        with library.transaction() as s:
            repo.forget_files(s, [f.path])
        report.vanished.append(f.path)
        return "vanished"
    if isinstance(outcome, Failed):
        with library.transaction() as s:
            repo.record_error(
                s,
                path=f.path,
                reason=outcome.reason,
                size=f.size,
                mtime_ns=f.mtime_ns,
                analysis_version=ANALYSIS_VERSION,
            )
        report.failed.append((f.path, outcome.reason))
        log.info("failed: %s: %s", f.path, outcome.reason)
        return "failed"
    if isinstance(outcome, Analysed) and outcome.replaces:
        # Analysed again for its tags: only a file the track already has speaks for it (a
        # copy elsewhere whose tags or name say another tempo is a duplicate, not a retag).
        with library.reader() as s:
            paths = repo.track_paths(s, outcome.analysis.track_id)
        if f.path not in paths and any(os.path.exists(p) for p in paths):
            outcome = AlreadyKnown(
                f, outcome.analysis.track_id, outcome.analysis.duration, outcome.tags
            )
    if isinstance(outcome, Analysed) and (
        outcome.analysis.track_id not in stored or outcome.replaces
    ):
        a = outcome.analysis
        with library.transaction() as s:
            repo.store_analysis(s, a, ingest_id=report.ingest_id)
            repo.set_tags(s, a.track_id, outcome.tags)
            repo.record_file(s, path=f.path, track_id=a.track_id, size=f.size, mtime_ns=f.mtime_ns)
        stored.add(a.track_id)
        report.analysed += 1
        report.audio_seconds += a.duration
        report.slices += outcome.slices
        if outcome.slice_error:
            report.slice_errors.append((f.path, outcome.slice_error))
            seen_tracks.add(a.track_id)  # retried after the main pass
        return "analysed"
    # Audio the library has (found by a worker, or analysed twice in this run): a new path.
    track_id = outcome.track_id if isinstance(outcome, AlreadyKnown) else outcome.analysis.track_id
    with library.transaction() as s:
        others = [p for p in repo.track_paths(s, track_id) if p != f.path]
        live = [p for p in others if os.path.exists(p)]
        repo.forget_files(s, [p for p in others if p not in live])
        repo.record_file(s, path=f.path, track_id=track_id, size=f.size, mtime_ns=f.mtime_ns)
        # A retagged file (its audio unchanged) brings its new tags; a tagless copy of a
        # tagged file does not wipe the original's (nor does one whose name alone says
        # something: "loop_124bpm (copy).wav").
        named = set(outcome.tags.get("from_name") or []) | {"from_name"}
        if any(k not in named for k in outcome.tags) or not live:
            repo.set_tags(s, track_id, outcome.tags)
    seen_tracks.add(track_id)
    if live:
        report.duplicates.append((f.path, live[0]))
        return "duplicate"
    report.moved.append((f.path, track_id))
    return "moved"


def _slice_unchanged(
    library: Library,
    executor: Executor,
    ctx: WorkerContext,
    track_ids: set[str],
    report: IngestReport,
    progress: ProgressCallback,
) -> None:
    """Write the slices of tracks this ingest skipped whose slices are missing or stale."""
    assert ctx.slices_dir is not None
    with library.reader() as s:
        spans = repo.segment_spans(s, sorted(track_ids))
    missing = sorted(
        t
        for t in track_ids
        if not slices_complete(
            ctx.slices_dir, t, analysis_version=ANALYSIS_VERSION, fmt=ctx.slice_format,
            spans=[(a, b) for _, a, b in spans.get(t, [])],
        )
    )  # fmt: skip
    if not missing:
        return
    result = export_slices(
        library,
        ctx.slices_dir,
        fmt=ctx.slice_format,
        executor=executor,
        track_ids=missing,
        force=True,
        progress=progress,
    )
    report.slices += result.slices
    report.slice_errors.extend(result.errors)


@dataclass
class PruneReport:
    """What :func:`prune` removed."""

    files: list[str] = field(default_factory=list)  # paths no longer on disk
    tracks: list[str] = field(default_factory=list)  # tracks left without any file

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "tracks": self.tracks}


def prune(library: Library) -> PruneReport:
    """Forget every recorded path that is gone from disk and drop the tracks left without a
    file (ghosts), anywhere in the library; the match index drops them at its next sync."""
    report = PruneReport()
    with library.reader() as s:
        known = repo.known_files(s)
    report.files = sorted(p for p in known if not os.path.exists(p))
    with library.transaction() as s:
        repo.forget_files(s, report.files)
        report.tracks = repo.delete_tracks_without_files(s)
    return report


# ---------------------------------------------------------------------------------------------
# Slices for an existing library


@dataclass
class SliceReport:
    """What :func:`export_slices` did."""

    out_dir: str
    tracks: int = 0
    slices: int = 0
    skipped: int = 0  # complete already
    errors: list[tuple[str, str]] = field(default_factory=list)  # (track id or path, reason)
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "tracks": self.tracks,
            "slices": self.slices,
            "skipped": self.skipped,
            "errors": [{"track": t, "error": r} for t, r in self.errors],
            "elapsed": round(self.elapsed, 3),
        }


def export_slices(
    library: Library,
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "flac",
    executor: Executor | None = None,
    track_ids: Iterable[str] | None = None,
    force: bool = False,
    progress: ProgressCallback = _no_progress,
) -> SliceReport:
    """Write the phrase slices of every track in the library (or of ``track_ids``).

    Each track is cut from the first of its files that still holds its audio. Tracks whose
    slices are complete for their analysis version and ``fmt`` are skipped unless ``force``.

    Returns
    -------
    SliceReport

    Raises
    ------
    DiskFull
        No space left in ``out_dir`` (slices written so far stay).
    """
    t0 = time.perf_counter()
    form = slice_format(fmt)
    check_slices_dir(out_dir)
    executor = executor or InProcessExecutor()
    report = SliceReport(out_dir=os.fspath(out_dir))
    with library.reader() as s:
        if track_ids is None:
            wanted = sorted(t.track_id for t in repo.query_tracks(s))
        else:
            wanted = sorted(set(track_ids))
        versions = {t.track_id: t.analysis_version for t in repo.query_tracks(s)}
        spans = {} if force else repo.segment_spans(s, wanted)
    todo = [
        t
        for t in wanted
        if t in versions
        and (
            force
            or not slices_complete(
                out_dir, t, analysis_version=versions[t], fmt=form.name,
                spans=[(a, b) for _, a, b in spans.get(t, [])],
            )
        )
    ]  # fmt: skip
    report.skipped = len(wanted) - len(todo)
    progress("slicing", total=len(todo))

    def tasks() -> Iterator[SliceTask]:
        # Lazily, so only the analyses in flight are in memory.
        for track_id in todo:
            with library.reader() as s:
                analysis = repo.load_analysis(s, track_id)
                paths = repo.track_paths(s, track_id)
            source = next((p for p in paths if os.path.exists(p)), None)
            if analysis is None or source is None:
                report.errors.append((track_id, "no file of this track is on disk any more"))
                continue
            yield SliceTask(analysis, source)

    ctx = WorkerContext(
        known_ids=np.zeros(0, np.uint64), slices_dir=os.fspath(out_dir), slice_format=form.name
    )
    for task, outcome in executor.imap_unordered(slice_track, tasks(), context=ctx):
        if isinstance(outcome, DiskFull):
            raise outcome
        if isinstance(outcome, BaseException):
            report.errors.append((task.source, str(outcome)))
            status = "failed"
        else:
            report.tracks += 1
            report.slices += int(outcome)
            status = "sliced"
        progress("done", path=task.source, status=status)
    report.elapsed = time.perf_counter() - t0
    return report


__all__ = [
    "AlreadyKnown",
    "Analysed",
    "Failed",
    "IngestInterrupted",
    "IngestReport",
    "PruneReport",
    "LibraryError",
    "SliceReport",
    "Vanished",
    "WorkerContext",
    "analyse_decoded",
    "export_slices",
    "ingest",
    "process_file",
    "prune",
]
