"""The command line: the analyze --json contract of DESIGN.md, errors, exit codes, the demo."""

import json

import pytest
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.theory import Key

runner = CliRunner()

CONTRACT_KEYS = {
    "path",
    "track_id",
    "duration",
    "tempo",
    "time_signature",
    "key",
    "mode",
    "camelot",
    "beats",
    "downbeats",
    "segments",
}
SEGMENT_KEYS = {
    "id",
    "level",
    "start",
    "end",
    "bar",
    "bars",
    "label",
    "tempo",
    "key",
    "mode",
    "camelot",
    "energy",
}


def run(*args):
    result = runner.invoke(app, list(args))
    return result


def test_analyze_json_contract(songs, song_files):
    result = run("analyze", "--json", song_files[0])
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert CONTRACT_KEYS <= obj.keys()
    truth = songs[0]
    assert obj["tempo"] == pytest.approx(truth.tempo, rel=0.02)
    assert Key.parse(f"{obj['key']} {obj['mode']}") == truth.key
    assert obj["camelot"] == truth.key.camelot
    assert obj["time_signature"] == [truth.meter, 4]
    assert len(obj["track_id"]) == 16
    seg = obj["segments"][0]
    assert SEGMENT_KEYS <= seg.keys()
    assert seg["id"] == f"{obj['track_id']}_0"
    assert seg["level"] == "phrase"
    assert all(s["id"] == f"{obj['track_id']}_{i}" for i, s in enumerate(obj["segments"]))
    assert obj["downbeats"][0] in obj["beats"]


def test_analyze_features_flag(song_files):
    obj = json.loads(run("analyze", "--json", "--features", song_files[1]).stdout)
    f = obj["segments"][0]["features"]
    assert len(f["chroma"]) == obj["segments"][0]["bars"] and len(f["chroma"][0]) == 12
    assert len(f["rhythm"]) in (12, 16) and len(f["spectral_balance"]) == 3


def test_one_object_per_file_and_errors_as_objects(song_files, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3" + b"\x00" * 400)
    result = run("analyze", "--json", song_files[0], str(bad), str(tmp_path / "missing.wav"))
    assert result.exit_code == 0  # non-zero only if every file failed
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(lines) == 3
    assert "tempo" in lines[0]
    assert lines[1] == {"path": str(bad), "error": lines[1]["error"]} and lines[1]["error"]
    assert lines[2]["error"] == "no such file"


def test_all_failed_exits_non_zero(tmp_path):
    result = run("analyze", "--json", str(tmp_path))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].startswith("is a directory")


def test_table_output(song_files):
    result = run("analyze", song_files[2])
    assert result.exit_code == 0
    assert "BPM" in result.stdout and "label" in result.stdout


def test_demo_json(tmp_path):
    result = run("demo", "--folder", str(tmp_path / "lib"), "--n", "3", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["tracks"]
    assert len(rows) == 3
    assert sum(r["tempo_ok"] and r["key_ok"] for r in rows) >= 2
    assert (tmp_path / "lib" / "truth.json").exists()
