"""A small ingested library of synthesized songs and a FastAPI test client over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
# Three songs that mix (close tempi, related keys) and one that cannot (3/4 at 90 BPM).
SONGS = [
    ("crate/house_a.wav", 124.0, "A minor", 4, 71),
    ("crate/house_b.flac", 126.0, "A minor", 4, 72),
    ("crate/deep/house_c.wav", 122.0, "C major", 4, 73),
    ("other/waltz.wav", 90.0, "F major", 3, 74),
]


def write_songs(root: Path, specs=SONGS) -> dict[str, Path]:
    out = {}
    for name, tempo, key, meter, seed in specs:
        song = synthesize_song(tempo=tempo, key=Key.parse(key), meter=meter, bars=16, sr=SR,
                               seed=seed, sections=[("verse", 8), ("chorus", 8)])  # fmt: skip
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, song.audio, SR)
        out[name] = p
    return out


@pytest.fixture(scope="session")
def service_music(tmp_path_factory) -> Path:
    """The songs, written once per session (copy before changing)."""
    root = tmp_path_factory.mktemp("service-music")
    write_songs(root / "music")
    return root / "music"


def ingested_copy(
    service_music: Path, root: Path, tags: dict[str, dict[str, str]] | None = None
) -> tuple[str, Path]:
    """A copy of the songs under ``root/music`` (free to change) and a SQLite library of its
    'crate' folder: ``(url, music)``. ``tags``: Vorbis comments written into FLAC files of the
    copy first (``{"crate/house_b.flac": {"ARTIST": ...}}``)."""
    import shutil

    from mutagen.flac import FLAC

    from cratedig import workflows
    from cratedig.library.db import open_library

    music = root / "music"
    shutil.copytree(service_music, music)
    for name, comments in (tags or {}).items():
        f = FLAC(music / name)
        for k, v in comments.items():
            f[k] = v
        f.save()
    url = f"sqlite:///{root / 'library.db'}"
    with open_library(url) as lib:
        workflows.update_library(lib, music / "crate")
    return url, music


@pytest.fixture(scope="module")
def service_library(service_music, tmp_path_factory):
    """A SQLite library of the 'crate' folder (the waltz is left out, to be scanned)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    root = tmp_path_factory.mktemp("service-lib")
    url = f"sqlite:///{root / 'library.db'}"
    with open_library(url) as lib:
        update = workflows.update_library(lib, service_music / "crate")
        assert update.ingest.analysed == 3 and not update.ingest.failed
    return {"url": url, "music": service_music, "root": root}


@pytest.fixture(scope="module")
def client(service_library):
    from fastapi.testclient import TestClient

    from cratedig.service import ServiceSettings, create_app

    settings = ServiceSettings(db=service_library["url"], music=[service_library["music"]])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
