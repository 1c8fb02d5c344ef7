"""ITU-R BS.1770-4 loudness, computed once per track and gated per segment.

pyloudnorm filters and gates each signal it is given; cratedig needs the loudness of the whole
track *and* of every segment, so the K-weighting filter runs once over the track, mean-square
powers of the 400 ms gating blocks (75 % overlap) come from the energies of its 100 ms steps,
and each segment gates its own blocks. ``tests/analysis/test_loudness.py`` checks agreement
with pyloudnorm.

Figures are for the mono down-mix the analysis works on (a correlated stereo file measures up to
3 LU higher under BS.1770's channel sum).

References
----------
ITU-R BS.1770-4 (2015) "Algorithms to measure audio programme loudness and true-peak audio level".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import sosfilt

SILENCE_LUFS = -70.0
_BLOCK, _STEP = 0.4, 0.1  # seconds: gating block and hop (75 % overlap)


def k_weighting_sos(sr: int) -> np.ndarray:
    """K-weighting (shelf + RLB high-pass) as second-order sections for rate ``sr``.

    Coefficients follow the analog prototypes of BS.1770 (as pyloudnorm derives them), so any
    sample rate gets the same response.
    """

    def biquad(kind: str, fc: float, q: float, gain_db: float) -> np.ndarray:
        a_ = 10 ** (gain_db / 40.0)
        w0 = 2 * np.pi * fc / sr
        alpha = np.sin(w0) / (2 * q)
        cw = np.cos(w0)
        if kind == "high_shelf":
            b0 = a_ * ((a_ + 1) + (a_ - 1) * cw + 2 * np.sqrt(a_) * alpha)
            b1 = -2 * a_ * ((a_ - 1) + (a_ + 1) * cw)
            b2 = a_ * ((a_ + 1) + (a_ - 1) * cw - 2 * np.sqrt(a_) * alpha)
            a0 = (a_ + 1) - (a_ - 1) * cw + 2 * np.sqrt(a_) * alpha
            a1 = 2 * ((a_ - 1) - (a_ + 1) * cw)
            a2 = (a_ + 1) - (a_ - 1) * cw - 2 * np.sqrt(a_) * alpha
        else:  # high_pass
            b0 = (1 + cw) / 2
            b1 = -(1 + cw)
            b2 = (1 + cw) / 2
            a0 = 1 + alpha
            a1 = -2 * cw
            a2 = 1 - alpha
        return np.array([b0, b1, b2, a0, a1, a2]) / a0

    return np.vstack(
        [biquad("high_shelf", 1500.0, 1 / np.sqrt(2), 4.0), biquad("high_pass", 38.0, 0.5, 0.0)]
    )


@dataclass
class LoudnessBlocks:
    """Mean-square K-weighted power of each 400 ms block, starting every 100 ms."""

    power: np.ndarray
    step: float = _STEP
    block: float = _BLOCK

    def integrated(self, start: float = 0.0, end: float | None = None) -> float:
        """Gated integrated loudness (LUFS) of the blocks lying inside [start, end] seconds."""
        n = len(self.power)
        first = int(np.ceil(start / self.step - 1e-9))
        last = n if end is None else int(np.floor((end - self.block) / self.step + 1e-9)) + 1
        z = self.power[max(first, 0) : max(min(last, n), 0)]
        if z.size == 0:
            # Shorter than one block: measure what there is as a single block.
            lo = min(max(first, 0), n - 1) if n else 0
            z = self.power[lo : lo + 1]
        return gated_loudness(z)


def loudness_blocks(y: np.ndarray, sr: int) -> LoudnessBlocks:
    """K-weight ``y`` once and return its gating-block powers."""
    # float64 filtering (sosfilt converts a float32 signal itself: no second copy)
    filtered = sosfilt(k_weighting_sos(sr), np.asarray(y))
    block, step = int(round(_BLOCK * sr)), int(round(_STEP * sr))
    if len(filtered) < block:
        return LoudnessBlocks(
            np.array([float(np.mean(filtered**2))]) if len(filtered) else np.zeros(0)
        )
    n_blocks = (len(filtered) - block) // step + 1
    # Energy per piece of gcd(block, step) samples (the whole 100 ms step at the usual rates),
    # then each block sums its pieces: exact to rounding, where differences of a running sum
    # over millions of samples lose a quiet block's digits (and cost as much as the filter).
    piece = math.gcd(block, step)
    pieces = filtered[: (n_blocks - 1) * step + block].reshape(-1, piece)
    energy = np.einsum("ij,ij->i", pieces, pieces)
    windows = np.lib.stride_tricks.sliding_window_view(energy, block // piece)[:: step // piece]
    return LoudnessBlocks(windows.sum(axis=1) / block)


def gated_loudness(power: np.ndarray) -> float:
    """BS.1770 two-stage gating (absolute -70 LUFS, relative -10 LU) of block powers."""
    if power.size == 0:
        return SILENCE_LUFS
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10.0 * np.log10(power)
    z = power[lk > -70.0]
    if z.size == 0:
        return SILENCE_LUFS
    rel = -0.691 + 10.0 * np.log10(z.mean()) - 10.0
    with np.errstate(divide="ignore"):
        z2 = z[-0.691 + 10.0 * np.log10(z) > rel]
    if z2.size == 0:
        return SILENCE_LUFS
    return float(max(-0.691 + 10.0 * np.log10(z2.mean()), SILENCE_LUFS))
