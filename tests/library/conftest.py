"""Library fixtures: short synthesized tracks in several formats, and a fresh database per test
on each backend (SQLite file; a real PostgreSQL server given by ``CRATEDIG_TEST_PG_URL``)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cratedig.synth import synthesize_song
from cratedig.theory import Key

PG_ENV = "CRATEDIG_TEST_PG_URL"

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
def pg_admin_url() -> str:
    """URL of the test PostgreSQL server; fails in CI and skips elsewhere when it is missing."""
    url = os.environ.get(PG_ENV)
    if not url:
        reason = (
            f"{PG_ENV} is not set: start a server with `bash .ci/postgres.sh` and export "
            "the URL it prints"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests must run in CI: {reason}")
        pytest.skip(reason)
    return url


def _pg_database(admin_url: str):
    """Create a fresh database on the test server; yields its URL, drops it afterwards."""
    from sqlalchemy import create_engine, make_url, text

    from cratedig.library.db import resolve_db_url

    admin = make_url(resolve_db_url(admin_url))
    name = f"cratedig_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty library database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'library.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    yield from _pg_database(admin)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite library (for tests of SQLite-only behaviour)."""
    return f"sqlite:///{tmp_path / 'library.db'}"


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
