"""Rhythm internals: a tempo that wanders goes through the DP tracker and still lands on beats;
bowed notes that swell in get their beats from where the notes start, not where the swell peaks."""

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import (
    _fit_grid,
    _grid_envelope,
    _local_normalise,
    active_span,
    track_beats,
)

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


def bowed_strings(bpm=100.0, seconds=30.0, rise=0.06, swell=0.2, seed=0):
    """Four legato string voices, no drums: each note (sawtooth-like partials, vibrato) rises
    in ``rise`` s to 30 % of its level and swells to full over the next ``swell`` s; the
    previous note of the voice releases in 30 ms as the next begins. Bass and inner voices
    move in beats and half notes, the top voice in eighths and quarters."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    n = int(seconds * SR)
    y = np.zeros(n)
    beats = np.arange(0.5, seconds - 2 * beat, beat)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    voices = [(43, 1.0, (1, 2)), (55, 0.6, (1, 2)), (64, 0.6, (1,)), (72, 0.8, (0.5, 1))]
    for base, amp, lengths in voices:
        t0 = beats[0]
        while t0 < beats[-1]:
            dur = beat * rng.choice(lengths)
            t = np.arange(int(dur * SR)) / SR
            f0 = 440.0 * 2 ** ((base + scale[rng.integers(len(scale))] - 69) / 12)
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6))
            phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SR
            tone = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0 < 5000)
            env = 0.3 * np.minimum(t / rise, 1.0) + 0.7 * np.clip((t - rise) / swell, 0, 1)
            env *= np.clip((dur - t) / 0.03, 0, 1) * rng.uniform(0.6, 1.0)
            s = int(t0 * SR)
            seg = (amp * tone * env)[: n - s]
            y[s : s + len(seg)] += seg
            t0 += dur
    return (0.3 * y / np.abs(y).max()).astype(np.float32), beats


@pytest.mark.parametrize(("rise", "seed"), [(0.06, 0), (0.06, 1), (0.08, 0), (0.08, 1)])
def test_bowed_strings_beats_on_note_starts(rise, seed):
    y, truth = bowed_strings(rise=rise, seed=seed)
    a = analyze_signal(y, sr=SR)
    assert abs(a.tempo / 100.0 - 1) < 0.02
    assert mir_eval.beat.f_measure(truth, np.asarray(a.beats)) >= 0.9
    # The log flux alone peaks where the swells are steepest: its grid misses the beats.
    fe = compute_frontend(y, sr=SR)
    fe.note_flux = None
    onsets_only = track_beats(fe, harmony=np.zeros((fe.tonal_mag.shape[0], 12)))
    assert mir_eval.beat.f_measure(truth, onsets_only.beats) < 0.5


def test_drum_onsets_keep_the_onset_envelope(rng):
    """Kick and snare mark the beat's phase clearly: the grid stays on the onset envelope."""
    y, _ = drifting_beat(bpm0=110.0, bpm1=110.0, rng=rng)
    fe = compute_frontend(y, sr=SR)
    onset = _local_normalise(fe.onset.astype(np.float64), fe.fps)
    start, end = active_span(fe)
    assert _grid_envelope(fe, onset, 60 * fe.fps / 110.0, start, end) is onset
