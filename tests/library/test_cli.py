"""The library commands, through Typer's runner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from cratedig.cli.library import register


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    return app


def invoke(app, *args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_ingest_stats_tracks_and_export_slices(app, db_url, music, tmp_path):
    report = json.loads(invoke(app, "ingest", music, "--db", db_url, "--json").stdout)
    assert report["analysed"] == 6 and report["failed"] == []
    assert report["tracks_per_minute"] > 0 and report["realtime_factor"] > 0

    again = json.loads(invoke(app, "ingest", music, "--db", db_url, "--json").stdout)
    assert again["unchanged"] == 6 and again["analysed"] == 0

    stats = json.loads(invoke(app, "stats", "--db", db_url, "--json").stdout)
    assert stats["tracks"] == 6 and stats["files"] == 6 and stats["db_bytes"] > 0

    tracks = json.loads(invoke(app, "tracks", "--db", db_url, "--json").stdout)["tracks"]
    assert len(tracks) == 6
    one = tracks[0]
    lo, hi = one["tempo"] - 0.5, one["tempo"] + 0.5
    picked = json.loads(
        invoke(
            app, "tracks", "--db", db_url, "--key", one["camelot"], "--bpm", f"{lo}-{hi}", "--json"
        ).stdout
    )["tracks"]
    assert one["track_id"] in [t["track_id"] for t in picked]
    assert all(t["camelot"] == one["camelot"] and lo <= t["tempo"] <= hi for t in picked)

    out = tmp_path / "slices"
    sliced = json.loads(invoke(app, "export-slices", out, "--db", db_url, "--json").stdout)
    assert sliced["tracks"] == 6 and sliced["slices"] == stats["segments"]
    assert len(list(out.rglob("*.flac"))) == stats["segments"]


def test_human_output_has_a_summary_and_tables(app, sqlite_url, music):
    result = invoke(app, "ingest", music, "--db", sqlite_url)
    assert "analysed" in result.stdout and "unchanged" in result.stdout
    assert "tracks/s" in result.stderr  # the progress bar
    assert "tracks" in invoke(app, "stats", "--db", sqlite_url).stdout
    assert "BPM" in invoke(app, "tracks", "--db", sqlite_url, "--bpm", "100-200").stdout


def test_known_errors_are_one_line_and_exit_1(sqlite_url, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cratedig.cli",
            "ingest",
            str(tmp_path / "nope"),
            "--db",
            sqlite_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such folder"]
    assert "Traceback" not in proc.stderr
