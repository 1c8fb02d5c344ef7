"""Drumless music whose onsets have no clear pulse family (soft string attacks, vibrato, free
ornaments): the chord changes choose the beat's family (issue 9; v8 of the analysis read such
corpus pieces at unrelated tempi, 127.5 or 65.6 BPM for 120)."""

import numpy as np
import pytest

from cratedig.analysis import rhythm
from cratedig.analysis.frontend import FRONTEND_SR, N_MEL, RHYTHM_HOP, TONAL_HOP, Frontend

FPS = FRONTEND_SR / RHYTHM_HOP
TONAL_FPS = FRONTEND_SR / TONAL_HOP
DURATION = 40.0
TRIADS = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4), (2, 5, 9), (4, 7, 11)]


def _spikes(periods: tuple[float, ...], n: int) -> np.ndarray:
    env = np.zeros(n)
    for p in periods:
        k = np.round(np.arange(0.1, DURATION - 0.1, p) * FPS).astype(int)
        env[k] += 1.0
        env[np.minimum(k + 1, n - 1)] += 0.3
    return env


def _chords(beat: float, seed: int) -> np.ndarray:
    """Chroma of a new triad on every beat (one-hot pitch classes, a little noise)."""
    rng = np.random.default_rng(seed)
    n = int(DURATION * TONAL_FPS)
    chroma = 0.05 * rng.random((n, 12))
    prev = None
    for t0 in np.arange(0.0, DURATION, beat):
        choices = [t for t in TRIADS if t != prev]
        prev = choices[rng.integers(len(choices))]
        lo, hi = int(t0 * TONAL_FPS), int((t0 + beat) * TONAL_FPS)
        chroma[lo:hi, list(prev)] += 1.0
    return chroma


def _frontend(onset: np.ndarray) -> Frontend:
    n = len(onset)
    return Frontend(
        fps=FPS,
        onset=onset.astype(np.float32),
        onset_bands=np.tile(onset / 3, (3, 1)).astype(np.float32),
        band_energy=np.ones((3, n), np.float32),
        rms=np.full(n, 0.1, np.float32),
        mel_db=np.zeros((N_MEL, n), np.float32),
        tonal_fps=TONAL_FPS,
        tonal_mag=np.zeros((int(DURATION * TONAL_FPS), 2), np.float32),
        duration=DURATION,
    )


def test_unrelated_onset_pulses_have_no_family():
    onset = _spikes((0.37, 0.53), int(DURATION * FPS))
    bpms = np.geomspace(*rhythm.TATUM_BPM_RANGE, 360)
    sal = rhythm._fold_salience(rhythm._local_normalise(onset, FPS), 60 * FPS / bpms)
    assert rhythm.pulse_family_consistency(bpms, sal) < rhythm.PULSE_FAMILY_MIN
    one = _spikes((0.5, 0.25), int(DURATION * FPS))  # a beat and its eighths: one family
    sal = rhythm._fold_salience(rhythm._local_normalise(one, FPS), 60 * FPS / bpms)
    assert rhythm.pulse_family_consistency(bpms, sal) == 1.0


def test_harmonic_flux_rises_where_the_chord_changes():
    chroma = _chords(0.6, seed=0)
    flux = rhythm.harmonic_flux(_frontend(np.zeros(int(DURATION * FPS))), chroma, chroma)
    t = np.arange(len(flux)) / FPS
    # within one tonal frame (93 ms) of a chord change
    change = np.abs(((t + 0.3) % 0.6) - 0.3) < 1.0 / TONAL_FPS + 0.01
    assert flux[change].mean() > 5 * flux[~change].mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chord_changes_choose_the_family_when_onsets_have_none(seed):
    """Onsets in two unrelated pulses (0.37 s and 0.53 s), chords changing every 0.6 s: the
    tempo must be of the chords' family (100 BPM, or its octaves), not 162 or 113."""
    fe = _frontend(_spikes((0.37, 0.53), int(DURATION * FPS)))
    chroma = _chords(0.6, seed)
    grid = rhythm.track_beats(fe, harmony=chroma, chroma=chroma)
    octave = grid.tempo / 100.0 / 2.0 ** np.round(np.log2(grid.tempo / 100.0))
    assert octave == pytest.approx(1.0, abs=0.04), grid.tempo
