"""Shared fixtures: synthesized songs with known truth, cached per session, and a fixed rng."""

from __future__ import annotations

import os
import tempfile

# numba (under librosa) caches compiled functions beside the package; two fresh pytest-xdist
# workers compiling the same function at once can read a half-written cache file and segfault.
# One cache folder per worker removes the race. Set before anything imports numba.
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    os.path.join(
        tempfile.gettempdir(), f"cratedig-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    ),
)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cratedig.synth import Song, synthesize_song, write_song  # noqa: E402
from cratedig.theory import Key  # noqa: E402

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
