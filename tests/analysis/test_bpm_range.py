"""A DJ's BPM range (``rhythm.fold_into_range``), as every DJ program offers it: the beat's
level is often a matter of taste (hip-hop at 90 or 180, drum and bass at 87 or 174), and the
range says whose. A tempo outside the range is read at its octave inside it where the audio
holds that level, the audio's own reading kept as the runner-up; only octaves move; a tempo the
user gives, and a BPM tag that was followed, win over the range."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import GridHint, check_bpm_range
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


def _range(a):
    return a.estimates["tempo"].get("range")


def test_no_range_no_record(own) -> None:
    assert own.tempo == pytest.approx(100.0, rel=0.01)
    assert _range(own) is None


def test_a_tempo_inside_the_range_stays_and_says_so(song, own) -> None:
    a = analyze_signal(song.audio, sr=SR, bpm_range=(70.0, 140.0))
    np.testing.assert_allclose(a.beats, own.beats)
    assert _range(a) == {
        "range": [70.0, 140.0],
        "bpm": round(own.tempo, 2),
        "used": True,
        "heard": round(own.tempo, 2),
    }


def test_a_tempo_below_the_range_is_read_at_double(song, own) -> None:
    a = analyze_signal(song.audio, sr=SR, bpm_range=(150.0, 210.0))
    assert a.tempo == pytest.approx(200.0, rel=0.02)
    # the song's beats and the midpoints between them
    assert mir_eval.beat.f_measure(np.sort(np.r_[song.beats, song.beats[:-1] + 0.3]), a.beats) > 0.9
    t = a.estimates["tempo"]
    assert t["range"]["used"] and t["range"]["heard"] == round(own.tempo, 2)
    assert t["alternative"] == pytest.approx(own.tempo, rel=0.001)  # the audio's own reading
    assert t["relation"] == "1:2"


def test_a_tempo_above_the_range_is_read_at_half_on_the_songs_beats(song) -> None:
    a = analyze_signal(song.audio, sr=SR, bpm_range=(40.0, 75.0))
    assert a.tempo == pytest.approx(50.0, rel=0.02)
    f = max(mir_eval.beat.f_measure(song.beats[k::2], np.asarray(a.beats)) for k in (0, 1))
    assert f > 0.9
    assert _range(a)["used"] and a.estimates["tempo"]["relation"] == "2:1"


def test_a_range_no_octave_of_the_tempo_falls_in_leaves_it(song, own) -> None:
    a = analyze_signal(song.audio, sr=SR, bpm_range=(120.0, 180.0))  # 50, 100, 200: none
    np.testing.assert_allclose(a.beats, own.beats)
    assert _range(a) == {
        "range": [120.0, 180.0],
        "bpm": round(own.tempo, 2),
        "used": False,
        "heard": round(own.tempo, 2),
    }


def test_the_users_tempo_and_a_followed_tag_win_over_the_range(song) -> None:
    a = analyze_signal(song.audio, sr=SR, bpm_range=(40.0, 75.0), hint=GridHint(bpm=100.0))
    assert a.tempo == pytest.approx(100.0, rel=0.01) and _range(a) is None
    b = analyze_signal(song.audio, sr=SR, bpm_range=(40.0, 75.0), tags={"bpm": 100.0})
    assert b.tempo == pytest.approx(100.0, rel=0.01) and _range(b) is None
    # a tag the audio does not allow is not followed: the range decides
    c = analyze_signal(song.audio, sr=SR, bpm_range=(40.0, 75.0), tags={"bpm": 113.0})
    assert c.tempo == pytest.approx(50.0, rel=0.02) and _range(c)["used"]


def test_a_bar_line_the_user_gives_is_laid_on_the_folded_grid(song) -> None:
    bar = float(song.downbeats[2])
    a = analyze_signal(song.audio, sr=SR, bpm_range=(40.0, 75.0), hint=GridHint(downbeat=bar))
    assert a.tempo == pytest.approx(50.0, rel=0.02)
    assert np.min(np.abs(np.asarray(a.downbeats) - bar)) < 0.05


@pytest.mark.parametrize(
    ("lo", "hi"), [(140.0, 70.0), (100.0, 100.0), (10.0, 100.0), (60.0, 500.0)]
)
def test_a_range_that_is_no_range_is_refused(lo, hi) -> None:
    with pytest.raises(ParameterError):
        check_bpm_range(lo, hi)


def test_an_octave_on_the_ranges_edge_is_inside_it(song, own) -> None:
    """A DJ's 150-200 holds a 100 BPM track read at 200.0004: the ends allow the 2 % a grid's
    tempo settles within (found on a produced track, Endgame: Singularity's *Aberrations*)."""
    a = analyze_signal(song.audio, sr=SR, bpm_range=(150.0, 2 * own.tempo * 0.9995))
    assert a.tempo == pytest.approx(200.0, rel=0.02) and _range(a)["used"]
