"""Loops (``rhythm.fit_loop``): a short file cut on bar lines and sounding end to end is read
as a sampler reads it: a whole number of bars, bar 1 at its start, its tempo from its length
(sample-true, so that it repeats without drift). Other short files are left alone."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import GridHint
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


def _loop(tempo: float, bars: int, meter: int = 4, seed: int = 3) -> np.ndarray:
    """``bars`` bars cut sample-exactly from bar 2 of a song (the bar before rings in)."""
    song = synthesize_song(
        tempo=tempo, key=Key.parse("A minor"), meter=meter, bars=bars + 3, sr=SR, seed=seed
    )
    bar = meter * 60.0 / tempo
    return song.audio[int(round(bar * SR)) : int(round((1 + bars) * bar * SR))]


@pytest.mark.parametrize(("tempo", "bars", "meter"), [(124.0, 2, 4), (90.0, 4, 4), (150.0, 2, 3)])
def test_a_loop_is_whole_bars_from_its_start(tempo, bars, meter) -> None:
    y = _loop(tempo, bars, meter)
    a = analyze_signal(y, sr=SR)
    assert a.tempo == pytest.approx(tempo, rel=2e-4)  # from the length: sample-true
    assert a.time_signature[0] == meter
    assert a.estimates["grid"]["loop"] == {"bars": bars}
    assert a.downbeats[0] == 0.0 and len(a.downbeats) == bars
    np.testing.assert_allclose(np.diff(a.beats), 60.0 / tempo, rtol=2e-4)
    assert sum(s.bars for s in a.segments) == bars
    assert a.segments[0].start == 0.0


def test_eight_beats_read_in_three_four_are_two_bars_of_four() -> None:
    """Seed 3's 2-bar loop at 124 was read in 3/4 with its bar line at 0.48 s."""
    a = analyze_signal(_loop(124.0, 2), sr=SR)
    assert a.time_signature[0] == 4 and a.downbeats[0] == 0.0


def test_short_files_that_are_not_loops_are_left_alone() -> None:
    y = _loop(124.0, 2)
    silence = np.zeros(int(0.5 * SR), dtype=y.dtype)
    lead_in = analyze_signal(np.r_[silence, y], sr=SR)  # a lead-in: a clip, not a loop
    tail = analyze_signal(np.r_[y, silence], sr=SR)  # a tail
    for a in (lead_in, tail):
        assert "loop" not in (a.estimates.get("grid") or {})
    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=20, sr=SR, seed=3)
    assert "loop" not in (analyze_signal(song.audio, sr=SR).estimates.get("grid") or {})
    # sound end to end without beats: a steady tone (read as 114 BPM, one bar, before the
    # onset check), noise
    t = np.arange(int(2.1 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    for seconds in (2.0, 3.0, 4.0):
        noise = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
        assert "loop" not in (analyze_signal(noise, sr=SR).estimates.get("grid") or {})
    assert "loop" not in (analyze_signal(tone, sr=SR).estimates.get("grid") or {})


def test_a_tempo_the_user_gives_is_laid_exactly_not_fitted_to_the_length() -> None:
    a = analyze_signal(_loop(124.0, 2), sr=SR, hint=GridHint(bpm=125.0))
    assert a.tempo == pytest.approx(125.0, rel=0.02)
    assert "loop" not in a.estimates["grid"]


def test_a_loop_named_by_its_tempo_gets_the_names_level() -> None:
    """A 174 BPM loop reads at 87 from the audio alone; its name says 174: the tag's level,
    the loop's exact length."""
    y = _loop(174.0, 2)
    alone = analyze_signal(y, sr=SR)
    named = analyze_signal(y, sr=SR, tags={"bpm": 174.0, "from_name": ["bpm"]})
    assert named.tempo == pytest.approx(174.0, rel=2e-4)
    assert named.estimates["grid"]["loop"] == {"bars": 2}
    assert named.estimates["tempo"]["tags"]["source"] == "name"
    assert alone.tempo == pytest.approx(174.0, rel=2e-4) or alone.tempo == pytest.approx(
        87.0, rel=2e-4
    )


def test_a_loop_whose_name_states_its_key_has_that_key_in_its_phrase() -> None:
    """A loop is one phrase. Where its name (or tag) states a key the audio allows, the phrase
    takes it too: the matcher and the page use the phrase's key. This 2-bar cut of an A minor
    song reads G major as a file and F major from its phrase's chroma alone; named "G major"
    (9B), its phrase said F major before (a sample pack's "F#m" loop was matched as A major).
    Unnamed, the phrase keeps its own reading (on synthesized loops neither reading is the
    nearer to the song's key: ``bench/loops.py``)."""
    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=5, sr=SR, seed=3)
    bar = 4 * 60.0 / 124.0
    y = song.audio[int(round(bar * SR)) : int(round(3 * bar * SR))]
    plain = analyze_signal(y, sr=SR)
    assert plain.estimates["grid"]["loop"] == {"bars": 2}
    assert str(plain.key) == "G major" and str(plain.segments[0].key) == "F major"
    named = analyze_signal(y, sr=SR, tags={"key": "9B", "from_name": ["key"]})
    assert named.estimates["key"]["tags"]["used"]
    assert [str(g.key) for g in named.segments] == ["G major"]
    assert named.segments[0].features is not None
    assert named.segments[0].features.key_clarity == pytest.approx(named.key_clarity)


def test_analyze_says_it_is_a_loop(tmp_path) -> None:
    import soundfile as sf
    from typer.testing import CliRunner

    from cratedig.cli import app

    path = tmp_path / "Groove_Am_124bpm.flac"
    sf.write(path, _loop(124.0, 2), SR, format="FLAC")
    r = CliRunner().invoke(app, ["analyze", str(path)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    shown = " ".join(r.stdout.split())
    assert "124.00 BPM 4/4" in shown
    assert "a loop of 2 bars: tempo from its length, bar 1 at its start" in shown


def test_a_loop_is_matched_and_rendered_repeated_under_a_longer_phrase(tmp_path) -> None:
    """In a library, a 2-bar loop under a song's 4-bar phrase counts as covering all of it
    (its bars repeat: no "covers 2 of 4 bars"), and the rendered pair plays it twice."""
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from cratedig.cli import app
    from cratedig.library.db import open_library
    from cratedig.render.service import render_segments

    music = tmp_path / "music"
    music.mkdir()
    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=8, sr=SR, seed=11)
    sf.write(music / "song.flac", song.audio, SR, format="FLAC")
    sf.write(music / "Loop_124bpm.flac", _loop(124.0, 2, seed=12), SR, format="FLAC")
    db = f"sqlite:///{tmp_path / 'lib.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(music), "--db", db, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    # a producer's crate: loops apart from songs (CLI and REST)
    for kind, names in (("loops", ["Loop_124bpm.flac"]), ("songs", ["song.flac"])):
        r = runner.invoke(app, ["tracks", "--db", db, "--json", "--kind", kind])
        listed = json.loads(r.stdout)["tracks"]
        assert [t["path"].rsplit("/", 1)[-1] for t in listed] == names
        assert [t["loop_bars"] for t in listed] == ([2] if kind == "loops" else [None])
    from fastapi.testclient import TestClient

    from cratedig.service import ServiceSettings, create_app

    with TestClient(create_app(ServiceSettings(db=db, music=[music]))) as client:
        assert client.get("/api/tracks", params={"kind": "loops"}).json()["total"] == 1
        assert client.get("/api/tracks", params={"kind": "drums"}).status_code == 422
    r = runner.invoke(
        app, ["match", str(music / "song.flac"), "--db", db, "--json", "--top", "1"],
        catch_exceptions=False,
    )  # fmt: skip
    found = json.loads(r.stdout)
    pairs = [(m["query_segment"], c) for m in found["matches"] for c in m["candidates"]]
    assert pairs and all(c["label"] == "loop" for _, c in pairs)  # the only other track
    q_id, c = pairs[0]
    assert c["coverage"] == 1.0
    assert "a loop, repeated under the phrase" in c["reason"] and "covers" not in c["reason"]
    with open_library(db) as lib:
        pair = render_segments(lib, q_id, c["segment"], use_cache=False)
    partner = np.asarray(pair.partner)
    partner = partner if partner.ndim == 1 else partner.mean(axis=0)
    quarter = len(partner) // 4
    last = float(np.sqrt(np.mean(partner[-quarter:] ** 2)))
    first = float(np.sqrt(np.mean(partner[:quarter] ** 2)))
    assert last > 0.3 * first  # the loop plays to the phrase's end, not 2 bars then silence


def test_a_loop_query_meets_every_bar_of_a_partners_phrase() -> None:
    """A 2-bar Am-F loop asked for partners: a phrase playing Am-F-Am-F fits, one playing
    Am-F-Dm-E clashes on its bars 3-4, which the loop plays over too (untiled, the two tie)."""
    from cratedig.match import SegmentBatch, score_candidates

    key = Key.parse("A minor")
    verse = [("verse", 8)]
    src = synthesize_song(tempo=124.0, key=key, bars=8, sr=SR, seed=21, progression=[1, 6],
                          sections=verse)  # fmt: skip
    bar = 4 * 60.0 / 124.0
    loop = analyze_signal(src.audio[int(round(2 * bar * SR)) : int(round(4 * bar * SR))], sr=SR)
    assert [s.label for s in loop.segments] == ["loop"]
    same, other = (
        analyze_signal(
            synthesize_song(tempo=124.0, key=key, bars=8, sr=SR, seed=22, progression=p,
                            sections=verse).audio,
            sr=SR,
        )
        for p in ([1, 6, 1, 6], [1, 6, 4, 5])
    )  # fmt: skip
    sc = score_candidates(
        SegmentBatch.from_segments([loop.segments[0]]),
        SegmentBatch.from_segments([same.segments[0], other.segments[0]]),
    )
    h = sc.terms["harmonic"]
    assert h[0] > 0.75 and h[1] < 0.6 and sc.score[0] > sc.score[1] + 0.1
