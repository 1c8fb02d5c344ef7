"""Library fixtures: short synthesized tracks in several formats (databases: ../conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cratedig.synth import synthesize_song
from cratedig.theory import Key

# (tempo, key, bars, file name, sample rate, channels, subtype): short songs (~12-16 s), every
# container cratedig reads natively, mono and stereo, 16/24-bit and float, 22.05 and 44.1 kHz.
TRACK_SPECS = [
    (124.0, "A minor", 8, "a/one.wav", 22050, 1, "PCM_16"),
    (128.0, "D minor", 8, "a/two.flac", 22050, 2, "PCM_24"),
    (140.0, "F major", 8, "b/three.ogg", 22050, 1, "VORBIS"),
    (150.0, "C minor", 8, "b/deeper/four.mp3", 22050, 1, "MPEG_LAYER_III"),
    (120.0, "E major", 8, "five.aiff", 44100, 2, "PCM_16"),
    (132.0, "G major", 8, "six.wav", 22050, 1, "FLOAT"),
]
LOSSLESS = ("one.wav", "two.flac", "five.aiff", "six.wav")


def _write(path: Path, song_audio: np.ndarray, sr: int, channels: int, subtype: str) -> None:
    x = song_audio
    if channels == 2:  # a real stereo image: the channels differ
        x = np.stack([x, 0.7 * x], axis=1)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF"}[
        path.suffix
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format=fmt, subtype=subtype)


@pytest.fixture(scope="session")
def track_files(tmp_path_factory) -> Path:
    """A folder of six short songs (cached for the session; copy it before changing it)."""
    root = tmp_path_factory.mktemp("tracks")
    for i, (tempo, key, bars, name, sr, ch, subtype) in enumerate(TRACK_SPECS):
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=bars, sr=sr, seed=100 + i)
        _write(root / name, song.audio, sr, ch, subtype)
    (root / "notes.txt").write_text("not audio: ignored quietly\n")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture
def music(track_files, tmp_path) -> Path:
    """A private copy of :func:`track_files` that a test may rename, copy or delete in."""
    dst = tmp_path / "music"
    shutil.copytree(track_files, dst)
    return dst


def copy_tracks(src: Path, dst: Path, names: list[str]) -> Path:
    """Copy some of the tracks (by file name) into ``dst``, keeping their sub-folders."""
    for p in sorted(src.rglob("*")):
        if p.name in names:
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
    return dst


@pytest.fixture(scope="session")
def reference_library(track_files, tmp_path_factory):
    """Snapshot of :func:`track_files` ingested in this process into SQLite (paths relative)."""
    from cratedig.compute import InProcessExecutor
    from cratedig.library.db import open_library
    from cratedig.library.ingest import ingest

    from .snapshot import snapshot

    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}"
    with open_library(url) as lib:
        ingest(lib, track_files, executor=InProcessExecutor())
    return snapshot(url, track_files)
