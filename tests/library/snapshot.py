"""A comparable picture of a library's contents (for "the same library" assertions)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sqlalchemy import select

from cratedig.library.db import open_library
from cratedig.library.schema import FeatureRow, FileRow, IngestErrorRow, SegmentRow, TrackRow

_SKIP = {"analysed_at", "seen_at", "at", "id", "ingest_id"}  # when, not what


def _row(obj: Any, cls: Any) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in cls.__table__.columns if c.key not in _SKIP}


def snapshot(db_url: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Tracks, segments, features, files and errors keyed by their natural ids (paths relative
    to ``root`` when given, so that libraries of two copies of a folder compare equal)."""

    def rel(path: str) -> str:
        return os.path.relpath(path, root) if root is not None else path

    with open_library(db_url) as lib, lib.reader() as s:
        return {
            "tracks": {t.id: _row(t, TrackRow) for t in s.scalars(select(TrackRow))},
            "segments": {g.id: _row(g, SegmentRow) for g in s.scalars(select(SegmentRow))},
            "features": {f.segment_id: _row(f, FeatureRow) for f in s.scalars(select(FeatureRow))},
            "files": {rel(f.path): f.track_id for f in s.scalars(select(FileRow))},
            "errors": {rel(e.path): e.reason for e in s.scalars(select(IngestErrorRow))},
        }


def assert_same_library(a: dict[str, Any], b: dict[str, Any], *, rtol: float = 1e-6) -> None:
    """Equal ids, paths and discrete values; floats and float32 blobs equal within ``rtol``.

    A tolerance rather than bit equality: worker processes may run numpy's BLAS with another
    thread count than this one, which can change the last bits of a sum.
    """
    assert a["files"] == b["files"]
    assert a["errors"] == b["errors"]
    for table in ("tracks", "segments", "features"):
        assert a[table].keys() == b[table].keys(), table
        for key, row in a[table].items():
            other = b[table][key]
            for col, x in row.items():
                y = other[col]
                if col == "fingerprint" and x is not None and y is not None:
                    # bits (uint16 frames): a sum's last bit may flip one, never more than a few
                    fx, fy = np.frombuffer(x, "<u2"), np.frombuffer(y, "<u2")
                    assert len(fx) == len(fy), f"{table}.{col} of {key}"
                    assert np.count_nonzero(fx != fy) <= max(2, len(fx) // 1000), key
                elif isinstance(x, bytes):
                    np.testing.assert_allclose(
                        np.frombuffer(x, "<f4"),
                        np.frombuffer(y, "<f4"),
                        rtol=rtol,
                        atol=1e-6,
                        err_msg=f"{table}.{col} of {key}",
                    )
                elif isinstance(x, float):
                    assert np.isclose(x, y, rtol=rtol, atol=1e-6), f"{table}.{col} of {key}"
                else:
                    assert x == y, f"{table}.{col} of {key}: {x!r} != {y!r}"
