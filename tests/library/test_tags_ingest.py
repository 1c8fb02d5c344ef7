"""Ingest keeps what files' tags say: tracks list and search them, the REST track shows them, a
retagged file brings its new tags without a re-analysis, a tagless copy wipes nothing."""

from __future__ import annotations

import json
import shutil

import soundfile as sf
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def _library(tmp_path, seed, tags):
    """Two songs, a.flac (tagged with ``tags``) and b.flac (no tags), ingested: (music, db)."""
    from mutagen.flac import FLAC

    music = tmp_path / "music"
    music.mkdir()
    for i, name in enumerate(("a.flac", "b.flac")):
        song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=8, seed=seed + i, sr=SR)
        sf.write(music / name, song.audio, SR, format="FLAC")
    f = FLAC(music / "a.flac")
    for k, v in tags.items():
        f[k] = v
    f.save()
    db = f"sqlite:///{tmp_path / 'lib.db'}"
    run("ingest", music, "--db", db, "--json")
    return music, db


def _tracks(db, *extra):
    return json.loads(run("tracks", "--db", db, "--json", *extra).stdout)["tracks"]


def test_tags_are_stored_listed_searched_and_refreshed(tmp_path, monkeypatch):
    from mutagen.flac import FLAC

    from cratedig.cli._options import out

    monkeypatch.setattr(out, "width", 200)  # wide enough for a name on one line
    music, db = _library(
        tmp_path,
        5,
        {"ARTIST": "Ada Lovelace", "TITLE": "Night Drive", "BPM": "62", "INITIALKEY": "Am"},
    )

    tracks = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}
    assert tracks["a.flac"]["tags"] == {
        "artist": "Ada Lovelace", "title": "Night Drive", "bpm": 62.0, "key": "8A"
    }  # fmt: skip
    assert tracks["b.flac"]["tags"] == {}
    # Search finds the artist; the table names the track by its tags.
    found = _tracks(db, "--text", "lovelace")
    assert [t["track_id"] for t in found] == [tracks["a.flac"]["track_id"]]
    table = run("tracks", "--db", db).stdout
    assert "Ada Lovelace – Night Drive" in table
    # match names its partners by their tags too
    matched = run("match", music / "b.flac", "--db", db, "--top", "2").stdout
    assert "Ada Lovelace – Night Drive #" in matched, matched

    # Retagged: the audio is the same track, not analysed again; its tags are the new ones.
    f = FLAC(music / "a.flac")
    f["TITLE"] = "Night Drive (Extended)"
    f.save()
    again = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert again["analysed"] == 0
    tags = {t["track_id"]: t["tags"] for t in _tracks(db)}[tracks["a.flac"]["track_id"]]
    assert tags["title"] == "Night Drive (Extended)"

    # A copy of the audio without tags elsewhere does not wipe them.
    plain = tmp_path / "music" / "copy"
    plain.mkdir()
    shutil.copy(music / "a.flac", plain / "a-copy.flac")
    g = FLAC(plain / "a-copy.flac")
    g.delete()
    g.save()
    run("ingest", music, "--db", db, "--json")
    tags = {t["track_id"]: t["tags"] for t in _tracks(db)}[tracks["a.flac"]["track_id"]]
    assert tags["artist"] == "Ada Lovelace"


def test_the_rest_track_carries_its_tags(tmp_path):
    from fastapi.testclient import TestClient

    from cratedig.service import ServiceSettings, create_app

    music, db = _library(
        tmp_path, 7, {"ARTIST": "Ada Lovelace", "TITLE": "Night Drive", "GENRE": "Techno"}
    )
    with TestClient(create_app(ServiceSettings(db=db, music=[music]))) as client:
        listed = client.get("/api/tracks", params={"q": "night drive"}).json()["tracks"]
        assert len(listed) == 1 and listed[0]["tags"]["genre"] == "Techno"
        detail = client.get(f"/api/tracks/{listed[0]['track_id']}").json()
        assert detail["tags"] == {
            "artist": "Ada Lovelace",
            "title": "Night Drive",
            "genre": "Techno",
        }
        # A partner is named by its tags; one without tags has no name (its path names it).
        b = client.get("/api/tracks", params={"q": "b.flac"}).json()["tracks"][0]
        found = client.post("/api/match", json={"track_id": b["track_id"]}).json()
        partners = [c for m in found["matches"] for c in m["candidates"]]
        assert partners and all(c["name"] == "Ada Lovelace – Night Drive" for c in partners)
        back = client.post("/api/match", json={"track_id": listed[0]["track_id"]}).json()
        assert all("name" not in c for m in back["matches"] for c in m["candidates"])


def test_analyze_prints_the_tags_and_where_they_disagree(tmp_path):
    from mutagen.flac import FLAC

    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=8, seed=5, sr=SR)
    path = tmp_path / "a.flac"
    sf.write(path, song.audio, SR, format="FLAC")
    f = FLAC(path)
    f["ARTIST"], f["TITLE"], f["BPM"], f["INITIALKEY"] = "Ada Lovelace", "Night Drive", "62", "Am"
    f.save()
    shown = " ".join(run("analyze", path).stdout.split())
    assert "tags: Ada Lovelace · Night Drive" in shown
    assert "tags say" not in shown  # 62 is half of 124: a reading the audio allows; Am is 8A
    # the tag's level is followed, and said
    assert abs(float(shown.split(" BPM ")[0].rsplit(" ", 1)[1]) - 62.0) < 0.5
    assert "tempo 62 from the file's BPM tag, 1:2 of the 12" in shown
    assert "the audio alone reads (--ignore-tags to keep that)" in shown
    alone = " ".join(run("analyze", path, "--ignore-tags").stdout.split())
    assert abs(float(alone.split(" BPM ")[0].rsplit(" ", 1)[1]) - 124.0) < 0.5
    assert "BPM tag" not in alone
    f["BPM"], f["INITIALKEY"] = "100", "C"
    f.save()
    shown = " ".join(run("analyze", path).stdout.split())
    # 100 is no reading of a 124 BPM song
    assert abs(float(shown.split(" BPM ")[0].rsplit(" ", 1)[1]) - 124.0) < 0.5
    assert (
        "? the file's tags say 100 BPM (not a reading the audio allows) (--bpm 100 to use it)"
        in shown
    )
    # a clear A minor song: the tag's C major is not a reading it allows
    assert "? the file's tags say key 8B (not a reading the audio allows), the analysis 8A" in shown
    shown = " ".join(run("analyze", path, "--ignore-tags").stdout.split())
    assert "? the file's tags say 100 BPM (--bpm 100 to use it)" in shown
    assert "? the file's tags say key 8B, the analysis 8A" in shown


def test_ingest_follows_a_bpm_tag_the_audio_allows(tmp_path):
    """A 124 BPM song tagged 62 is stored at 62 BPM with the audio's own reading as its
    runner-up; ``--ignore-tags`` stores the audio's reading; a re-analysis keeps the tag."""
    music, db = _library(tmp_path, 5, {"TITLE": "Half", "BPM": "62"})
    tracks = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}
    assert abs(tracks["a.flac"]["tempo"] - 62.0) < 1.0
    assert abs(tracks["b.flac"]["tempo"] - 124.0) < 1.0
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    with open_library(db) as lib, lib.reader() as s:
        est = repo.track_estimates(s, [tracks["a.flac"]["track_id"]])[tracks["a.flac"]["track_id"]]
    assert est["tempo"]["tags"]["used"] and est["tempo"]["tags"]["relation"] == "1:2"
    assert abs(est["tempo"]["alternative"] - 124.0) < 1.0

    db2 = f"sqlite:///{tmp_path / 'alone.db'}"
    run("ingest", music, "--db", db2, "--json", "--ignore-tags")
    alone = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db2)}
    assert abs(alone["a.flac"]["tempo"] - 124.0) < 1.0


def test_a_new_bpm_tag_brings_a_new_analysis(tmp_path):
    """A DJ corrects a file's BPM tag: the next ingest analyses that track again at the new
    tag's level (the same track id, its segments replaced); a retag of its title alone, or a
    tag the audio does not allow, keeps what is stored."""
    from mutagen.flac import FLAC

    music, db = _library(tmp_path, 7, {"TITLE": "Fix me"})
    before = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}["a.flac"]
    assert abs(before["tempo"] - 124.0) < 1.0

    f = FLAC(music / "a.flac")
    f["BPM"] = "62"
    f.save()
    again = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert again["analysed"] == 1
    after = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}["a.flac"]
    assert after["track_id"] == before["track_id"] and abs(after["tempo"] - 62.0) < 1.0
    assert len(_tracks(db)) == 2

    def retag(field: str, value: str) -> int:
        """Set one tag of a.flac, ingest again: how many files were analysed."""
        f[field] = value
        f.save()
        return json.loads(run("ingest", music, "--db", db, "--json").stdout)["analysed"]

    assert retag("TITLE", "Fixed") == 0
    assert retag("BPM", "124") == 1
    back = {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}["a.flac"]
    assert abs(back["tempo"] - 124.0) < 1.0
    # a new key tag is weighed too (this clear A minor song keeps its key), once
    assert retag("INITIALKEY", "C") == 1
    assert retag("TITLE", "Fixed again") == 0
    assert {t["path"].rsplit("/", 1)[-1]: t for t in _tracks(db)}["a.flac"]["camelot"] == "8A"
    # a match still finds the other song's partners on the replaced segments
    matched = json.loads(run("match", music / "b.flac", "--db", db, "--json", "--top", "3").stdout)
    assert any(c for m in matched["matches"] for c in m["candidates"])


def test_a_loop_named_by_its_bpm_and_key(tmp_path):
    """Sample packs name loops by tempo and key ("Groove_62bpm_Am.flac"): with no tags, the
    name is read as tags are, followed where the audio allows it, and said to come from the
    name; a copy whose name alone says something wipes no tags."""
    music = tmp_path / "loops"
    music.mkdir()
    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=8, seed=5, sr=SR)
    path = music / "Groove_62bpm_Am.flac"
    sf.write(path, song.audio, SR, format="FLAC")
    shown = " ".join(run("analyze", path).stdout.split())
    assert "tempo 62 from the file's name, 1:2 of the 12" in shown
    db = f"sqlite:///{tmp_path / 'lib.db'}"
    run("ingest", music, "--db", db, "--json")
    (t,) = _tracks(db)
    assert abs(t["tempo"] - 62.0) < 1.0 and t["camelot"] == "8A"
    assert t["tags"] == {"bpm": 62.0, "key": "8A", "from_name": ["bpm", "key"]}
    # a name that says 100 BPM: no reading of a 124 BPM groove, said so
    other = music / "Groove_100bpm.flac"
    shutil.copy(path, other)
    shown = " ".join(run("analyze", other).stdout.split())
    assert "? the file's name says 100 BPM (not a reading the audio allows)" in shown
    # ingested, it is a duplicate of the first: the track keeps what it had
    report = json.loads(run("ingest", music, "--db", db, "--json").stdout)
    assert [d["path"].rsplit("/", 1)[-1] for d in report["duplicates"]] == ["Groove_100bpm.flac"]
    assert report["analysed"] == 0
    (t,) = _tracks(db)
    assert t["tags"]["bpm"] == 62.0 and abs(t["tempo"] - 62.0) < 1.0
