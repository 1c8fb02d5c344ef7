"""A small library of synthesized songs with stems, ingested through the CLI (shared by the
training and evaluation tests)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

SR = 22050
SONGS = (
    ("p", 118.0, "A minor", 91),
    ("q", 120.0, "F major", 92),
    ("r", 121.0, "D minor", 93),
    ("s", 119.0, "G major", 94),
    ("t", 122.0, "E minor", 96),
)


def run(*args: object):
    """Invoke the CLI; fail the test with its output on a non-zero exit."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def ingest_stem_songs(root: Path) -> dict[str, object]:
    """Write :data:`SONGS` with their ``.stems`` folders under ``root/music`` and ingest them."""
    music = root / "music"
    for name, tempo, key, seed in SONGS:
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=24, seed=seed, sr=SR)
        write_song(song, music / f"{name}.wav", stems_dir=music / f"{name}.stems")
    db = f"sqlite:///{root / 'lib.db'}"
    run("ingest", music, "--db", db, "--json")
    return {"root": root, "music": music, "db": db}
