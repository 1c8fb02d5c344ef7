"""Writing files: atomic replacement of regular files, streaming into everything else.

Two helpers:

- :func:`atomic_path` for cratedig's own artefacts (index, clusters, render cache, slices):
  a reader never sees half a file, a crash leaves no debris.
- :func:`output_path` for what a user names with ``-o``: a regular file (or a new name) is
  replaced atomically; a symbolic link is written *through* (its target gets the new content,
  the link stays); a FIFO, a character or block device, or ``-`` (standard output) receives the
  bytes as a stream; a directory, a socket, or a missing parent folder is refused with one line
  (:func:`check_output`, called before any work). A non-regular file is never replaced.

Both create files with the mode the umask allows (``0o666 & ~umask``), or keep the mode of the
file they replace, as ``open(path, "w")`` would; never ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cratedig.errors import OutputError

__all__ = ["OutputTarget", "atomic_path", "check_output", "current_umask", "output_path"]

_UMASK_LOCK = threading.Lock()
#: Bytes copied per write when streaming into a FIFO, device or standard output.
STREAM_CHUNK = 1 << 20


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _new_file_mode(existing: Path | None) -> int:
    if existing is not None:
        try:
            return stat.S_IMODE(existing.stat().st_mode)
        except OSError:
            pass
    return 0o666 & ~current_umask()


def _mkdir_parent(p: Path) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(
            f"cannot create folder {exc.filename or p.parent}: a file is in the way"
        ) from exc
    except NotADirectoryError as exc:
        raise OutputError(f"cannot create {p}: {exc.filename or p.parent} is not a folder") from exc
    except OSError as exc:
        raise _as_output_error(exc, p) from exc


def _as_output_error(exc: BaseException, p: str | os.PathLike[str]) -> OutputError:
    """One line for a failed write of ``p``."""
    if isinstance(exc, OutputError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return OutputError(f"cannot write {os.fsdecode(p)}: no space left on device")
        return OutputError(f"cannot write {os.fsdecode(p)}: {exc.strerror or exc}")
    return OutputError(f"cannot write {os.fsdecode(p)}: {' '.join(str(exc).split()) or 'failed'}")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is unique (concurrent writers of one path do not collide) and keeps
    ``path``'s suffix (writers that choose a format by suffix, e.g. ``np.savez``, see the
    right one). On any error it is removed and the error propagates; ``path`` is untouched.
    The result has the replaced file's mode, or the umask's for a new file.

    Raises
    ------
    OutputError
        The folder cannot be created (a file is in the way, read-only), or an ``OSError`` in
        the block (no space left...), in one line; the original error is its ``__cause__``.

    Examples
    --------
    >>> with atomic_path(out / "index.npz") as tmp:  # doctest: +SKIP
    ...     np.savez(tmp, vectors=v)
    """
    p = Path(path)
    _mkdir_parent(p)
    try:
        fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=f".tmp{p.suffix}")
    except OSError as exc:
        raise _as_output_error(exc, p) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _new_file_mode(p if p.exists() else None))
        os.replace(tmp, p)
    except OSError as exc:  # disk full, read-only, quota: one line, not a traceback
        tmp.unlink(missing_ok=True)
        raise _as_output_error(exc, p) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class OutputTarget:
    """Where an output really goes.

    Attributes
    ----------
    shown : str
        The name as the user gave it (for messages).
    path : Path or None
        The file to write: the link's target for a symbolic link; None for standard output.
    kind : {"file", "stream", "stdout"}
        ``file``: a regular file or a new name, replaced atomically; ``stream``: a FIFO or a
        device, written in place; ``stdout``: ``-``.
    """

    shown: str
    path: Path | None
    kind: str


def check_output(path: str | os.PathLike[str], *, example: str = "out.wav") -> OutputTarget:
    """Say where ``path`` would be written, or refuse it, before any work is done.

    ``example`` is the file name the refusal of a folder suggests inside it.

    Raises
    ------
    OutputError
        ``path`` is a directory or a socket, its folder does not exist or is not a folder.

    Examples
    --------
    >>> check_output("-").kind
    'stdout'
    """
    shown = os.fsdecode(path)
    if shown == "-":
        return OutputTarget(shown, None, "stdout")
    p = Path(path).expanduser()
    if shown.endswith(os.sep) and not p.is_dir():
        raise OutputError(f"{shown}: names a folder; give a file name")
    # A symbolic link is written through: resolve it (a dangling link names the file to create).
    real = Path(os.path.realpath(p)) if p.is_symlink() else p
    try:
        st = real.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise OutputError(f"{shown}: a part of the path is not a folder") from None
    except OSError as exc:
        raise _as_output_error(exc, shown) from exc
    if st is None:
        parent = real.parent
        if not parent.is_dir():
            raise OutputError(
                f"{shown}: folder {os.fsdecode(parent)} does not exist"
                if not parent.exists()
                else f"{shown}: {os.fsdecode(parent)} is not a folder"
            )
        return OutputTarget(shown, real, "file")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{shown} is a directory; give a file name (e.g. {shown}/{example})")
    if stat.S_ISREG(st.st_mode):
        return OutputTarget(shown, real, "file")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return OutputTarget(shown, real, "stream")
    raise OutputError(f"{shown} is neither a file, a FIFO nor a device: refusing to write to it")


@contextmanager
def output_path(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file to write ``path``'s content into; deliver it on success.

    Parameters
    ----------
    path : path-like
        What the user named (``-o``): a file, a symbolic link, a FIFO, a device or ``-``.
    suffix : str, optional
        Suffix of the temporary file when streaming (default: ``path``'s); a regular file's
        temporary name keeps the real target's suffix.

    Raises
    ------
    OutputError
        The target is refused (see :func:`check_output`) or cannot be written (disk full,
        read-only, broken pipe): one line naming it.

    Examples
    --------
    >>> with output_path("mix.wav") as tmp:  # doctest: +SKIP
    ...     sf.write(tmp, y, sr)
    """
    target = check_output(path)
    sfx = suffix if suffix is not None else Path(os.fsdecode(path)).suffix
    if target.kind == "file":
        assert target.path is not None
        try:
            with atomic_path(target.path) as tmp:
                yield tmp
        except (OSError, AssertionError, RuntimeError) as exc:
            raise _write_error(exc, target) from exc
        return
    # Stream: write a temporary file first (formats like WAV seek back to fill their header),
    # then copy it into the FIFO, device or standard output.
    fd, name = tempfile.mkstemp(prefix=".cratedig-out.", suffix=sfx)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
            _stream_into(tmp, target)
        except (OSError, AssertionError, RuntimeError) as exc:
            raise _write_error(exc, target) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _write_error(exc: BaseException, target: OutputTarget) -> OutputError:
    if isinstance(exc, OSError) or target.path is None:
        return _as_output_error(exc, target.shown)
    # libsndfile reports a short write without errno (soundfile asserts): look at the disk.
    try:
        full = shutil.disk_usage(target.path.parent).free < (1 << 20)
    except OSError:
        full = False
    if full:
        return OutputError(f"cannot write {target.shown}: no space left on device")
    return _as_output_error(exc, target.shown)


def _stream_into(tmp: Path, target: OutputTarget) -> None:
    if target.kind == "stdout":
        sys.stdout.flush()
        out = sys.stdout.buffer
        with open(tmp, "rb") as src:
            shutil.copyfileobj(src, out, STREAM_CHUNK)
        out.flush()
        return
    assert target.path is not None
    # No O_CREAT, no O_TRUNC: write into what is there (a FIFO blocks until a reader opens it).
    fd = os.open(target.path, os.O_WRONLY)
    try:
        with open(tmp, "rb") as src:
            while chunk := src.read(STREAM_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


#: Frames handed to libsndfile per write call by :func:`write_sound`.
SOUND_BLOCK = 1 << 15


def write_sound(
    file: str | os.PathLike[str] | BinaryIO,
    frames: Any,
    sr: int,
    *,
    format: str,
    subtype: str | None = None,
) -> None:
    """Encode ``frames`` (``(n,)`` or ``(n, channels)``) into ``file`` a block at a time.

    ``soundfile.write`` hands libsndfile the whole signal in one call, and its Ogg Vorbis
    encoder then crashes the process (libvorbis takes the buffer on the stack: a segmentation
    fault from about a minute of stereo at 44.1 kHz, python-soundfile issues #396 and #426,
    libsndfile #1095). Written :data:`SOUND_BLOCK` frames at a time, every format and length
    encodes.
    """
    import numpy as np
    import soundfile as sf

    x = np.asarray(frames)
    channels = 1 if x.ndim == 1 else x.shape[1]
    with sf.SoundFile(file, "w", sr, channels, subtype, format=format) as f:
        for i in range(0, len(x), SOUND_BLOCK):
            f.write(x[i : i + SOUND_BLOCK])
