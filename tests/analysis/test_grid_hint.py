"""What a DJ knows of a grid beyond its tempo: where a bar starts, and how many beats a bar has.

rekordbox and Mixxx let a DJ put beat 1 where it is heard ("set downbeat") and move a grid that
sits on the off-beats; ``GridHint(downbeat=, beats_per_bar=)`` does that for cratedig. The bar
lines must land where they are given, the whole grid must move when the analysis had the
off-beats, and what was given must read as certain."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import GridHint
from cratedig.errors import ParameterError
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=100.0, key=Key.parse("D minor"), bars=16, sr=SR, seed=5)


@pytest.fixture(scope="module")
def own(song):
    return analyze_signal(song.audio, sr=SR)


def test_the_song_is_read_right_without_a_hint(song, own) -> None:
    """The premise of the tests below: bar lines on the song's own downbeats."""
    assert mir_eval.beat.f_measure(song.downbeats, np.asarray(own.downbeats)) > 0.95
    assert "grid" not in own.estimates


def test_a_bar_line_on_beat_two_moves_the_bar_lines_not_the_beats(song, own) -> None:
    """The user hears beat 1 where the song has beat 2 (a pickup, a producer's own count)."""
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(downbeat=float(song.beats[1]) + 0.01))
    np.testing.assert_allclose(a.beats, own.beats)
    want = song.beats[1::4]
    assert mir_eval.beat.f_measure(want, np.asarray(a.downbeats)) > 0.95
    assert a.estimates["downbeat"]["confidence"] == 1.0
    assert a.estimates["grid"] == {"given": {"downbeat": round(float(song.beats[1]) + 0.01, 4)}}
    # phrases are cut on the bar lines given
    assert a.segments[1].start == pytest.approx(float(want[a.segments[1].bar]), abs=0.03)


def test_a_rough_time_between_beats_names_the_nearest_beat(song, own) -> None:
    """ "Bar at 5.1 s" typed from listening lands 0.45 beat after a beat where the song has no
    onset: the beats stand (the grid is not moved off the music) and beat 1 is that beat."""
    t = float(song.beats[8]) + 0.27  # 100 BPM: a beat is 0.6 s
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(downbeat=t))
    np.testing.assert_allclose(a.beats, own.beats)
    assert min(abs(np.asarray(a.downbeats) - song.beats[8])) < 0.03


def test_a_bar_line_on_the_other_phase_moves_the_grid_where_the_music_has_it(song) -> None:
    """Onsets on both phases (the song layered half a beat later): the analysis picks one,
    the user hears the other, and the whole grid moves onto it (the analysis had the
    off-beats)."""
    half = int(0.3 * SR)
    y = (song.audio + np.r_[np.zeros(half, np.float32), song.audio[:-half]]).astype(np.float32)
    # at 100 BPM (alone it hears 200: both phases) the analysis takes one phase
    mine = analyze_signal(y, sr=SR, hint=GridHint(bpm=100.0))
    t = float(mine.beats[8]) + 0.3
    a = analyze_signal(y, sr=SR, hint=GridHint(bpm=100.0, downbeat=t))
    other = np.asarray(mine.beats) + 0.3
    assert mir_eval.beat.f_measure(other[other < len(y) / SR], np.asarray(a.beats)) > 0.95
    assert min(abs(np.asarray(a.downbeats) - t)) < 1e-3
    assert np.allclose(np.diff(a.downbeats), 2.4, atol=0.03)


def test_a_bar_line_in_the_silence_before_the_music_counts_on_the_music_s_grid(song) -> None:
    """One bar of silence, then the song: a bar said to start at 0.0 s (a bar before the
    music) puts beat 1 on the song's own downbeats."""
    lead = int(2.4 * SR)
    y = np.r_[np.zeros(lead, np.float32), song.audio]
    a = analyze_signal(y, sr=SR, hint=GridHint(downbeat=0.0))
    assert mir_eval.beat.f_measure(song.downbeats + 2.4, np.asarray(a.downbeats)) > 0.95
    # on the grid already: the beats stay, to the song's end
    np.testing.assert_allclose(a.beats, analyze_signal(y, sr=SR).beats)
    # the same bar line named a beat later (1.8 s: the music's bar is then on beat 2)
    b = analyze_signal(y, sr=SR, hint=GridHint(downbeat=1.8))
    assert mir_eval.beat.f_measure(song.beats[3::4] + 2.4, np.asarray(b.downbeats)) > 0.95


def test_beats_per_bar_given_chooses_the_best_bar_phase_of_that_meter(song) -> None:
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(beats_per_bar=3))
    assert a.time_signature == (3, 4)
    assert a.estimates["meter"]["confidence"] == 1.0
    assert np.allclose(np.diff(a.downbeats), 3 * 0.6, atol=0.03)
    assert all(s.bars >= 1 for s in a.segments)


def test_tempo_and_bar_line_together(song) -> None:
    a = analyze_signal(song.audio, sr=SR, hint=GridHint(bpm=200.0, downbeat=float(song.beats[1])))
    assert a.tempo == pytest.approx(200.0, rel=0.01)
    assert min(abs(np.asarray(a.downbeats) - song.beats[1])) < 0.03
    assert np.allclose(np.diff(a.downbeats), 4 * 0.3, atol=0.03)


def test_a_bar_line_past_the_end_is_refused(song) -> None:
    with pytest.raises(ParameterError, match="past the end"):
        analyze_signal(song.audio, sr=SR, hint=GridHint(downbeat=song.duration + 5.0))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"downbeat": -1.0}, "bar line"),
        ({"downbeat": math.nan}, "bar line"),
        ({"downbeat": "soon"}, "bar line"),
        ({"beats_per_bar": 5}, "beats per bar"),
        ({"bpm": 10.0}, "tempo"),
    ],
)
def test_a_hint_out_of_range_is_refused(fields, match) -> None:
    with pytest.raises(ParameterError, match=match):
        GridHint(**fields)


def test_a_hint_round_trips_through_json() -> None:
    h = GridHint(bpm=124, downbeat=0.52, beats_per_bar=4)
    assert GridHint.from_json(h.to_json()) == h
    assert GridHint.from_json(None).empty
    assert h.describe() == "124 BPM, a bar starts at 0.52 s, 4 beats per bar"
