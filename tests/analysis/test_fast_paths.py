"""The analysis' fast paths give the results of the plain formulas they replace.

Each reference below is the straightforward computation the module used before it was made
faster; the fast path must match it bit for bit, or (loudness, whose running sum was replaced)
to floating-point rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from cratedig.analysis import frontend, loudness, quality, rhythm, tonal
from cratedig.analysis.frontend import compute_frontend
from cratedig.synth import synthesize_song
from cratedig.theory import Key


def _fold_reference(onset: np.ndarray, periods: np.ndarray, bins: int = 24) -> np.ndarray:
    n = len(onset)
    idx = np.arange(n, dtype=np.float64)
    out = np.empty(len(periods))
    for i, period in enumerate(np.asarray(periods, dtype=np.float64)):
        phase = np.minimum((np.mod(idx, period) * (bins / period)).astype(np.int64), bins - 1)
        h = np.bincount(phase, weights=onset, minlength=bins) / np.maximum(
            np.bincount(phase, minlength=bins), 1
        )
        h3 = (h + np.roll(h, 1) + np.roll(h, -1)) / 3.0
        out[i] = h3.max() - float(onset.mean())
    return out


@pytest.mark.parametrize("n", [1, 127, 128, 129, 5000, 20_011])
def test_frame_phases_equal_numpy_mod(rng, n):
    periods = np.r_[rng.uniform(0.3, 600.0, 40), np.arange(1.0, 30.0), 2.0 / 3.0, 64.0, 1e-3]
    ref = np.mod(np.arange(n, dtype=np.float64)[None, :], periods[:, None])
    got = rhythm.frame_phases(n, periods[:, None])
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)  # bit for bit, zeros included
    assert not np.signbit(got).any()


@pytest.mark.parametrize("bins", [24, 48])
def test_fold_salience_equals_the_per_period_formula(rng, bins):
    for n in (3, 200, 4001):
        onset = rng.random(n) * (rng.random(n) > 0.4)
        # Generic tempo periods, integer periods (phases exactly on bin edges) and periods
        # longer than the envelope.
        periods = np.r_[60 * 43.07 / np.geomspace(45, 330, 37), np.arange(2.0, 40.0, 3.0), 5e3]
        assert np.array_equal(
            rhythm._fold_salience(onset, periods, bins), _fold_reference(onset, periods, bins)
        )
    assert rhythm._fold_salience(np.zeros(0), np.array([10.0])).tolist() == [0.0]


def _blocks_reference(y: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import sosfilt

    filtered = sosfilt(loudness.k_weighting_sos(sr), y.astype(np.float64))
    block, step = int(round(0.4 * sr)), int(round(0.1 * sr))
    starts = np.arange(0, len(filtered) - block + 1, step)
    # Exact block sums (math.fsum) rather than a running sum: the reference the fast path must
    # meet to rounding.
    import math

    sq = filtered * filtered
    return np.array([math.fsum(sq[s : s + block]) / block for s in starts])


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 8001, 8003])
def test_loudness_blocks_equal_exact_block_sums(rng, sr):
    y = (0.2 * rng.standard_normal(int(3.7 * sr))).astype(np.float32)
    y[len(y) // 2 :] *= 1e-3  # a quiet half: a running sum loses those blocks' digits
    got = loudness.loudness_blocks(y, sr).power
    ref = _blocks_reference(y, sr)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_silence_share_equals_the_one_pass_formula(rng):
    y = (0.05 * rng.standard_normal(22050 * 7 + 123)).astype(np.float32)
    y[22050:60000] *= 1e-4
    y[100_000:100_800] = 0.0
    n = len(y) // 2048
    frames = y[: n * 2048].reshape(n, 2048).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    for db in (-60.0, -30.0, -27.0):
        assert quality.silence_share(y, threshold_db=db) == float(np.mean(rms < 10 ** (db / 20)))


@pytest.fixture(scope="module")
def song_frontend():
    song = synthesize_song(tempo=123.0, key=Key.parse("E minor"), bars=12, seed=5)
    return compute_frontend(song.audio, sr=song.sr)


def test_chroma_equals_the_whole_spectrum_formula(song_frontend):
    fe = song_frontend
    mag = fe.tonal_mag
    sustained = np.minimum(np.minimum(mag[:-2], mag[1:-1]), mag[2:])
    sustained = np.vstack([sustained[:1], sustained, sustained[-1:]])
    for tuning in (0.0, 13.37):
        cents = round(tuning, 1)
        ref = sustained @ tonal._chroma_map(cents, tonal.CHROMA_FMIN, tonal.CHROMA_FMAX)
        ref_bass = sustained @ tonal._chroma_map(cents, tonal.BASS_FMIN, tonal.BASS_FMAX)
        chroma, bass = tonal.chroma_pair(fe, tuning=tuning)
        assert np.array_equal(chroma, ref) and np.array_equal(bass, ref_bass)
        assert np.array_equal(tonal.chroma_from_frontend(fe, tuning=tuning), ref)
        assert np.array_equal(tonal.chroma_from_frontend(fe, tuning=tuning, bass=True), ref_bass)


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 256), (4096, 1024)])
def test_stft_mag_equals_one_transform_of_all_frames(rng, n_fft, hop):
    x = rng.standard_normal(11025 * 13).astype(np.float32)
    xp = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop]
    ref = np.abs(scipy.fft.rfft(frames * frontend._hann(n_fft), axis=1, workers=1))
    assert np.array_equal(frontend._stft_mag(x, n_fft, hop), ref)


def test_profile_matrix_is_built_once_and_read_only():
    profiles = tonal.KEY_PROFILES[tonal.DEFAULT_PROFILE]
    mat = tonal._profile_matrix(tonal.DEFAULT_PROFILE, profiles)
    assert mat is tonal._profile_matrix(tonal.DEFAULT_PROFILE, profiles)
    assert not mat.flags.writeable
    major = np.asarray(profiles[0])
    row = np.roll(major, 7)
    assert np.allclose(mat[7], (row - row.mean()) / row.std())
    assert tonal.estimate_key(np.roll(major, 7)).key.name == "G"
