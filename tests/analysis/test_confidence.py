"""Confidences that flag the analysis' likely errors (issue 9: "report a confidence per
estimate"): the key's is no more than the share of the track that stays in that key (and
halved when the opening says another key), the bar lines' weighs the phase and meter
margins with the tempo's confidence (``rhythm.bar_line_confidence``)."""

import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.synth import synthesize_song
from cratedig.theory import Key

from .hard_songs import hard_song


def _song(key: str, seed: int) -> np.ndarray:
    return synthesize_song(tempo=120.0, key=Key.parse(key), bars=16, seed=seed).audio


def test_a_song_that_stays_in_its_key_is_sure_of_it():
    a = analyze_signal(_song("C major", 1), sr=22050)
    assert (a.key.name, a.key.mode) == ("C", "major")
    assert a.estimates["key"]["confidence"] >= 0.75


def test_a_song_that_changes_key_halfway_is_not_sure_of_either():
    """Half in C major, half in F# major: whichever key is named, half the track contradicts
    it, and the confidence says about that share."""
    y = np.concatenate([_song("C major", 1), _song("F# major", 2)])
    a = analyze_signal(y, sr=22050)
    assert (a.key.name, a.key.mode) in {("C", "major"), ("F#", "major")}
    assert 0.35 <= a.estimates["key"]["confidence"] <= 0.65
    assert any(note.startswith("key ") for note in a.doubts(below=0.7))


def test_bar_lines_doubt_names_the_unsure_tempo_under_them():
    import copy
    from dataclasses import replace

    song = hard_song("offbeat_hats", seed=0)  # read at half tempo, with low confidence
    a = analyze_signal(song.audio, sr=song.sr)
    assert a.estimates["tempo"]["confidence"] < 0.5
    est = copy.deepcopy(a.estimates)
    est["downbeat"]["confidence"] = 0.3
    notes = replace(a, estimates=est).doubts()
    assert any("bar lines" in d and "the tempo under them is unsure too" in d for d in notes)
    # On a sure tempo and meter the bar lines' doubt stands alone.
    est["tempo"]["confidence"] = est["meter"]["confidence"] = 0.9
    notes = replace(a, estimates=est).doubts()
    assert [d for d in notes if d.startswith("bar lines")] == [
        "bar lines (downbeats) uncertain: confidence 0.30"
    ]


def test_bar_line_confidence_grows_with_each_margin_and_the_tempo_confidence():
    from cratedig.analysis.rhythm import DOWNBEAT_MARGIN_CAP, bar_line_confidence

    base = bar_line_confidence(1.0, 1.0, 0.5)
    assert 0.0 < base < 1.0
    assert bar_line_confidence(3.0, 1.0, 0.5) > base
    assert bar_line_confidence(1.0, 3.0, 0.5) > base
    assert bar_line_confidence(1.0, 1.0, 1.0) > base
    # A tie between two phases under a moderate meter margin reads as doubtful.
    assert bar_line_confidence(0.0, 2.0, 1.0) < 0.6
    # Wide margins on a sure tempo are sure; margins past the cap add nothing.
    top = bar_line_confidence(DOWNBEAT_MARGIN_CAP, DOWNBEAT_MARGIN_CAP, 1.0)
    assert top > 0.95
    assert bar_line_confidence(50.0, 50.0, 1.0) == pytest.approx(top)


@pytest.mark.parametrize("name", ["aeolian", "tresillo"])
def test_clear_patterns_stay_confident(name):
    song = hard_song(name, seed=3)
    est = analyze_signal(song.audio, sr=song.sr).estimates
    assert est["downbeat"]["confidence"] >= 0.5
    assert est["key"]["confidence"] >= 0.5


def test_the_key_is_no_surer_than_its_weaker_cue_and_doubts_an_opening_in_another_key():
    from cratedig.analysis.pipeline import OPENING_DISAGREE_FACTOR, key_confidence

    assert key_confidence(0.9, 0.4, opening_agrees=True) == pytest.approx(0.4)
    assert key_confidence(0.3, 1.0, opening_agrees=True) == pytest.approx(0.3)
    assert key_confidence(1.0, 1.0, opening_agrees=False) == pytest.approx(OPENING_DISAGREE_FACTOR)


def test_a_piece_that_leaves_its_opening_key_for_good_is_not_sure():
    """G major for 4 bars, then D major for 7 to the end (see test_hard_patterns): named G
    from its opening, but most of it is in D, and the confidence says so."""
    from .hard_songs import modulating_piece

    song = modulating_piece(home_bars=4, away_bars=7, seed=0)
    a = analyze_signal(song.audio, sr=song.sr)
    assert str(a.key) == "G major"
    assert a.estimates["key"]["confidence"] < 0.5
    assert any(note.startswith("key ") for note in a.doubts(below=0.5))
