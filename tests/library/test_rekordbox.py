"""The library as a rekordbox XML collection: grids, keys and section cues a player can read."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cratedig.cli.library import register
from cratedig.compute import InProcessExecutor
from cratedig.errors import OutputError
from cratedig.library.db import open_library
from cratedig.library.ingest import ingest
from cratedig.library.rekordbox import (
    MAJOR_NAMES,
    MINOR_NAMES,
    TempoMark,
    grid_beats,
    location,
    path_of_location,
    tempo_marks,
    tonality,
    xml_text,
)
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

# rekordbox's own key names (its XML's Tonality values), by pitch class.
REKORDBOX_KEYS = {
    "major": "C Db D Eb E F F# G Ab A Bb B".split(),
    "minor": "Cm Dbm Dm Ebm Em Fm F#m Gm Abm Am Bbm Bm".split(),
}


def test_tonality_uses_rekordbox_names_for_all_24_keys():
    for mode, names in REKORDBOX_KEYS.items():
        assert [tonality(Key(t, mode)) for t in range(12)] == names
    assert len(set(MAJOR_NAMES) | set(MINOR_NAMES)) == 24


@pytest.mark.parametrize(
    "path", ["/music/DJ sets/Café del Mar #2.flac", "/a/100% b&c;d?.mp3", "/x/[live] 'set'.wav"]
)
def test_location_is_a_percent_encoded_file_url_that_round_trips(path):
    url = location(path)
    assert url.startswith("file://localhost/")
    assert not set(" #?[]'") & set(url)  # nothing a URL parser would cut or choke on
    assert path_of_location(url) == path


def test_a_file_name_that_is_not_utf8_still_names_its_file_and_the_xml_stays_valid():
    raw = b"/music/b\xe9ton \x01mix.wav"  # Latin-1 bytes and a control character
    path = os.fsdecode(raw)
    url = location(path)
    assert url == "file://localhost/music/b%E9ton%20%01mix.wav"
    assert os.fsencode(path_of_location(url)) == raw
    assert xml_text(Path(path).stem) == "b\ufffdton mix"
    ET.fromstring(f'<T Name="{xml_text(Path(path).stem)}"/>'.encode())  # parses


def test_a_steady_grid_with_a_pickup_beat_is_one_mark_on_its_beat_number():
    beats = 0.3 + 0.5 * np.arange(64)  # 120 BPM, the first beat is the last of a bar
    downbeats = beats[1::4]
    marks = tempo_marks(beats, downbeats, 4)
    assert marks == [TempoMark(start=pytest.approx(0.3), bpm=120.0, beat=4)]
    times, numbers = grid_beats(marks, end=beats[-1] + 0.1, beats_per_bar=4)
    np.testing.assert_allclose(times, beats, atol=1e-9)
    np.testing.assert_allclose(times[numbers == 1], downbeats, atol=1e-9)


def test_a_moving_tempo_is_re_anchored_on_bar_lines_and_stays_within_tolerance():
    # 120 -> 132 BPM over 32 bars of 4/4: no single rounded BPM fits.
    period = np.linspace(0.5, 60 / 132, 128)
    beats = 1.0 + np.r_[0.0, np.cumsum(period[:-1])]
    downbeats = beats[::4]
    marks = tempo_marks(beats, downbeats, 4, tolerance=0.005)
    assert 1 < len(marks) < len(downbeats)
    assert all(m.beat == 1 for m in marks)
    # each mark sits on a bar line (where its fitted line puts it)
    assert all(np.min(np.abs(downbeats - m.start)) <= 0.005 for m in marks)
    times, numbers = grid_beats(marks, end=beats[-1] + 0.05, beats_per_bar=4)
    assert len(times) == len(beats)
    assert np.max(np.abs(times - beats)) <= 0.005 + 1e-9
    np.testing.assert_array_equal(numbers, np.arange(len(beats)) % 4 + 1)


def test_rubato_inside_a_bar_gets_a_mark_per_beat_and_every_beat_is_kept():
    rng = np.random.default_rng(7)
    beats = 0.5 + np.cumsum(rng.uniform(0.45, 0.75, 48))  # a free, live-played pulse
    marks = tempo_marks(beats, beats[::3], 3)
    times, numbers = grid_beats(marks, end=beats[-1] + 0.05, beats_per_bar=3)
    assert len(times) == len(beats) and np.max(np.abs(times - beats)) <= 0.007
    np.testing.assert_array_equal(numbers, np.arange(len(beats)) % 3 + 1)


def test_a_first_beat_clamped_to_zero_is_not_fitted_and_the_grid_starts_inside_the_file():
    beats = -0.012 + 0.5 * np.arange(40)
    beats[0] = 0.0  # the analysis clamps a beat a few ms before the start to 0
    marks = tempo_marks(beats, beats[::4], 4)
    assert len(marks) == 1 and marks[0].beat == 2 and marks[0].bpm == 120.0
    assert marks[0].start == pytest.approx(0.488, abs=1e-6)


def test_fewer_than_two_beats_leave_the_grid_to_the_player():
    assert tempo_marks(np.array([1.0]), np.array([1.0]), 4) == []


# -- end to end: songs with known truth, ingested, exported, read back ------------------------
SONGS = [  # (tempo, key, meter, lead_in, file name)
    (124.0, "A minor", 4, 0.6, "DJ tools/Café #1.flac"),
    (132.0, "Eb major", 4, 1.1, "100% vinyl/b side.wav"),
    (150.0, "F# minor", 3, 0.0, "waltz.mp3"),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("rekordbox")
    music = root / "music"
    truth = {}
    for i, (tempo, key, meter, lead_in, name) in enumerate(SONGS):
        song = synthesize_song(
            tempo=tempo,
            key=Key.parse(key),
            meter=meter,
            bars=32,
            lead_in=lead_in,
            seed=30 + i,
            sections=[("intro", 8), ("drop", 8), ("break", 8), ("drop", 8)],
        )
        path = music / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_song(song, path)
        if path.suffix == ".flac":  # tags, which rekordbox shows as its columns
            from cratedig.audio.tags import write_tags

            tags = {"artist": "Café Crew", "title": "Nuit & Jour", "genre": "House", "year": "2025"}
            write_tags(path, tags)
        truth[str(path)] = song
    url = f"sqlite:///{root / 'lib.db'}"
    with open_library(url) as lib:
        report = ingest(lib, music, executor=InProcessExecutor())
    assert report.analysed == len(SONGS), report
    return url, truth, root


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    register(app)
    return app


def _tracks(xml_path: Path) -> dict[str, ET.Element]:
    root = ET.parse(xml_path).getroot()
    assert root.tag == "DJ_PLAYLISTS" and root.get("Version") == "1.0.0"
    coll = root.find("COLLECTION")
    tracks = coll.findall("TRACK")
    assert coll.get("Entries") == str(len(tracks))
    return {path_of_location(t.get("Location")): t for t in tracks}


def test_export_puts_the_true_grid_key_and_sections_into_a_rekordbox_collection(
    app, library, tmp_path
):
    url, truth, _ = library
    out = tmp_path / "rekordbox.xml"
    result = CliRunner().invoke(
        app, ["export-rekordbox", str(out), "--db", url, "--hot-cues", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == report["tracks"] == len(SONGS) and report["missing"] == []

    tracks = _tracks(out)
    assert set(tracks) == set(truth)  # every Location names its file
    for path, song in truth.items():
        t = tracks[path]
        if path.endswith(".flac"):  # named by its tags
            assert (t.get("Name"), t.get("Artist"), t.get("Genre"), t.get("Year")) == (
                "Nuit & Jour", "Café Crew", "House", "2025"
            )  # fmt: skip
        else:  # by its file name
            assert t.get("Name") == Path(path).stem and t.get("Artist") is None
        assert t.get("Tonality") == tonality(song.key)
        assert float(t.get("AverageBpm")) == pytest.approx(song.tempo, rel=0.01)
        assert int(t.get("TotalTime")) == round(song.duration)
        assert int(t.get("Size")) == Path(path).stat().st_size
        # The beat grid as a player lays it out hits the true beats and bar lines.
        tempos = t.findall("TEMPO")
        assert tempos and all(x.get("Metro") == f"{song.meter}/4" for x in tempos)
        marks = [
            TempoMark(float(x.get("Inizio")), float(x.get("Bpm")), int(x.get("Battito")))
            for x in tempos
        ]
        times, numbers = grid_beats(marks, end=song.beats[-1] + 0.1, beats_per_bar=song.meter)
        assert mir_eval.beat.f_measure(song.beats, times) >= 0.95, path
        assert mir_eval.beat.f_measure(song.downbeats, times[numbers == 1]) >= 0.95, path
        # A memory cue opens each true section, named by its role; hot cues A-C too.
        cues = t.findall("POSITION_MARK")
        memory = [c for c in cues if c.get("Num") == "-1"]
        hot = [c for c in cues if c.get("Num") != "-1"]
        assert len(memory) == len(song.sections) and len(hot) == len(song.sections)
        for c, (start, _, label) in zip(memory, song.sections, strict=True):
            assert abs(float(c.get("Start")) - start) < 0.05, (path, c.attrib, start)
            assert c.get("Name").split()[0] == label and c.get("Type") == "0"
        assert [int(c.get("Num")) for c in hot] == list(range(len(song.sections)))
        assert all(c.get("Red") and c.get("Green") and c.get("Blue") for c in hot)


def test_playlists_hold_every_track_and_group_them_by_camelot_key(app, library, tmp_path):
    url, truth, _ = library
    out = tmp_path / "rb.xml"
    result = CliRunner().invoke(app, ["export-rekordbox", str(out), "--db", url])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "3 files of 3 tracks" in said and "Imported Library: this file" in said
    root = ET.parse(out).getroot()
    ids = {t.get("TrackID"): t for t in root.find("COLLECTION").findall("TRACK")}
    top = root.find("PLAYLISTS/NODE")
    assert top.get("Name") == "ROOT" and top.get("Type") == "0"
    ours = top.find("NODE[@Name='cratedig']")
    everything = ours.find("NODE[@Name='all tracks']")
    assert everything.get("Type") == "1" and everything.get("KeyType") == "0"
    assert sorted(x.get("Key") for x in everything.findall("TRACK")) == sorted(ids)
    by_key = ours.find("NODE[@Name='by key']")
    for node in by_key.findall("NODE"):
        camelot, name = node.get("Name").split()
        members = [ids[x.get("Key")] for x in node.findall("TRACK")]
        assert members and all(m.get("Tonality") == name for m in members)
        assert all(camelot in m.get("Comments") for m in members)
        assert node.get("Entries") == str(len(members))


def test_an_independent_reader_of_the_format_reads_the_export(app, library, tmp_path):
    """pyrekordbox (its XML module follows Pioneer's format list) reads what we wrote."""
    from pyrekordbox import rbxml

    url, truth, _ = library
    out = tmp_path / "rb.xml"
    assert CliRunner().invoke(app, ["export-rekordbox", str(out), "--db", url]).exit_code == 0
    xml = rbxml.RekordboxXml(out)
    tracks = xml.get_tracks()
    assert len(tracks) == len(SONGS)
    for t in tracks:
        assert t["Tonality"] in MAJOR_NAMES + MINOR_NAMES and t["AverageBpm"] > 0
        assert t.tempos and all(1 <= x.Battito <= 4 for x in t.tempos)
        assert [m.Type for m in t.marks] == ["cue"] * len(t.marks) and len(t.marks) == 4
    assert xml.get_playlist("cratedig", "all tracks").get_tracks() == [1, 2, 3]


def test_a_file_gone_from_disk_is_left_out_and_named(app, library, tmp_path):
    url, truth, root = library
    gone = Path(sorted(truth)[0])
    moved = root / "moved.bin"
    gone.rename(moved)
    try:
        out = tmp_path / "rb.xml"
        result = CliRunner().invoke(app, ["export-rekordbox", str(out), "--db", url, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["missing"] == [str(gone)] and report["files"] == len(SONGS) - 1
        assert str(gone) not in _tracks(out)
    finally:
        moved.rename(gone)


def test_a_bad_output_path_is_refused_before_any_work(app, library, tmp_path):
    url, _, _ = library
    for bad, says in (
        (tmp_path, f"give a file name (e.g. {tmp_path}/rekordbox.xml)"),
        (tmp_path / "nowhere" / "rb.xml", "does not exist"),
    ):
        result = CliRunner().invoke(app, ["export-rekordbox", str(bad), "--db", url])
        assert isinstance(result.exception, OutputError) and says in str(result.exception)
        assert not (tmp_path / "nowhere").exists()


def test_standard_output_gets_the_xml_and_nothing_else(app, library):
    url, _, _ = library
    result = CliRunner().invoke(app, ["export-rekordbox", "-", "--db", url])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.stdout.encode())
    assert len(root.find("COLLECTION").findall("TRACK")) == len(SONGS)


def test_the_export_reads_the_same_from_sqlite_and_postgresql(app, library, db_url, tmp_path):
    _, truth, root = library
    with open_library(db_url) as lib:
        assert ingest(lib, root / "music", executor=InProcessExecutor()).analysed == len(SONGS)
    out = tmp_path / "rb.xml"
    result = CliRunner().invoke(app, ["export-rekordbox", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    tracks = _tracks(out)
    assert set(tracks) == set(truth)
    assert {t.get("Tonality") for t in tracks.values()} == {tonality(s.key) for s in truth.values()}
