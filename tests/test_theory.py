"""Theory: pitch classes, keys, Camelot codes, relations, MIREX scores, tempo ratios."""

import mir_eval
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cratedig.errors import ParameterError
from cratedig.theory import (
    PITCH_CLASSES,
    Key,
    camelot_code,
    from_camelot,
    key_relation,
    mirex_key_score,
    pitch_class,
    shared_notes,
    speed_to_semitones,
    tempo_stretch,
)

keys = st.builds(Key, st.integers(0, 11), st.sampled_from(["major", "minor"]))


@pytest.mark.parametrize(
    ("text", "camelot"),
    [
        ("A minor", "8A"),
        ("C major", "8B"),
        ("G", "9B"),
        ("E minor", "9A"),
        ("F", "7B"),
        ("D minor", "7A"),
        ("F#", "2B"),
        ("D#m", "2A"),
        ("Abm", "1A"),
        ("B", "1B"),
        ("Db", "3B"),
        ("Bbm", "3A"),
        ("c#", "12A"),
        ("E", "12B"),
    ],
)
def test_camelot_table(text, camelot):
    # Mixed In Key's wheel, read off its published chart.
    assert Key.parse(text).camelot == camelot
    assert from_camelot(camelot) == Key.parse(text)


@given(keys)
def test_camelot_round_trip(key):
    assert from_camelot(camelot_code(key)) == key
    assert Key.parse(key.camelot) == key
    assert Key.from_index(key.index) == key


@given(keys, st.integers(-24, 24))
def test_transpose_by_fifth_moves_one_step_on_wheel(key, k):
    n0 = int(key.camelot[:-1])
    n1 = int(key.transpose(7).camelot[:-1])
    assert (n1 - n0) % 12 == 1
    assert key.transpose(k).transpose(-k) == key


@given(keys)
def test_relative_shares_all_notes(key):
    assert shared_notes(key, key.relative) == 7
    assert key.relative.relative == key
    assert key.relative.camelot[:-1] == key.camelot[:-1]
    assert key_relation(key, key.relative) == "relative"


@given(keys)
def test_fifths_share_six_notes(key):
    assert shared_notes(key, key.transpose(7)) == 6
    assert key_relation(key, key.transpose(7)) == "fifth"
    assert key_relation(key, key.transpose(5)) == "fifth"
    assert key_relation(key, key.transpose(6)) == "tritone"


def test_relations_named():
    am = Key.parse("8A")
    assert key_relation(am, am) == "same"
    assert key_relation(am, Key.parse("9B")) == "diagonal"
    assert key_relation(am, Key.parse("A major")) == "parallel"
    assert key_relation(am, Key.parse("10A")) == "energy_boost"
    assert key_relation(am, Key.parse("2A")) == "tritone"


@given(keys, keys)
def test_mirex_score_agrees_with_mir_eval(ref, est):
    expected = mir_eval.key.weighted_score(f"{ref.name} {ref.mode}", f"{est.name} {est.mode}")
    assert mirex_key_score(ref, est) == pytest.approx(expected)


def test_parse_spellings_and_errors():
    assert pitch_class("Db") == pitch_class("C#") == 1
    assert Key.parse("Gb major") == Key.parse("F#")
    assert Key.parse("a").mode == "minor"
    assert str(Key.parse("bbm")) == "A# minor"
    assert len(PITCH_CLASSES) == 12
    for bad in ("H", "13A", "X minor", ""):
        with pytest.raises(ParameterError):
            Key.parse(bad)
    with pytest.raises(ParameterError):
        Key(12, "major")
    with pytest.raises(ParameterError):
        Key(0, "dorian")  # type: ignore[arg-type]


def test_tempo_helpers():
    assert tempo_stretch(126, 128) == pytest.approx(128 / 126 - 1)
    assert tempo_stretch(64, 128, ratio=2.0) == pytest.approx(0.0)
    assert speed_to_semitones(2 ** (1 / 12)) == pytest.approx(1.0)
    assert speed_to_semitones(1.0595) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ParameterError):
        tempo_stretch(0, 120)
