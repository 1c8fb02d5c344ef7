"""Watching a real library end to end: generated songs with known tempo, key and meter are
ingested (the cluster model trains through the gate and stores its drift reference), then
batches of a different kind must drift on exactly the shifted features, and a batch like the
first must not. Also the quality listing and both HTML reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cratedig.cli.library import register as register_library
from cratedig.cli.match import register as register_match
from cratedig.cli.watch import register as register_watch
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

#: Model-side features move with any shift of what the clusters see.
MODEL_SIDE = {"cluster", "far"}


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register_library(app)
    register_match(app)
    register_watch(app)
    return app


def run(app, *args, code=0):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _songs(folder, n, seed, *, tempo=(110.0, 130.0), meter=4):
    rng = np.random.default_rng(seed)
    for i in range(n):
        song = synthesize_song(
            tempo=float(rng.uniform(*tempo)),
            key=Key.from_index(int(rng.integers(24))),
            meter=meter,
            bars=16,
            seed=seed * 100 + i,
            sr=22050,
        )
        write_song(song, folder / f"{folder.name}_{i:02d}.flac")


@pytest.fixture(scope="module")
def crates(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    for name, n, seed, kw in (
        ("base", 16, 1, {}),
        ("same", 8, 2, {}),
        ("waltz", 8, 3, {"meter": 3}),
        ("fast", 8, 4, {"tempo": (165.0, 180.0)}),
    ):
        (root / name).mkdir()
        _songs(root / name, n, seed, **kw)
    # One fake-lossless file in the base crate: a 44.1 kHz song through MP3 and back to FLAC.
    song = synthesize_song(tempo=120.0, key=Key.parse("8A"), bars=16, seed=99, sr=44100)
    write_song(song, root / "src.wav")
    mp3 = root / "src.mp3"
    for args in (
        ["-i", root / "src.wav", "-b:a", "128k", mp3],
        ["-i", mp3, root / "base/fake.flac"],
    ):
        subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)
    return root


@pytest.fixture(scope="module")
def library(app, crates, tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs ffmpeg: .ci/run installs it")
        pytest.skip("needs ffmpeg")
    db = tmp_path_factory.mktemp("db") / "lib.db"
    first = json.loads(run(app, "ingest", crates / "base", "--db", db, "--json").stdout)
    assert first["analysed"] == 17
    batches = {}
    for name in ("same", "waltz", "fast"):
        report = json.loads(run(app, "ingest", crates / name, "--db", db, "--json").stdout)
        batches[name] = report["ingest_id"]
    return db, batches


def _drift(app, db, batch, code):
    return json.loads(run(app, "drift", "--batch", batch, "--db", db, "--json", code=code).stdout)


def test_the_gate_kept_the_fake_lossless_file_out_of_training(app, library):
    db, _ = library
    low = json.loads(run(app, "tracks", "--quality", "low", "--db", db, "--json").stdout)
    fakes = [t for t in low["tracks"] if "fake_lossless" in t["quality"]["flags"]]
    assert len(fakes) == 1 and fakes[0]["path"].endswith("fake.flac")
    assert "kHz" in fakes[0]["quality"]["reasons"]["fake_lossless"]
    stats = json.loads(run(app, "stats", "--db", db, "--json").stdout)
    assert stats["quality"]["fake_lossless"] == 1
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    with open_library(db) as lib, lib.reader() as s:
        model = repo.latest_model(s, "clusters")
    assert model.metrics["gate"]["reasons"] == {"fake_lossless": 1}
    assert model.parameters["reference"]["tracks"] == 16


def test_a_batch_like_the_first_does_not_drift(app, library):
    db, batches = library
    r = _drift(app, db, batches["same"], 0)
    assert r["drift"] is False and r["drifted"] == [] and r["new_tracks"] == 8


def test_a_batch_of_waltzes_drifts_in_meter(app, library):
    db, batches = library
    r = _drift(app, db, batches["waltz"], 3)
    assert "meter" in r["drifted"] and set(r["drifted"]) - MODEL_SIDE == {"meter"}
    assert r["retrain"] is True
    assert "3/4 (0 % -> 100 %)" in r["verdict"]  # names the kind of music that arrived


def test_by_default_drift_looks_at_everything_since_training(app, library):
    db, _ = library
    r = json.loads(run(app, "drift", "--db", db, "--json").stdout)
    assert r["new_tracks"] == 24 and "since model v1" in r["selection"]
    assert r["failures"] == {"failed": 0, "analysed": 24, "rate": 0.0}
    # A third waltzes, a third fast, against 16 training songs: too few songs for any single
    # feature to pass the threshold, but the model clearly fits them worse.
    assert r["retrain"] is True
    assert any(g["by"] == "tempo band" and g["group"] == ">= 150 BPM" for g in r["worse"])


def test_a_new_tempo_band_drifts_in_tempo(app, library, tmp_path):
    db, batches = library
    html = tmp_path / "drift.html"
    r = json.loads(
        run(
            app,
            "drift",
            "--batch",
            batches["fast"],
            "--db",
            db,
            "--json",
            "--report",
            html,
            code=3,
        ).stdout
    )
    assert set(r["drifted"]) - MODEL_SIDE == {"tempo"}
    assert any(g["by"] == "tempo band" for g in r["worse"])
    text = html.read_text()
    assert "drift in" in text and text.count("data:image/png;base64,") >= 10


def test_the_library_report(app, library, tmp_path):
    db, _ = library
    out = json.loads(run(app, "report", "-o", tmp_path / "lib.html", "--db", db, "--json").stdout)
    text = (tmp_path / "lib.html").read_text()
    assert out["bytes"] == len(text.encode()) < 1_000_000
    for part in ("Camelot key wheel", "Tempo histogram", "Cluster map", "Analysis confidence"):
        assert part in text or part.lower() in text.lower()
    assert "fake lossless" in text or "fake_lossless" in text
