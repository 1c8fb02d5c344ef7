"""The command line: the analyze --json contract of DESIGN.md, errors, exit codes, the demo."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
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


def test_analyze_at_a_tempo_the_user_gives(songs, song_files):
    truth = songs[0]
    obj = json.loads(run("analyze", "--json", "--bpm", str(2 * truth.tempo), song_files[0]).stdout)
    assert obj["tempo"] == pytest.approx(2 * truth.tempo, rel=0.01)
    assert obj["estimates"]["tempo"]["confidence"] == 1.0
    assert obj["estimates"]["tempo"]["alternative"] is None
    bad = run("analyze", "--bpm", "500", song_files[0])
    assert bad.exit_code == 2 and "--bpm" in bad.output


def test_analyze_with_the_bars_the_user_gives(songs, song_files):
    """``--downbeat`` puts beat 1 there, ``--beats-per-bar`` sets the meter; the text output
    says the grid is the user's."""
    truth = songs[0]
    at = float(truth.beats[1])
    obj = json.loads(
        run(
            "analyze", "--json", "--downbeat", str(at), "--beats-per-bar", "3", song_files[0]
        ).stdout
    )
    assert obj["time_signature"][0] == 3
    assert min(abs(d - at) for d in obj["downbeats"]) < 0.02
    assert obj["estimates"]["grid"]["given"] == {"downbeat": round(at, 4), "beats_per_bar": 3}
    text = run("analyze", "--downbeat", str(at), song_files[0]).stdout
    assert f"grid as you gave it: a bar starts at {at:.2f} s" in text
    # as DJ software shows times: m:ss.s
    m, sec = divmod(at, 60)
    clocked = json.loads(run("analyze", "--json", "--downbeat", f"{int(m)}:{sec:06.3f}",
                             song_files[0]).stdout)  # fmt: skip
    assert clocked["estimates"]["grid"]["given"]["downbeat"] == pytest.approx(at, abs=1e-3)
    assert run("analyze", "--downbeat", "1:99", song_files[0]).exit_code == 2
    bad = run("analyze", "--beats-per-bar", "5", song_files[0])
    assert bad.exit_code == 2 and "--beats-per-bar" in bad.output
    bad = run("analyze", "--downbeat", "-1", song_files[0])
    assert bad.exit_code == 2 and "--downbeat" in bad.output


def test_analyze_shows_sections(song_files):
    obj = json.loads(run("analyze", "--json", song_files[0]).stdout)
    sections = obj["sections"]
    assert sections and all(0.0 <= x["confidence"] <= 1.0 for x in sections)
    text = run("analyze", song_files[0]).stdout
    assert "section" in text and "boundary" in text
    assert all(x["label"] in text for x in sections)


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


def test_analyze_writes_a_rekordbox_collection_of_the_files_it_could_read(
    songs, song_files, tmp_path
):
    import xml.etree.ElementTree as ET

    from cratedig.library.rekordbox import path_of_location, tonality

    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3" + b"\x00" * 400)
    xml = tmp_path / "rekordbox.xml"
    result = run(
        "analyze", "--json", "--rekordbox", str(xml), song_files[0], str(bad), song_files[1]
    )
    assert result.exit_code == 0
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    tracks = ET.parse(xml).getroot().find("COLLECTION").findall("TRACK")
    assert [path_of_location(t.get("Location")) for t in tracks] == [
        str(Path(song_files[0]).resolve()),
        str(Path(song_files[1]).resolve()),
    ]
    for t, line, song in zip(tracks, (lines[0], lines[2]), songs[:2], strict=True):
        assert float(t.get("AverageBpm")) == pytest.approx(line["tempo"], abs=0.006)
        assert t.get("Tonality") == tonality(song.key)
        assert len(t.findall("POSITION_MARK")) == len(line["sections"])
    refused = run("analyze", "--json", "--rekordbox", "-", song_files[0])
    assert refused.exit_code == 1 and "standard output" in str(refused.exception)


def test_all_failed_exits_non_zero(tmp_path):
    result = run("analyze", "--json", str(tmp_path))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].startswith("is a directory")


def test_table_output(song_files):
    result = run("analyze", song_files[2])
    assert result.exit_code == 0
    assert "BPM" in result.stdout and "label" in result.stdout


def test_demo_json(tmp_path):
    """The demo's whole job: songs, library, matches, a pair preview and a mashup."""
    result = run("demo", "--folder", str(tmp_path / "lib"), "--n", "4", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    rows = r["tracks"]
    assert len(rows) == 4
    assert sum(r["tempo_ok"] and r["key_ok"] for r in rows) >= 3
    assert (tmp_path / "lib" / "music" / "truth.json").exists()
    assert r["ingest"]["analysed"] == 4 and not r["ingest"]["failed"]
    assert Path(r["db"]).exists() and r["ingest"]["segments"] > 0
    # Songs 1 and 2 are a mixable pair by construction: one of them is the query.
    assert Path(r["query"]["path"]).name in ("demo_01.wav", "demo_02.flac")
    assert r["matches"] and all(m["score"] > 0 for m in r["matches"])
    # One row per phrase, in the song's order, each with its fit; the pair rendered is the
    # best fit among them (a good fit before a fair one before a poor one, then the score).
    starts = [m["query_start"] for m in r["matches"]]
    assert starts == sorted(starts)
    assert len({m["query_segment"] for m in r["matches"]}) == len(r["matches"])
    assert all(m["fit"] in ("good", "fair", "poor") for m in r["matches"])
    rank = {"good": 0, "fair": 1, "poor": 2}
    shown = min(r["matches"], key=lambda m: (rank[m["fit"]], -m["score"]))
    rd = r["renders"]
    assert rd["pair_segments"] == [shown["query_segment"], shown["segment"]]
    y, sr = sf.read(rd["pair"])
    assert abs(len(y) / sr - rd["pair_seconds"]) < 0.01 and np.abs(y).max() < 1.0
    y, sr = sf.read(rd["mashup"])
    assert abs(len(y) / sr - rd["mashup_seconds"]) < 0.01
    plan = json.loads(Path(rd["plan"]).read_text())
    assert len(plan["cues"]) == rd["cues"] and rd["cues_with_partner"] >= 1
    # Again: nothing new to analyse.
    again = json.loads(
        run("demo", "--folder", str(tmp_path / "lib"), "--n", "4", "--json", "--no-render").stdout
    )
    assert again["ingest"]["analysed"] == 0 and again["ingest"]["unchanged"] == 4
    assert again["renders"] == {}
    # The demo's songs carry their stems (demo_XX.stems/), so the ranker can learn from them.
    assert sorted(p.name for p in (tmp_path / "lib" / "music" / "demo_01.stems").iterdir()) == [
        "bass.wav", "chords.wav", "drums.wav", "lead.wav"
    ]  # fmt: skip
    trained = run("train", "--db", r["db"], "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["metrics"]["stem_pairs"] > 0
