"""The beat network checks the tempo octave (analysis v26).

The onsets choose the beat's octave by a walk over their periodicities and a prior; where the
eighth notes are as loud as the beats, or every other beat is a rest, they may pick the wrong
octave with confidence. The beat network learnt where beats fall (``bench/beatset.py``): if it
fires between the onsets' beats as surely as on them, the beat is twice as fast; if it stays
quiet on every other beat, half as fast (:func:`cratedig.analysis.rhythm.net_octave`).
"""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.analysis import rhythm
from cratedig.analysis.pipeline import analyze_signal

from .test_backbeat import _groove

FPS = 11025 / 256


def _activation(beats_f: np.ndarray, n: int, heights: np.ndarray) -> np.ndarray:
    act = np.full(n, 0.02)
    for f, h in zip(beats_f, heights, strict=True):
        act[int(round(f))] = h
    return act


def _grid(bpm: float, n_beats: int = 32) -> np.ndarray:
    return 20 + np.arange(n_beats) * 60.0 * FPS / bpm


def test_sure_beats_between_the_beats_double_the_tempo():
    beats = _grid(90.0)
    fine = _grid(180.0, 64)
    act = _activation(fine, int(fine[-1]) + 30, np.full(len(fine), 0.9))
    assert rhythm.net_octave(act, beats, 90.0) == 2.0
    # The same activation at the right octave changes nothing.
    assert rhythm.net_octave(act, fine, 180.0) == 1.0


def test_a_quiet_every_other_beat_halves_the_tempo():
    beats = _grid(200.0)
    heights = np.where(np.arange(len(beats)) % 2 == 0, 0.8, 0.1)
    act = _activation(beats, int(beats[-1]) + 30, heights)
    assert rhythm.net_octave(act, beats, 200.0) == 0.5


def test_unsure_or_out_of_range_readings_stay():
    beats = _grid(90.0)
    fine = _grid(180.0, 64)
    n = int(fine[-1]) + 30
    # Between-beat activation as high as on the beats, but the network is unsure of both.
    assert rhythm.net_octave(_activation(fine, n, np.full(len(fine), 0.4)), beats, 90.0) == 1.0
    # Doubling 110 would leave the range (220 BPM); halving 100 would too (50 BPM).
    assert rhythm.net_octave(_activation(fine, n, np.full(len(fine), 0.9)), beats, 110.0) == 1.0
    quiet = np.where(np.arange(len(beats)) % 2 == 0, 0.8, 0.1)
    assert rhythm.net_octave(_activation(beats, n, quiet), beats, 100.0) == 1.0
    # Evenly strong beats with quiet in-betweens: the reading stands.
    assert rhythm.net_octave(_activation(beats, n, np.full(len(beats), 0.9)), beats, 90.0) == 1.0
    assert rhythm.net_octave(np.zeros(10), beats[:4], 90.0) == 1.0


SR = 22050
#: A dembow (reggaeton) bar: four kicks, the tresillo snare, eighth hats (bench/grooves.py's).
DEMBOW = {"kicks": (0.0, 1.0, 2.0, 3.0), "snares": (0.75, 1.5, 2.75, 3.5)}


@pytest.mark.parametrize("bpm", [90.0, 95.0])
def test_a_dembow_groove_is_read_at_its_tempo_not_double(monkeypatch, bpm):
    """The onsets read these reggaeton grooves at twice their tempo (the snare and hats fill
    the eighths); the network, sure of every quarter and quiet on every other eighth, halves
    it, and the onsets' reading stays as the runner-up."""
    y = _groove(bpm, DEMBOW["kicks"], "8", snares=DEMBOW["snares"])
    a = analyze_signal(y, sr=SR)
    assert a.tempo == pytest.approx(bpm, rel=0.04)
    tempo = a.estimates["tempo"]
    assert tempo["confidence"] == pytest.approx(rhythm.NET_OCTAVE_CONFIDENCE)
    assert tempo["alternative"] == pytest.approx(2 * bpm, rel=0.04)
    monkeypatch.setattr(rhythm, "NET_SURE", np.inf)
    monkeypatch.setattr(rhythm, "NET_HALVE_SURE", np.inf)
    assert analyze_signal(y, sr=SR).tempo == pytest.approx(2 * bpm, rel=0.04)
