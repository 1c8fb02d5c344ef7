"""Rhythm internals: a tempo that wanders goes through the DP tracker and still lands on beats."""

import mir_eval
import numpy as np

from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.rhythm import _fit_grid, _local_normalise, active_span, track_beats

SR = 22050


def drifting_beat(bpm0=100.0, bpm1=124.0, seconds=40.0, rng=None):
    """Kick/snare clicks whose tempo glides from bpm0 to bpm1 (a live drummer speeding up)."""
    rng = rng or np.random.default_rng(0)
    t, beats = 0.5, []
    while t < seconds - 0.5:
        beats.append(t)
        bpm = bpm0 + (bpm1 - bpm0) * t / seconds
        t += 60.0 / bpm
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    n = int(0.12 * SR)
    k = np.arange(n) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-k / 0.02)) * k) * np.exp(-k / 0.08)
    snare = rng.standard_normal(n) * np.exp(-k / 0.05) * 0.5
    for i, b in enumerate(beats):
        s = int(b * SR)
        y[s : s + n] += (kick if i % 2 == 0 else snare)[: len(y) - s]
    return y, np.array(beats)


def test_wandering_tempo_uses_dp_and_hits_beats(rng):
    y, truth = drifting_beat(rng=rng)
    fe = compute_frontend(y, sr=SR)
    onset = _local_normalise(fe.onset.astype(np.float64), fe.fps)
    start, end = active_span(fe)
    _, steady = _fit_grid(onset, 60 * fe.fps / 112.0, start, end, fe.fps)
    assert not steady  # a 24 % acceleration cannot be one grid
    harmony = np.zeros((fe.tonal_mag.shape[0], 12))
    grid = track_beats(fe, harmony=harmony)
    assert not grid.steady
    assert mir_eval.beat.f_measure(truth, grid.beats) >= 0.9
