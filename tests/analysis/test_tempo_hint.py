"""A tempo the user knows (``--bpm``): the grid is fitted at it, everything else is analysed.

DJs know the tempo of much of what they play (an acapella labelled "124 BPM", a track whose
octave any analysis may read either way); rekordbox and Mixxx let them set it. With a hint the
beats must sit on the song's beats at that tempo, the bar lines must still be found, and no
tempo doubt is reported."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import GridHint, check_tempo_hint
from cratedig.errors import ParameterError
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=100.0, key=Key.parse("D minor"), bars=16, sr=SR, seed=5)


def test_hint_at_the_tempo_keeps_the_grid_and_drops_the_doubt(song) -> None:
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(bpm=100.0))
    assert a.tempo == pytest.approx(100.0, rel=0.01)
    assert mir_eval.beat.f_measure(song.beats, np.asarray(a.beats)) > 0.95
    assert mir_eval.beat.f_measure(song.downbeats, np.asarray(a.downbeats)) > 0.9
    t = a.estimates["tempo"]
    assert t["confidence"] == 1.0 and t["alternative"] is None
    assert not any(d.startswith("tempo") for d in a.doubts())


def test_hint_at_double_time_is_followed(song) -> None:
    """The user's word wins: 200 BPM gives beats on every eighth note of the 100 BPM song, on
    the song's own grid (not between its beats)."""
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(bpm=200.0))
    assert a.tempo == pytest.approx(200.0, rel=0.01)
    eighths = np.sort(np.r_[song.beats, song.beats[:-1] + np.diff(song.beats) / 2])
    assert mir_eval.beat.f_measure(eighths, np.asarray(a.beats)) > 0.95
    # phrases are still whole bars of the grid it was given
    assert all(s.bars >= 1 for s in a.segments)


def test_hint_off_by_a_little_is_refined(song) -> None:
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(bpm=99.0))
    assert a.tempo == pytest.approx(100.0, abs=0.5)
    assert mir_eval.beat.f_measure(song.beats, np.asarray(a.beats)) > 0.9


def _noise(seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


@pytest.mark.parametrize(("make", "seconds"), [(_noise, 3.0), (_noise, 8.0), (_tone, 6.0)])
@pytest.mark.parametrize("bpm", [31.0, 120.0, 299.0])
def test_the_given_tempo_is_kept_where_the_onsets_say_little(make, seconds, bpm) -> None:
    """Noise and a steady tone have no tempo to refine the given one toward: a fit pulled by
    chance onsets (noise read 306 BPM for 299, a tone 282) falls back to a grid at the given
    tempo, within the 2 % a fit may move it."""
    from cratedig.analysis.rhythm import HINT_AGREES

    a = analyze_signal(make(seconds), sr=SR, hint=GridHint(bpm=bpm))
    assert abs(a.tempo / bpm - 1.0) <= HINT_AGREES + 1e-9


@pytest.mark.parametrize("bad", [10.0, 500.0, math.nan, math.inf, "fast", None])
def test_hint_outside_the_range_is_refused(bad) -> None:
    with pytest.raises(ParameterError, match="tempo"):
        check_tempo_hint(bad)  # type: ignore[arg-type]


def test_hint_puts_a_double_time_reading_back_on_its_beats(monkeypatch) -> None:
    """A dembow groove read at twice its tempo (the network's octave check switched off, as
    for music it is unsure of) is read at its tempo with the hint, beats on the kicks."""
    from cratedig.analysis import rhythm

    from .test_backbeat import _groove
    from .test_net_octave import DEMBOW
    from .test_net_octave import SR as GROOVE_SR

    monkeypatch.setattr(rhythm, "NET_SURE", np.inf)
    monkeypatch.setattr(rhythm, "NET_HALVE_SURE", np.inf)
    y = _groove(90.0, DEMBOW["kicks"], "8", snares=DEMBOW["snares"])
    assert analyze_signal(y, sr=GROOVE_SR).tempo == pytest.approx(180.0, rel=0.04)
    a = analyze_signal(y, sr=GROOVE_SR, hint=GridHint(bpm=90.0))
    assert a.tempo == pytest.approx(90.0, rel=0.01)
    beat = 60.0 / 90.0
    # every beat of the bar carries a kick (kicks on 1-4): the grid sits on them
    phase = np.mod(np.asarray(a.beats) + beat / 2, beat) - beat / 2
    assert np.median(np.abs(phase)) < 0.05
