"""Confidences that flag the analysis' likely errors (issue 9: "report a confidence per
estimate"): the key's is no more than the share of the track that stays in that key (and
halved when the opening says another key), the bar lines' is
never above the confidence of the beat level and meter under them."""

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


def test_bar_lines_are_no_surer_than_the_beats_under_them():
    doubted = 0
    for seed in (0, 1, 2):
        song = hard_song("offbeat_hats", seed=seed)  # can read at half tempo, with low confidence
        a = analyze_signal(song.audio, sr=song.sr)
        est = a.estimates
        assert est["downbeat"]["confidence"] <= est["tempo"]["confidence"] + 1e-9
        assert est["downbeat"]["confidence"] <= est["meter"]["confidence"] + 1e-9
        if est["tempo"]["confidence"] < 0.5:
            # The doubt says why the bar lines are unsure, not as an unrelated second doubt.
            assert any("no surer than the tempo" in d for d in a.doubts())
            doubted += 1
    assert doubted >= 1


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
