"""Per-bar and per-segment features, all read from the shared front end (no new transforms)."""

from __future__ import annotations

import numpy as np

from cratedig.analysis.frontend import Frontend


def span_means(values: np.ndarray, fps: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean of frame rows ``values`` (n, d) over each [start, end) span in seconds -> (spans, d).

    One cumulative sum serves every span, so cost is independent of how many spans there are.
    """
    v = values if values.ndim == 2 else values[:, None]
    csum = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0, dtype=np.float64)])
    n = len(v)
    lo = np.clip(np.floor(np.asarray(starts) * fps).astype(np.int64), 0, max(n - 1, 0))
    hi = np.clip(np.ceil(np.asarray(ends) * fps).astype(np.int64), lo + 1, n)
    out = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out if values.ndim == 2 else out[:, 0]


def bar_chroma(
    chroma: np.ndarray, tonal_fps: float, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Chroma averaged per bar, each row L1-normalised (zeros for silent bars)."""
    c = span_means(chroma, tonal_fps, starts, ends)
    total = c.sum(axis=1, keepdims=True)
    return np.where(total > 1e-9, c / np.maximum(total, 1e-12), 0.0)


def rhythm_pattern(
    fe: Frontend, starts: np.ndarray, ends: np.ndarray, meter: int, lag: float = 0.0
) -> np.ndarray:
    """Onset strength on a 16th-note grid, one row per bar -> (bars, 4 * meter), max-scaled.

    Each step reads the largest onset value within +-1 frame of its grid position, so a hit
    that lands a few ms early or late still counts on its step.
    """
    steps = 4 * meter
    if len(starts) == 0:
        return np.zeros((0, steps))
    frac = np.arange(steps) / steps
    pos = starts[:, None] + (ends - starts)[:, None] * frac[None, :] + lag
    f = np.round(pos * fe.fps).astype(np.int64)
    env = fe.onset
    n = len(env)
    idx = np.clip(f[..., None] + np.arange(-1, 2), 0, n - 1)
    pat = env[idx].max(axis=-1).astype(np.float64)
    top = pat.max(axis=1, keepdims=True)
    return np.where(top > 0, pat / np.maximum(top, 1e-12), 0.0)


def spectral_balance(fe: Frontend, start: float, end: float) -> np.ndarray:
    """Fractions of energy in the low / mid / high bands over [start, end)."""
    e = span_means(fe.band_energy.T, fe.fps, np.array([start]), np.array([end]))[0]
    total = float(e.sum())
    return e / total if total > 0 else np.full(3, 1.0 / 3)


def rms_db(fe: Frontend, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """RMS level in dBFS over each span (power average of frame RMS)."""
    p = span_means((fe.rms.astype(np.float64) ** 2), fe.fps, starts, ends)
    return 10.0 * np.log10(np.maximum(p, 1e-12))
