"""Atomic file writes: a reader never sees half a file, a crash leaves no debris."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is unique (concurrent writers of one path do not collide) and keeps
    ``path``'s suffix (writers that choose a format by suffix, e.g. ``np.savez``, see the
    right one). On any error it is removed and the error propagates; ``path`` is untouched.

    Examples
    --------
    >>> with atomic_path(out / "index.npz") as tmp:  # doctest: +SKIP
    ...     np.savez(tmp, vectors=v)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=f".tmp{p.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
