"""``cratedig regrid``: a DJ fixes a track's grid and the library keeps it (both backends).

The track is analysed again on the grid given, its phrases, index entries and ratings follow,
and what was given is stored with the track: a later re-analysis (a new analysis version)
lays the same grid, and ``--clear`` goes back to the analysis' own."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from cratedig import ANALYSIS_VERSION, workflows
from cratedig.cli import app
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.schema import TrackRow
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

SR = 22050
BEAT = 0.5  # 120 BPM


def run(*args: object, code: int = 0) -> str:
    """The command's output; with ``code`` != 0, its output and the error's message."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=code != 0)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else f"{result.output} {result.exception}"


@pytest.fixture(scope="module")
def two_songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("regrid")
    truth = {}
    for name, tempo, key, seed in (("a", 120.0, "A minor", 41), ("b", 120.0, "C major", 42)):
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR)
        write_song(song, root / f"{name}.wav")
        truth[name] = song
    return root, truth


@pytest.fixture
def library(two_songs, tmp_path, db_url):
    root, truth = two_songs
    music = tmp_path / "music"
    shutil.copytree(root, music)
    run("ingest", music, "--db", db_url, "--json")
    with open_library(db_url) as lib:
        rows = workflows.list_tracks(lib)[0]
    ids = {os.path.basename(r["path"])[0]: r["track_id"] for r in rows}
    return {"db": db_url, "music": music, "truth": truth, **ids}


def stored(db, track_id):
    with open_library(db) as lib, lib.reader() as s:
        return repo.load_analysis(s, track_id), repo.grid_hints(s).get(track_id)


def test_regrid_moves_the_bar_lines_keeps_them_and_ratings_follow(library, monkeypatch):
    db, a, b = library["db"], library["a"], library["b"]
    song = library["truth"]["a"]
    before, hint = stored(db, a)
    assert hint is None
    assert np.allclose(before.downbeats[:4], song.downbeats[:4], atol=0.03)
    rid = json.loads(run("rate", f"{a}_1", f"{b}_1", 4, "--db", db, "--json"))["id"]

    # beat 1 where the song has beat 2 (a producer's count)
    at = float(song.beats[1])
    done = json.loads(run("regrid", a[:8], "--downbeat", at, "--db", db, "--json"))
    assert done["given"] == {"downbeat": at}
    assert done["after"]["first_downbeat"] == pytest.approx(at, abs=0.03)
    after, hint = stored(db, a)
    assert hint == {"downbeat": at}
    assert np.allclose(after.downbeats[:4], song.beats[1::4][:4], atol=0.03)
    assert after.estimates["grid"]["given"] == {"downbeat": at}
    listed = {t["track_id"]: t for t in json.loads(run("tracks", "--db", db, "--json"))["tracks"]}
    assert listed[a]["grid_given"] == {"downbeat": at} and listed[b]["grid_given"] == {}
    assert "the grid you gave" in run("tracks", "--db", db)
    # the rating follows its music (the phrase moved by a beat)
    assert done["ratings"]["moved"] + done["ratings"]["kept"] == 1
    r = json.loads(run("ratings", "--db", db, "--json"))["ratings"]
    assert [x["id"] for x in r] == [rid] and r[0]["state"] != "orphaned"
    # regrid brought the match index up to date: nothing left to sync, and the track is
    # suggested by its new phrases
    from cratedig.match.store import sync_index

    with open_library(db) as lib:
        _, synced = sync_index(lib)
    assert not synced.written and synced.added_tracks == 0
    res = json.loads(run("match", b, "--db", db, "--json", "--per-track", 0))
    got = {c["segment"] for m in res["matches"] for c in m["candidates"] if c["track_id"] == a}
    assert got and got <= {s.id for s in after.segments}

    # a tempo given later adds to the bar line given before
    done = json.loads(run("regrid", a, "--bpm", 240, "--db", db, "--json"))
    assert done["given"] == {"bpm": 240.0, "downbeat": at}
    assert done["after"]["tempo"] == pytest.approx(240.0, rel=0.01)

    # a new analysis version re-analyses the track: the same grid is laid again
    with open_library(db) as lib, lib.transaction() as s:
        s.execute(update(TrackRow).where(TrackRow.id == a).values(analysis_version=0))
    calls = []
    from cratedig.library import ingest as ingest_module

    real = ingest_module.analyse_decoded

    def spy(audio, path, **kw):
        calls.append(kw.get("hint"))
        return real(audio, path, **kw)

    monkeypatch.setattr(ingest_module, "analyse_decoded", spy)
    report = json.loads(run("ingest", library["music"], "--db", db, "--json"))
    assert report["analysed"] == 1
    assert [h.to_json() for h in calls] == [{"bpm": 240.0, "downbeat": at}]
    again, hint = stored(db, a)
    assert again.analysis_version == ANALYSIS_VERSION
    assert again.tempo == pytest.approx(240.0, rel=0.01)
    assert min(abs(np.asarray(again.downbeats) - at)) < 0.03

    # --clear: the analysis' own grid again, nothing kept
    done = json.loads(run("regrid", a, "--clear", "--db", db, "--json"))
    assert done["given"] == {}
    own, hint = stored(db, a)
    assert hint is None and own.tempo == pytest.approx(120.0, rel=0.01)
    np.testing.assert_allclose(own.downbeats, before.downbeats, atol=1e-3)


def test_regrid_refuses_what_it_cannot_do(library, tmp_path):
    db, a = library["db"], library["a"]
    assert "or --clear" in run("regrid", a, "--db", db, code=1)
    assert "or --clear" in run("regrid", a, "--clear", "--bpm", 120, "--db", db, code=1)
    assert "not a track of the library" in run("regrid", "ffffff", "--bpm", 120, "--db", db, code=1)
    # an id as the table cuts it: too short to name a track, and it says so
    assert "at least 6 hex digits" in run("regrid", a[:5] + "…", "--bpm", 120, "--db", db, code=1)
    assert "past the end" in run("regrid", a, "--downbeat", 999, "--db", db, code=1)
    assert run("regrid", a, "--beats-per-bar", 5, "--db", db, code=2)
    # nothing was changed by the refusals
    _, hint = stored(db, a)
    assert hint is None
    # the file is gone: it cannot be analysed again, and says so
    os.remove(library["music"] / "a.wav")
    assert "files are gone" in run("regrid", a, "--bpm", 120, "--db", db, code=1)


def test_slices_of_a_regridded_track_are_cut_again(library, tmp_path):
    """The analysis version does not change with a regrid, the phrases do: slices written
    before are stale, and both `export-slices` and `ingest --slices` write them again."""
    db, a, b = library["db"], library["a"], library["b"]
    out = tmp_path / "slices"
    first = json.loads(run("export-slices", out, "--db", db, "--json"))
    assert first["tracks"] == 2
    assert json.loads(run("export-slices", out, "--db", db, "--json"))["skipped"] == 2
    song = library["truth"]["a"]
    run("regrid", a, "--downbeat", float(song.beats[1]), "--db", db, "--json")
    again = json.loads(run("export-slices", out, "--db", db, "--json"))
    assert again["tracks"] == 1 and again["skipped"] == 1
    after, _ = stored(db, a)
    manifest = json.loads((out / a / "track.json").read_text())
    assert manifest["spans"] == [[round(s.start, 3), round(s.end, 3)] for s in after.segments]
    # ingest --slices finds them stale too (the file itself unchanged)
    run("regrid", a, "--clear", "--db", db, "--json")
    report = json.loads(run("ingest", library["music"], "--db", db, "--slices", out, "--json"))
    assert report["unchanged"] == 2 and report["slices"] >= 1
    own, _ = stored(db, a)
    manifest = json.loads((out / a / "track.json").read_text())
    assert manifest["spans"] == [[round(s.start, 3), round(s.end, 3)] for s in own.segments]
    assert (out / b / "track.json").exists()
