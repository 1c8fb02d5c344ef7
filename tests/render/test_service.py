"""`cratedig render` and `cratedig mashup` end to end: library segments, stems, files, plans.

Two synthesized songs with stems folders are ingested; renders are re-analysed against the
songs' exact truth (beats, key).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cratedig.analysis.tonal import chroma_from_frontend, estimate_key
from cratedig.cli import app
from cratedig.errors import ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.ingest import ingest
from cratedig.render.service import render_segments
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
SECTIONS = [("verse", 8), ("chorus", 8)]


@pytest.fixture(scope="module")
def songs():
    q = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=16, sr=SR, seed=51,
                        sections=SECTIONS)  # fmt: skip
    c = synthesize_song(tempo=118.0, key=Key.parse("G minor"), bars=16, sr=SR, seed=52,
                        sections=SECTIONS)  # fmt: skip
    return {"query": q, "cand": c}


@pytest.fixture(scope="module")
def library(songs, tmp_path_factory):
    """A SQLite library of the two songs, each with a stems folder."""
    root = tmp_path_factory.mktemp("renderlib")
    music = root / "music"
    for name, song in songs.items():
        d = music / f"{name}.stems"
        d.mkdir(parents=True)
        sf.write(music / f"{name}.wav", song.audio, SR)
        for stem, y in song.stems.items():
            sf.write(d / f"{stem}.wav", y, SR)
    url = f"sqlite:///{root / 'lib.db'}"
    with open_library(url) as lib:
        report = ingest(lib, music)
        assert report.analysed == 2 and report.stems == 2
        with lib.reader() as s:
            files = repo.known_files(s)
            ids = {n: files[str(music / f"{n}.wav")].track_id for n in songs}
            analyses = {n: repo.load_analysis(s, t) for n, t in ids.items()}
    return {"url": url, "ids": ids, "analyses": analyses, "music": music}


def _segment(library, name: str, min_bars: int = 4):
    a = library["analyses"][name]
    return next(s for s in a.segments if s.bars >= min_bars and s.start > 1.0)


def _onset_times(y: np.ndarray, sr: int, times: np.ndarray, radius: float = 0.04) -> np.ndarray:
    """First sample above a quarter of the local peak within ``radius`` of each time."""
    out = []
    for t in times:
        lo = max(int(round((t - radius) * sr)), 0)
        env = np.abs(y[lo : int(round((t + radius) * sr))])
        out.append((lo + int(np.flatnonzero(env > 0.25 * env.max())[0])) / sr)
    return np.array(out)


def test_rendered_pair_lands_on_the_beats_in_the_intended_key(songs, library):
    """The issue's acceptance test, through the library: drums on the beats, chords in key."""
    q_seg, c_seg = _segment(library, "query"), _segment(library, "cand")
    with open_library(library["url"]) as lib:
        drums = render_segments(lib, q_seg.id, c_seg.id, semitones=2, ratio=1.0,
                                stems=["drums"], use_cache=False)  # fmt: skip
        tonal = render_segments(lib, q_seg.id, c_seg.id, semitones=2, ratio=1.0,
                                stems=["chords", "bass"], use_cache=False)  # fmt: skip
    sr = drums.sr
    # Length exact, peaks safe.
    expected = int(round(q_seg.end * sr)) - int(round(q_seg.start * sr))
    for r in (drums, tonal):
        assert r.audio.shape[-1] == expected and r.partner is not None
        assert np.abs(r.audio).max() < 1.0 and np.abs(r.partner).max() < 1.0
    # The candidate's drum hits land on the query's true beats (all but the ragged last one).
    q = songs["query"]
    truth = q.beats[(q.beats >= q_seg.start + 1e-3) & (q.beats < q_seg.end - 0.3)] - q_seg.start
    partner = drums.partner.mean(axis=0) if drums.partner.ndim == 2 else drums.partner
    hits = _onset_times(partner, sr, truth)
    err = np.abs(hits - truth)
    assert np.max(err) < 0.020, np.round(err * 1000, 1)
    # G minor shifted up 2 semitones is A minor.
    from cratedig.analysis.frontend import compute_frontend

    y = tonal.partner.mean(axis=0) if tonal.partner.ndim == 2 else tonal.partner
    fe = compute_frontend(y.astype(np.float32), sr=sr)
    key = estimate_key(chroma_from_frontend(fe), chroma_from_frontend(fe, bass=True)).key
    assert key == Key.parse("A minor"), key


def test_render_cli_formats_cache_and_suggestion(library, tmp_path):
    q_seg, c_seg = _segment(library, "query"), _segment(library, "cand")
    runner = CliRunner()
    args = ["render", q_seg.id, c_seg.id, "--db", library["url"], "--json"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a.flac")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    info = json.loads(first.stdout)
    # No transform given: the matcher's suggestion (G minor under A minor: +2, or a
    # fifth-related shift), 1:1 at 118 -> 124 BPM.
    assert info["tempo_ratio"] == 1.0 and abs(info["semitones"]) <= 6 and not info["cached"]
    y, sr = sf.read(tmp_path / "a.flac")
    assert sr == info["sr"] and len(y) == info["samples"]
    again = runner.invoke(app, [*args, "-o", str(tmp_path / "b.mp3")], catch_exceptions=False)
    assert json.loads(again.stdout)["cached"] is True
    assert sf.info(str(tmp_path / "b.mp3")).format == "MP3"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--semitones", "13"], "within -12..12"),
        (["--semitones", "-12.5"], "within -12..12"),
        (["--ratio", "2.5"], "within 0.5..2"),
        (["--ratio", "0.4"], "within 0.5..2"),
        (["--ratio", "1.5"], "metrical ratio"),
        (["--format", "ogg"], "wav, flac or mp3"),
        (["--stems", "kazoo"], "no stem kazoo"),
    ],
)
def test_bad_render_requests(library, tmp_path, extra, message):
    q_seg, c_seg = _segment(library, "query"), _segment(library, "cand")
    r = CliRunner().invoke(
        app,
        [
            "render",
            q_seg.id,
            c_seg.id,
            "-o",
            str(tmp_path / "x.wav"),
            "--db",
            library["url"],
            *extra,
        ],  # fmt: skip
    )
    assert isinstance(r.exception, ParameterError) and message in str(r.exception)
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    ("query", "cand", "message"),
    [
        ("0123456789abcdef_0", "ID_1", "not in the library"),
        ("nonsense", "ID_1", "is not a segment id"),
        ("ID_99", "ID_1", "has segments 0.."),
    ],
)
def test_unknown_segments_are_refused(library, tmp_path, query, cand, message):
    tid = library["ids"]["query"]
    r = CliRunner().invoke(
        app,
        [
            "render",
            query.replace("ID", tid),
            cand.replace("ID", tid),
            "-o",
            str(tmp_path / "x.wav"),
            "--db",
            library["url"],
        ],  # fmt: skip
    )
    assert isinstance(r.exception, ParameterError) and message in str(r.exception)


def test_mashup_writes_the_mix_and_the_plan(songs, library, tmp_path):
    # A song not in the library: partners may come from either library track.
    q = synthesize_song(tempo=121.0, key=Key.parse("E minor"), bars=16, sr=SR, seed=53,
                        sections=SECTIONS)  # fmt: skip
    query_file = tmp_path / "new_song.wav"
    sf.write(query_file, q.audio, SR)
    out, plan_file = tmp_path / "mix.wav", tmp_path / "plan.json"
    r = CliRunner().invoke(
        app,
        [
            "mashup",
            str(query_file),
            "-o",
            str(out),
            "--plan",
            str(plan_file),
            "--db",
            library["url"],
            "--json",
            "--stems",
            "drums,chords",
        ],  # fmt: skip
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    plan = json.loads(plan_file.read_text())
    assert plan == res["plan"]
    cues = plan["cues"]
    assert cues and all(c["end"] > c["start"] for c in cues)
    assert [c["start"] for c in cues] == sorted(c["start"] for c in cues)
    with_partner = [c for c in cues if c["partner"]]
    assert with_partner, cues  # the 118 BPM candidate is within 8 %
    for a, b in zip(with_partner, with_partner[1:], strict=False):
        assert a["partner"]["segment"] != b["partner"]["segment"] or a["index"] + 1 != b["index"]
    for c in with_partner:
        p = c["partner"]
        assert p["track_id"] in library["ids"].values()
        assert abs(p["transform"]["semitones"]) <= 6
        assert set(p["transform"]) >= {"semitones", "tempo_ratio", "stretch"}
        assert 0 < c["score"] <= 1
    y, sr = sf.read(out, always_2d=True)
    assert abs(len(y) / sr - q.duration) < 0.05 and np.abs(y).max() < 1.0
    assert plan["query"]["stems"] == ["drums", "chords"]
    assert Path(plan["query"]["path"]) == query_file


def test_a_mashup_with_a_chosen_track_takes_every_partner_from_it(library, tmp_path):
    # The query is a library track; both library songs could partner it ("cand" is 118 BPM
    # against 124), but --with names one: every layered phrase is that track's.
    out, plan_file = tmp_path / "with.wav", tmp_path / "with.json"
    cand = library["ids"]["cand"]
    r = CliRunner().invoke(
        app,
        ["mashup", library["ids"]["query"], "-o", str(out), "--plan", str(plan_file),
         "--db", library["url"], "--with", str(library["music"] / "cand.wav"), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ruled_out"] == []  # the chosen track is within the rules
    cues = json.loads(plan_file.read_text())["cues"]
    partners = {c["partner"]["track_id"] for c in cues if c["partner"]}
    assert partners == {cand}
    bad = CliRunner().invoke(
        app, ["mashup", library["ids"]["query"], "-o", str(tmp_path / "x.wav"),
              "--db", library["url"], "--with", "0123abcd"],
    )  # fmt: skip
    assert isinstance(bad.exception, ParameterError) and "neither a library file" in str(
        bad.exception
    )


def test_an_offset_starts_the_partner_that_many_of_its_beats_later(library):
    """A nudge for bar lines read off: the partner keeps landing on the query's beats, and
    what plays at the query's bar 1 is the partner's music from k beats later."""
    q_seg, c_seg = _segment(library, "query"), _segment(library, "cand")
    q_track = library["analyses"]["query"]
    with open_library(library["url"]) as lib:
        r = {
            k: render_segments(
                lib,
                q_seg.id,
                c_seg.id,
                semitones=2,
                ratio=1.0,
                stems=["chords", "bass"],
                use_cache=False,
                offset_beats=k,
            )  # fmt: skip
            for k in (0, 2)
        }
        assert r[2].to_json()["offset_beats"] == 2
        first = library["analyses"]["cand"].segments[0]  # starts on the track's first beats
        with pytest.raises(ParameterError, match="outside its track's beats"):
            render_segments(lib, q_seg.id, first.id, semitones=2, ratio=1.0, offset_beats=-8)
        with pytest.raises(ParameterError, match=r"within \+-16"):
            render_segments(lib, q_seg.id, c_seg.id, offset_beats=17)
    sr = r[0].sr
    y0, y2 = (np.asarray(r[k].partner, np.float64).mean(axis=0) for k in (0, 2))
    assert y0.shape == y2.shape
    beats = np.asarray(q_track.beats)
    beats = beats[(beats >= q_seg.start - 1e-3) & (beats < q_seg.end)] - q_seg.start
    lag = int(round((beats[2] - beats[0]) * sr))  # two of the query's beats

    # Compared as magnitude spectrograms: the phase vocoder's output phases differ between
    # two renders stretched in different pieces, their spectra do not.
    hop = 512

    def spec(y):
        frames = np.lib.stride_tricks.sliding_window_view(y, 2048)[::hop] * np.hanning(2048)
        return np.log1p(np.abs(np.fft.rfft(frames, axis=1))[:, :400])

    s0, s2 = spec(y0), spec(y2)
    f = int(round(lag / hop))
    edge = sr // (2 * hop)  # leave the fades out

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))

    n = len(s0) - f - edge
    at_lag = corr(s2[edge:n], s0[edge + f : n + f])
    unshifted = corr(s2[edge:n], s0[edge:n])
    assert at_lag > 0.95 and at_lag > unshifted + 0.1, (at_lag, unshifted)


def test_a_mashup_keeps_one_level_where_its_last_phrases_play_alone(library):
    """The song after its last partnered phrase plays at the mix gain like every other
    unpartnered phrase (it came out 3 dB louder before)."""
    from cratedig.audio.decode import AudioStream
    from cratedig.render.engine import DEFAULT_MIX_GAIN_DB
    from cratedig.render.plan import Cue, MashupPlan
    from cratedig.render.service import (
        AudioLoader,
        _mix_blocks,
        _QueryCursor,
        render_mashup,
    )

    with open_library(library["url"]) as lib:
        from cratedig.match.store import sync_index

        analysis = library["analyses"]["query"]
        full = render_mashup(lib, sync_index(lib)[0], analysis, sr=SR)
        cues = full.plan.cues
        first = next(i for i, c in enumerate(cues) if c.partner is not None)
        # Only the first partnered phrase keeps its partner: the rest of the song plays alone.
        kept = [Cue(**{**vars(c), "partner": c.partner if i == first else None})
                for i, c in enumerate(cues)]  # fmt: skip
        plan = MashupPlan(**{**vars(full.plan), "cues": kept})
        path = str(library["music"] / "query.wav")
        loader = AudioLoader(lib, sr=SR, keep=3)
        query = _QueryCursor(AudioStream(path, sr=SR), analysis.track_id)
        mix = np.concatenate(list(_mix_blocks(loader, query, analysis, plan, stems=None, sr=SR,
                                              mix_gain_db=DEFAULT_MIX_GAIN_DB)), axis=1)  # fmt: skip
    song, _ = sf.read(path, always_2d=True, dtype="float32")
    tail = slice(int(round(cues[first].end * SR)) + SR, len(song) - SR)
    assert tail.stop - tail.start > 2 * SR
    level = 20 * np.log10(np.std(mix[0, tail]) / np.std(song[tail, 0]))
    assert level == pytest.approx(DEFAULT_MIX_GAIN_DB, abs=0.2)
