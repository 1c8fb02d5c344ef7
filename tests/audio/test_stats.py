"""Source statistics: the streaming accumulator equals the plain per-window formulas."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.audio.stats import SPECTRUM_HOP, SPECTRUM_N, SourceStatsAccumulator


def _reference(x: np.ndarray) -> dict[str, object]:
    """Spectrum, DC and stereo sums over windows gathered by index, one block (the whole
    signal), computed the way the accumulator did before its strided gather and scipy FFT."""
    offsets = np.arange(0, len(x) - SPECTRUM_N + 1, SPECTRUM_HOP)
    frames = x[offsets[:, None] + np.arange(SPECTRUM_N)[None, :]]
    flat = frames.reshape(-1, x.shape[1])
    gram = (flat.T @ flat).astype(np.float64)
    mono = frames[:, :, 0].copy()
    for c in range(1, x.shape[1]):
        mono += frames[:, :, c]
    if x.shape[1] > 1:
        mono *= np.float32(1.0 / x.shape[1])
    spec = np.fft.rfft(mono * np.hanning(SPECTRUM_N).astype(np.float32), axis=1)
    # The power of a float32 transform: numpy's (float64 inside, rounded to complex64).
    spec = spec.astype(np.complex64)
    out: dict[str, object] = {
        "windows": len(offsets),
        "spectrum": (spec.real**2 + spec.imag**2).sum(axis=0).astype(np.float64) / len(offsets),
        "dc_sum": float(mono.sum(dtype=np.float64)),
    }
    if x.shape[1] >= 2:
        ll, rr, lr = gram[0, 0], gram[1, 1], gram[0, 1]
        out["side"] = max(float(ll + rr - 2 * lr), 0.0)
        out["mid"] = float(ll + rr + 2 * lr)
    return out


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_accumulator_equals_per_window_formulas(rng, channels):
    n = 9 * SPECTRUM_HOP + 1234
    x = (0.3 * rng.standard_normal((n, channels))).astype(np.float32)
    x[:, 0] += 0.01  # some DC
    acc = SourceStatsAccumulator(44100, channels)
    acc.update(x)
    st, ref = acc.stats, _reference(x)
    assert st.spectrum_windows == ref["windows"]
    assert np.array_equal(st.spectrum, ref["spectrum"])
    assert st.dc_sum == ref["dc_sum"]
    assert st.dc_frames == ref["windows"] * SPECTRUM_N
    if channels >= 2:
        assert st.side_energy == ref["side"] and st.mid_energy == ref["mid"]


def test_accumulator_reads_non_contiguous_blocks(rng):
    x = (0.3 * rng.standard_normal((4 * SPECTRUM_HOP, 4))).astype(np.float32)
    a, b = SourceStatsAccumulator(44100, 2), SourceStatsAccumulator(44100, 2)
    a.update(np.ascontiguousarray(x[:, ::2]))
    b.update(x[:, ::2])  # a strided view: every other channel
    assert np.array_equal(a.stats.spectrum, b.stats.spectrum)
    assert a.stats.side_energy == b.stats.side_energy
