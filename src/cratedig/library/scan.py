"""Finding audio files under a folder: recursive, quiet about everything that is not audio.

A scan only lists and ``stat``\\ s; it never opens a file. It skips hidden names (``.foo``,
macOS ``._foo`` resource forks), files whose suffix is not in
:data:`~cratedig.audio.decode.AUDIO_SUFFIXES`, folders it cannot read (logged) and entries that
vanish while it runs. Symbolic links to folders are followed once (a link cycle is not a loop).

Stems: a folder ``<name>.stems/`` beside ``<name>.<ext>`` holds that track's stems (one audio
file per stem, named ``vocals``, ``drums``, ``bass``, ``other``... by file name); it is not
scanned for tracks. An NI ``.stem.mp4`` carries its mix in stream 0 and four stems in streams
1-4. Stems are listed with their track, never ingested as tracks.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from cratedig.audio.decode import AUDIO_SUFFIXES
from cratedig.library.errors import LibraryError

log = logging.getLogger("cratedig.library")


@dataclass(frozen=True)
class ScannedFile:
    """An audio file found by a scan.

    Attributes
    ----------
    path : str
        Absolute path (symbolic links kept as named).
    size : int
        Bytes.
    mtime_ns : int
        Modification time in nanoseconds since the epoch.
    stems : tuple of Stem
        Its stems, if any: files in a ``<name>.stems/`` folder beside it, or the stem streams
        of an NI ``.stem.mp4``.
    """

    path: str
    size: int
    mtime_ns: int
    stems: tuple[Stem, ...] = ()


@dataclass(frozen=True)
class Stem:
    """One stem of a track: a file of its own (``stream`` None) or a stream of the track's file."""

    name: str
    path: str
    stream: int | None = None


#: Suffix of a folder of stems beside its mix: ``song.flac`` + ``song.stems/vocals.wav``...
STEMS_FOLDER = ".stems"
#: NI Stems: stream 0 is the mix, streams 1-4 the stems in this order (NI stem specification).
NI_STEM_SUFFIX = ".stem.mp4"
NI_STEM_NAMES = ("drums", "bass", "other", "vocals")


def folder_stems(folder: str | os.PathLike[str]) -> tuple[Stem, ...]:
    """The audio files of a stems folder, named by their file name without suffix."""
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.is_file() and is_audio_name(e.name))
    except OSError:
        return ()
    return tuple(Stem(Path(n).stem.lower(), os.path.join(os.fspath(folder), n)) for n in names)


def ni_stems(path: str) -> tuple[Stem, ...]:
    """The four stem streams of an NI ``.stem.mp4`` (named by the NI order)."""
    return tuple(Stem(n, path, i + 1) for i, n in enumerate(NI_STEM_NAMES))


@dataclass
class ScanResult:
    """Files found and folders that could not be read."""

    files: list[ScannedFile]
    unreadable: list[tuple[str, str]]  # (folder, reason)


def is_audio_name(name: str) -> bool:
    """Whether a file name looks like audio cratedig reads (case-insensitive suffix)."""
    return not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES


def stat_file(path: str | os.PathLike[str]) -> ScannedFile | None:
    """``ScannedFile`` for one path, or None if it is gone or not a regular file."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return ScannedFile(p, st.st_size, st.st_mtime_ns)


def scan_folder(
    root: str | os.PathLike[str], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> ScanResult:
    """Every audio file under ``root``, sorted by path.

    Parameters
    ----------
    root : path-like
        A folder (or a single audio file).
    exclude : iterable of path-like
        Folders not to enter (e.g. a slice folder inside the music folder).

    Returns
    -------
    ScanResult

    Raises
    ------
    LibraryError
        When ``root`` itself does not exist or is neither a folder nor an audio file.

    Examples
    --------
    >>> [f.path for f in scan_folder("~/Music").files]  # doctest: +SKIP
    ['/home/dj/Music/a.flac', '/home/dj/Music/sub/b.mp3']
    """
    top = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if os.path.isfile(top):
        one = stat_file(top)
        if one is None or not is_audio_name(os.path.basename(top)):
            raise LibraryError(f"{top} is neither a folder nor an audio file")
        stems_dir = os.path.splitext(top)[0] + STEMS_FOLDER
        if os.path.isdir(stems_dir):
            one = replace(one, stems=folder_stems(stems_dir))
        elif top.lower().endswith(NI_STEM_SUFFIX):
            one = replace(one, stems=ni_stems(top))
        return ScanResult([one], [])
    if not os.path.isdir(top):
        raise LibraryError(f"{top}: no such folder")
    files: list[ScannedFile] = []
    unreadable: list[tuple[str, str]] = []
    visited: set[tuple[int, int]] = set()
    for folder in exclude:
        try:
            st = os.stat(folder)
        except OSError:
            continue
        visited.add((st.st_dev, st.st_ino))  # as if already seen: never entered
    for found in _walk(top, visited, unreadable):
        files.append(found)
    files.sort(key=lambda f: f.path)
    return ScanResult(files, unreadable)


def _walk(
    folder: str, visited: set[tuple[int, int]], unreadable: list[tuple[str, str]]
) -> Iterator[ScannedFile]:
    try:
        st = os.stat(folder)
    except OSError as exc:  # vanished or unreadable since its parent listed it
        unreadable.append((folder, exc.strerror or str(exc)))
        return
    ident = (st.st_dev, st.st_ino)
    if ident in visited:
        log.debug("skipping %s: already visited (symlink cycle?)", folder)
        return
    visited.add(ident)
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        log.warning("cannot read folder %s: %s", folder, exc.strerror or exc)
        unreadable.append((folder, exc.strerror or str(exc)))
        return
    # "<name>.stems" folders hold the stems of "<name>.<ext>": not tracks of their own.
    stem_dirs = {}
    for entry in entries:
        if entry.name.lower().endswith(STEMS_FOLDER) and not entry.name.startswith("."):
            try:
                if entry.is_dir(follow_symlinks=True):
                    stem_dirs[entry.name[: -len(STEMS_FOLDER)]] = entry.path
            except OSError:
                continue
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=True):
                if entry.path not in stem_dirs.values():
                    yield from _walk(entry.path, visited, unreadable)
                continue
            if not is_audio_name(entry.name) or not entry.is_file(follow_symlinks=True):
                continue
            est = entry.stat(follow_symlinks=True)
        except OSError:  # vanished mid-scan, dangling link: not there, nothing to report
            continue
        base = os.path.splitext(entry.name)[0]
        stems: tuple[Stem, ...] = ()
        if base in stem_dirs:
            stems = folder_stems(stem_dirs[base])
        elif entry.name.lower().endswith(NI_STEM_SUFFIX):
            stems = ni_stems(entry.path)
        yield ScannedFile(entry.path, est.st_size, est.st_mtime_ns, stems)
