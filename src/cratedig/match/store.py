"""The library's match index on disk, kept in step with the database.

The index file lives in the library's artefact folder
(:attr:`cratedig.library.db.Library.artefact_dir`, beside a SQLite file) and records, per
track, the analysed-at stamp its vectors came from. :func:`sync_index` compares those stamps
with the database and applies only the difference: segments of removed or re-analysed tracks
are dropped, segments of new or re-analysed tracks are loaded and added, then the file is
replaced atomically. ``cratedig ingest`` calls it when it finishes, ``cratedig match`` before
every search (a no-op when nothing changed, so an ingest killed before its sync costs nothing
but a catch-up), and ``cratedig index --rebuild`` starts from scratch.

Tracks analysed by an older cratedig (an earlier ``ANALYSIS_VERSION``) stay in the index on
that analysis until ``ingest`` analyses them again (their stamp then changes and their
segments are replaced): after an upgrade the library keeps matching, and ``match`` says how
many tracks wait for it (:attr:`cratedig.match.query.MatchResult.stale_tracks`).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cratedig.errors import ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.batch import SegmentBatch
from cratedig.match.index import SegmentIndex

log = logging.getLogger(__name__)

INDEX_FILE = "segments.index.npz"
#: Tracks loaded from the database per batch while (re)building the index.
LOAD_CHUNK = 2000


def index_path(library: Library) -> Path:
    """Where the library's index file is (or will be)."""
    return library.artefact_dir / INDEX_FILE


@dataclass
class IndexSync:
    """What :func:`sync_index` changed."""

    path: str
    added_tracks: int = 0
    removed_tracks: int = 0
    segments: int = 0
    rebuilt: bool = False
    written: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "added_tracks": self.added_tracks,
            "removed_tracks": self.removed_tracks,
            "segments": self.segments,
            "rebuilt": self.rebuilt,
            "written": self.written,
        }


def load_index(library: Library) -> SegmentIndex | None:
    """The saved index, or None when there is none or it cannot be read (it is derived data:
    the caller rebuilds it)."""
    p = index_path(library)
    if not p.exists():
        return None
    try:
        index: SegmentIndex = SegmentIndex.load(p)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, ParameterError) as exc:
        # Derived data: truncated, empty or garbled, it is rebuilt from the database.
        log.warning("match index %s unreadable (%s): rebuilding it", p, exc or type(exc).__name__)
        return None
    return index


def sync_index(library: Library, *, rebuild: bool = False) -> tuple[SegmentIndex, IndexSync]:
    """Bring the saved index up to date with the database; returns it and what changed.

    Parameters
    ----------
    library : Library
    rebuild : bool
        Ignore the saved index and index every current track again.

    Examples
    --------
    >>> with open_library() as lib:  # doctest: +SKIP
    ...     index, report = sync_index(lib)
    """
    path = index_path(library)
    report = IndexSync(path=str(path))
    index = None if rebuild else load_index(library)
    if index is None:
        index = SegmentIndex()
        report.rebuilt = True
    with library.reader() as s:
        stamps = repo.track_stamps(s)
    stale = [t for t, v in index.stamps.items() if stamps.get(t) != v]
    # Segments whose track has no stamp (written by an older cratedig) are stale too.
    orphans = set(index.track_ids.astype(str).tolist()) - set(index.stamps)
    stale.extend(sorted(orphans))
    if stale:
        index.remove_tracks(stale)
    report.removed_tracks = len([t for t in stale if t not in stamps])
    new = sorted(t for t in stamps if t not in index.stamps)
    for i in range(0, len(new), LOAD_CHUNK):
        chunk = new[i : i + LOAD_CHUNK]
        with library.reader() as s:
            segments = repo.load_segments(s, track_ids=chunk)
        if segments:
            index.add(SegmentBatch.from_segments(segments))
        index.stamps.update({t: stamps[t] for t in chunk})
    report.added_tracks = len(new)
    report.segments = len(index)
    if stale or new or report.rebuilt:
        index.merge()
        index.save(path)
        report.written = True
        log.info(
            "match index %s: +%d tracks, -%d tracks, %d segments",
            path,
            len(new),
            report.removed_tracks,
            len(index),
        )
    return index, report
