"""``ingest --bpm-range``: the library keeps the DJ's range for every later ingest; files
analysed read their tempo in it, and known tracks it would read otherwise are analysed again,
once per range (a track the range cannot move is not tried again with the same range); ``off``
clears it, and the tracks it had folded go back to the audio's own reading."""

from __future__ import annotations

import json
import re

import pytest
import soundfile as sf
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


def run(*args, code=0):
    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def _tempos(db):
    tracks = json.loads(run("tracks", "--db", db, "--json").stdout)["tracks"]
    return {t["path"].rsplit("/", 1)[-1]: t["tempo"] for t in tracks}


def test_ingest_reads_tempos_in_the_range_and_reads_known_tracks_again(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    for name, bpm, seed in (("slow.flac", 84.0, 3), ("mid.flac", 126.0, 4)):
        song = synthesize_song(tempo=bpm, key=Key.parse("C minor"), bars=12, seed=seed, sr=SR)
        sf.write(music / name, song.audio, SR, format="FLAC")
    db = f"sqlite:///{tmp_path / 'lib.db'}"
    first = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert first.get("ingest", first)["analysed"] == 2
    before = _tempos(db)
    assert before["slow.flac"] == pytest.approx(84.0, rel=0.02)

    # The 84 is read at 168 in a range of 120-240; 126 lies inside and is not touched.
    again = json.loads(run("ingest", music, "--db", db, "--json", "--bpm-range", "120-240").stdout)
    report = again.get("ingest", again)
    assert report["refolded"] == 1 and report["analysed"] == 1
    after = _tempos(db)
    assert after["slow.flac"] == pytest.approx(168.0, rel=0.02)
    assert after["mid.flac"] == before["mid.flac"]
    assert _estimates(tmp_path, _track_id(db, "slow.flac"))["tempo"]["range"] == {
        "range": [120.0, 240.0],
        "bpm": pytest.approx(168.0, rel=0.02),
        "used": True,
        "heard": pytest.approx(84.0, rel=0.02),
    }

    # A fixed bar line keeps the tempo in the range; a query file new to the library is read
    # in it as the library is.
    slow_id = _track_id(db, "slow.flac")
    run("regrid", slow_id, "--downbeat", "2.0", "--db", db)
    assert _tempos(db)["slow.flac"] == pytest.approx(168.0, rel=0.02)
    run("regrid", slow_id, "--clear", "--db", db)
    outsider = tmp_path / "outsider.flac"
    other = synthesize_song(tempo=90.0, key=Key.parse("F minor"), bars=12, seed=11, sr=SR)
    sf.write(outsider, other.audio, SR, format="FLAC")
    query = json.loads(run("match", outsider, "--db", db, "--json").stdout)["query"]
    assert query["tempo"] == pytest.approx(180.0, rel=0.02)
    assert query["estimates"]["tempo"]["range"]["heard"] == pytest.approx(90.0, rel=0.02)

    # The library keeps the range: an ingest without the option reads in it, and finds nothing
    # left to move.
    third = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert third.get("ingest", third)["analysed"] == 0
    assert third.get("ingest", third)["bpm_range"] == [120.0, 240.0]
    # A new song ingested later is read in the kept range too.
    late = synthesize_song(tempo=80.0, key=Key.parse("G minor"), bars=12, seed=9, sr=SR)
    sf.write(music / "late.flac", late.audio, SR, format="FLAC")
    run("ingest", music, "--db", db, "--json")
    assert _tempos(db)["late.flac"] == pytest.approx(160.0, rel=0.02)
    (music / "late.flac").unlink()
    run("prune", "--db", db)
    # A range no octave of 84 or 126 falls in: both read again once, at the audio's own
    # tempo (the last range's 168 was that range's), then left alone.
    narrow = ["--bpm-range", "130-150"]
    fourth = json.loads(run("ingest", music, "--db", db, "--json", *narrow).stdout)
    assert fourth.get("ingest", fourth)["refolded"] == 2
    assert _tempos(db) == before
    fifth = json.loads(run("ingest", music, "--db", db, "--json", *narrow).stdout)
    assert fifth.get("ingest", fifth)["refolded"] == 0

    # Back to 120-240 (168 again), then off: the fold goes, the audio's own 84 comes back.
    run("ingest", music, "--db", db, "--json", "--bpm-range", "120-240")
    assert _tempos(db)["slow.flac"] == pytest.approx(168.0, rel=0.02)
    off = json.loads(run("ingest", music, "--db", db, "--json", "--bpm-range", "off").stdout)
    assert off.get("ingest", off)["refolded"] == 1 and off.get("ingest", off)["bpm_range"] is None
    assert _tempos(db) == before
    again_off = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert again_off.get("ingest", again_off)["analysed"] == 0


def _estimates(tmp_path, track_id):
    from cratedig.library.db import open_library
    from cratedig.library.schema import TrackRow

    with open_library(f"sqlite:///{tmp_path / 'lib.db'}") as lib, lib.reader() as s:
        return s.get(TrackRow, track_id).estimates


def _track_id(db, name):
    tracks = json.loads(run("tracks", "--db", db, "--json").stdout)["tracks"]
    return next(t["track_id"] for t in tracks if t["path"].endswith(name))


def test_a_range_that_is_no_range_is_refused_before_any_work(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    r = run("ingest", tmp_path, "--bpm-range", "140-70", "--db", db, code=2)
    assert "low end must be below the high end" in _words(r.output)
    r = run("analyze", tmp_path / "nothing.wav", "--bpm-range", "fast", code=2)
    assert "give it as LO-HI" in _words(r.output)
    assert not (tmp_path / "x.db").exists()


def _words(text):
    """The words of a usage error, out of its box and line breaks."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())
