"""Shared fixtures: synthesized songs with known truth, cached per session, and a fixed rng."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

# numba (under librosa, used here by the synthesizer's checks) caches compiled code on disk; a
# stale or half-written entry, or two xdist workers writing one at once, segfaults the process.
# Each worker of each run compiles into its own fresh folder, removed at exit. (cratedig's own
# analysis calls no numba code.) Set before anything imports numba. xdist workers inherit the
# controller's environment, so the folder is keyed on the worker id, not on "is it set".
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
if os.environ.get("CRATEDIG_NUMBA_WORKER") != _WORKER and (
    "NUMBA_CACHE_DIR" not in os.environ or "CRATEDIG_NUMBA_WORKER" in os.environ
):
    _numba_dir = tempfile.mkdtemp(prefix=f"cratedig-numba-{_WORKER}-")
    os.environ["NUMBA_CACHE_DIR"] = _numba_dir
    os.environ["CRATEDIG_NUMBA_WORKER"] = _WORKER
    atexit.register(shutil.rmtree, _numba_dir, ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cratedig.synth import Song, synthesize_song, write_song  # noqa: E402
from cratedig.theory import Key  # noqa: E402

PG_ENV = "CRATEDIG_TEST_PG_URL"

# Point the user data directory at a temp dir so no test touches a real library.
os.environ.setdefault("CRATEDIG_DATA", "/tmp/cratedig-test-data")

SR = 22050

# (tempo, key, meter, lead_in): spread over the DJ range, both modes, both meters.
SONG_SPECS = [
    (124.0, "A minor", 4, 0.0),
    (92.0, "E major", 4, 1.3),
    (174.0, "F# minor", 4, 0.4),
    (140.0, "Bb major", 3, 0.0),
    (105.0, "C minor", 4, 2.0),
    (78.0, "G major", 4, 0.7),
    (128.0, "D minor", 4, 0.0),
    (160.0, "Ab major", 4, 0.25),
]


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture(scope="session")
def songs() -> list[Song]:
    """Eight 24-bar songs with known tempo, key, meter, beats, downbeats and sections."""
    return [
        synthesize_song(tempo=t, key=Key.parse(k), meter=m, bars=24, lead_in=li, seed=i, sr=SR)
        for i, (t, k, m, li) in enumerate(SONG_SPECS)
    ]


@pytest.fixture(scope="session")
def song_files(songs, tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("songs")
    paths = []
    for i, s in enumerate(songs):
        ext = ("wav", "flac", "ogg")[i % 3]
        p = d / f"song{i}.{ext}"
        write_song(s, p)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="session")
def analyses(songs):
    from cratedig.analysis.pipeline import analyze_signal

    return [analyze_signal(s.audio, sr=s.sr) for s in songs]


# -- databases: a fresh library per test on each backend (SQLite file; a real PostgreSQL
# server given by CRATEDIG_TEST_PG_URL) ------------------------------------------------------


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
