"""Our once-per-track BS.1770 loudness agrees with pyloudnorm's reference implementation."""

import numpy as np
import pyloudnorm
import pytest

from cratedig.analysis.loudness import SILENCE_LUFS, loudness_blocks


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_matches_pyloudnorm(rng, sr):
    t = np.arange(int(12 * sr)) / sr
    # Music-like: a tone, noise, and a level change halfway (so the relative gate matters).
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    y[len(y) // 2 :] *= 0.1
    ours = loudness_blocks(y, sr).integrated()
    ref = pyloudnorm.Meter(sr).integrated_loudness(y)
    assert ours == pytest.approx(ref, abs=0.1)


def test_segment_loudness_matches_cut_signal(rng):
    sr = 22050
    y = 0.1 * rng.standard_normal(20 * sr)
    y[8 * sr :] *= 4.0
    blocks = loudness_blocks(y, sr)
    for start, end in [(0.0, 8.0), (8.0, 20.0), (2.5, 14.3)]:
        cut = y[int(start * sr) : int(end * sr)]
        ref = pyloudnorm.Meter(sr).integrated_loudness(cut)
        assert blocks.integrated(start, end) == pytest.approx(ref, abs=0.5)


def test_silence_is_floor():
    assert loudness_blocks(np.zeros(22050 * 3), 22050).integrated() == SILENCE_LUFS


def test_sine_reference_level():
    # BS.1770: a 0 dBFS 997 Hz sine on one channel reads -3.01 LUFS.
    sr = 48000
    t = np.arange(5 * sr) / sr
    assert loudness_blocks(np.sin(2 * np.pi * 997 * t), sr).integrated() == pytest.approx(
        -3.01, abs=0.05
    )
