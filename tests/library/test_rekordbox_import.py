"""``cratedig import-rekordbox``: the beat grids a DJ set in rekordbox come into the library.

A collection exported by cratedig, then edited as a DJ would in rekordbox (one track's bar
lines moved by a beat; one track not in the library), is imported: the edited track is
analysed again on rekordbox's grid and keeps it, the untouched ones agree and are left alone,
and nothing is changed by a dry run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from cratedig import workflows
from cratedig.cli import app
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.rekordbox import location, read_grids
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

SR = 22050


def run(*args: object, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=code != 0)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else f"{result.output} {result.exception}"


@pytest.fixture
def library(tmp_path, db_url):
    music = tmp_path / "music"
    truth = {}
    for name, tempo, key, meter, seed in (
        ("a", 124.0, "A minor", 4, 51),
        ("b", 96.0, "F major", 3, 52),
    ):
        song = synthesize_song(
            tempo=tempo, key=Key.parse(key), meter=meter, bars=12, seed=seed, sr=SR
        )
        write_song(song, music / f"{name}.wav")
        truth[name] = song
    run("ingest", music, "--db", db_url, "--json")
    with open_library(db_url) as lib:
        ids = {
            r["path"].rsplit("/", 1)[-1][0]: r["track_id"] for r in workflows.list_tracks(lib)[0]
        }
    xml = tmp_path / "collection.xml"
    run("export-rekordbox", xml, "--db", db_url, "--json")
    return {"db": db_url, "music": music, "truth": truth, "xml": xml, **ids}


def edit(xml, path, **attrs) -> None:
    """Set attributes of the first TEMPO mark of ``path``'s TRACK (what a DJ does in rekordbox)."""
    tree = ET.parse(xml)
    for t in tree.getroot().iterfind("COLLECTION/TRACK"):
        if t.get("Location") == location(path):
            mark = t.find("TEMPO")
            for k, v in attrs.items():
                mark.set(k, str(v))
    tree.write(xml, encoding="UTF-8", xml_declaration=True)


def add_track(xml, path) -> None:
    tree = ET.parse(xml)
    coll = tree.getroot().find("COLLECTION")
    t = ET.SubElement(coll, "TRACK", TrackID="99", Location=location(path))
    ET.SubElement(t, "TEMPO", Inizio="0.100", Bpm="128.00", Metro="4/4", Battito="1")
    tree.write(xml, encoding="UTF-8", xml_declaration=True)


def test_grids_read_back_as_they_were_written(library):
    grids = {g.path.rsplit("/", 1)[-1]: g for g in read_grids(library["xml"])}
    a, b = grids["a.wav"], grids["b.wav"]
    assert a.bpm == pytest.approx(124.0, rel=0.002) and a.beats_per_bar == 4
    assert b.bpm == pytest.approx(96.0, rel=0.002) and b.beats_per_bar == 3
    # a bar line of the song (the first whole one inside the file)
    assert min(abs(library["truth"]["a"].downbeats - a.downbeat)) < 0.02


def test_import_takes_the_grid_a_dj_moved_and_leaves_the_rest(library, tmp_path):
    db, xml = library["db"], library["xml"]
    song = library["truth"]["a"]
    path_a = str(library["music"] / "a.wav")
    # in rekordbox, the DJ counts bar 1 from the song's second beat
    tree = ET.parse(xml)
    t = next(
        t
        for t in tree.getroot().iterfind("COLLECTION/TRACK")
        if t.get("Location") == location(path_a)
    )
    mark = t.find("TEMPO")
    edit(xml, path_a, Battito=(int(mark.get("Battito")) - 2) % 4 + 1)
    add_track(xml, tmp_path / "elsewhere.mp3")
    # the same file listed twice (a collection merged from two machines): one grid is taken
    tree = ET.parse(xml)
    coll = tree.getroot().find("COLLECTION")
    twin = next(t for t in coll.iterfind("TRACK") if t.get("Location") == location(path_a))
    coll.append(ET.fromstring(ET.tostring(twin)))
    tree.write(xml, encoding="UTF-8", xml_declaration=True)

    dry = json.loads(run("import-rekordbox", xml, "--dry-run", "--db", db, "--json"))["tracks"]
    actions = sorted((r["path"].rsplit("/", 1)[-1], r["action"]) for r in dry)
    assert actions == [("a.wav", "duplicate"), ("a.wav", "would regrid"), ("b.wav", "agrees"),
                       ("elsewhere.mp3", "not in the library")]  # fmt: skip
    with open_library(db) as lib, lib.reader() as s:
        assert repo.grid_hints(s) == {}

    rows = json.loads(run("import-rekordbox", xml, "--db", db, "--json", "--workers", 2))["tracks"]
    done = {(r["path"].rsplit("/", 1)[-1], r["action"]) for r in rows}
    assert done == {("a.wav", "regridded"), ("a.wav", "duplicate"), ("b.wav", "agrees"),
                    ("elsewhere.mp3", "not in the library")}  # fmt: skip
    with open_library(db) as lib, lib.reader() as s:
        hints = repo.grid_hints(s)
        a = repo.load_analysis(s, library["a"])
    assert set(hints) == {library["a"]} and hints[library["a"]]["beats_per_bar"] == 4
    # the bar lines now start on the song's second beat, the beats unchanged
    want = song.beats[1::4]
    assert np.median([min(abs(want - d)) for d in a.downbeats]) < 0.02
    # imported again: everything agrees now
    again = json.loads(run("import-rekordbox", xml, "--db", db, "--json"))["tracks"]
    assert {r["action"] for r in again} == {"agrees", "not in the library"}
    text = run("import-rekordbox", xml, "--db", db)
    assert "3 agrees" in text and "1 not in the library" in text


def test_import_refuses_what_is_not_a_collection(library, tmp_path):
    bad = tmp_path / "notes.xml"
    bad.write_text("<html><body>not rekordbox</body></html>")
    assert "not a rekordbox XML collection" in run(
        "import-rekordbox", bad, "--db", library["db"], code=1
    )
    broken = tmp_path / "broken.xml"
    broken.write_text("<DJ_PLAYLISTS><COLLECTION><TRACK")
    assert "not a readable rekordbox XML" in run(
        "import-rekordbox", broken, "--db", library["db"], code=1
    )
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "]><DJ_PLAYLISTS><COLLECTION>&i;</COLLECTION></DJ_PLAYLISTS>"
    )
    assert "not a readable rekordbox XML" in run(
        "import-rekordbox", bomb, "--db", library["db"], code=1
    )


def test_a_grid_that_cannot_be_laid_fails_alone(library):
    """A mark past the end of its file (a collection from another edit of the track) or with
    no readable BPM fails that track with the reason; the others are imported."""
    db, xml = library["db"], library["xml"]
    path_a, path_b = str(library["music"] / "a.wav"), str(library["music"] / "b.wav")
    edit(xml, path_a, Inizio="999.000", Battito="1")
    mark = next(
        t for t in ET.parse(xml).getroot().iterfind("COLLECTION/TRACK")
        if t.get("Location") == location(path_b)
    ).find("TEMPO")  # fmt: skip
    edit(xml, path_b, Battito=(int(mark.get("Battito")) - 2) % 3 + 1)  # a DJ's moved bar line
    tree = ET.parse(xml)
    coll = tree.getroot().find("COLLECTION")
    bad = ET.SubElement(coll, "TRACK", TrackID="98", Location=location(library["music"] / "c.wav"))
    ET.SubElement(bad, "TEMPO", Inizio="0.1", Bpm="fast", Metro="4/4", Battito="1")
    tree.write(xml, encoding="UTF-8", xml_declaration=True)
    rows = json.loads(run("import-rekordbox", xml, "--db", db, "--json"))["tracks"]
    got = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(got) == {"a.wav", "b.wav"}  # a mark without a BPM is no grid
    assert got["a.wav"]["action"] == "failed" and "past the end" in got["a.wav"]["reason"]
    assert got["b.wav"]["action"] == "regridded"
    with open_library(db) as lib, lib.reader() as s:
        assert set(repo.grid_hints(s)) == {library["b"]}


def test_a_grid_whose_tempo_moves_agrees_with_itself_bar_line_by_bar_line(tmp_path):
    """A collection cratedig exported reads back as agreeing, even for a track whose tempo
    moves (a rubato piece, a live drummer): its bar lines are compared with the marks' own bar
    lines, not with a steady bar from the first one (16 of 160 real pieces would have been
    analysed again on the way back). Bar lines a DJ moved by a beat still differ."""
    from types import SimpleNamespace

    from cratedig.library.rekordbox import tempo_marks
    from cratedig.workflows import _bars_agree

    period = np.linspace(0.5, 60 / 132, 128)  # 120 -> 132 BPM over 32 bars of 4/4
    beats = 0.3 + np.r_[0.0, np.cumsum(period[:-1])]
    downbeats = beats[::4]
    marks = tempo_marks(beats, downbeats, 4)
    assert len(marks) > 1

    def collection(shift_beats: int) -> str:
        root = ET.Element("DJ_PLAYLISTS", Version="1.0.0")
        coll = ET.SubElement(root, "COLLECTION", Entries="1")
        t = ET.SubElement(coll, "TRACK", TrackID="1", TotalTime=str(int(beats[-1]) + 1),
                          Location=location(tmp_path / "rubato.wav"))  # fmt: skip
        for m in marks:
            ET.SubElement(t, "TEMPO", Inizio=f"{m.start:.3f}", Bpm=f"{m.bpm:.2f}", Metro="4/4",
                          Battito=str((m.beat - 1 + shift_beats) % 4 + 1))  # fmt: skip
        out = tmp_path / f"c{shift_beats}.xml"
        ET.ElementTree(root).write(out, encoding="UTF-8", xml_declaration=True)
        return str(out)

    analysis = SimpleNamespace(time_signature=(4, 4), tempo=126.0, downbeats=downbeats)
    (g,) = read_grids(collection(0))
    assert g.bpm is None and g.beats_per_bar == 4  # the tempo moves: no BPM to take
    assert len(g.bar_lines) == len(downbeats)
    assert np.max(np.abs(np.asarray(g.bar_lines) - downbeats)) < 0.01
    assert _bars_agree(analysis, g.downbeat, g.bpm, g.beats_per_bar, g.bar_lines)
    # A steady bar laid from the first bar line drifts off these bar lines: that was the bug.
    assert not _bars_agree(analysis, g.downbeat, g.bpm, g.beats_per_bar)
    (moved,) = read_grids(collection(1))  # bar 1 counted a beat later in rekordbox
    assert not _bars_agree(analysis, moved.downbeat, moved.bpm, moved.beats_per_bar,
                           moved.bar_lines)  # fmt: skip
