"""Bars -> phrases -> sections.

Method
------
- **Bars** run from one downbeat to the next (the last bar lasts one bar period).
- **Bar features**: mean chroma (harmony), mean log-mel spectrum (timbre/instrumentation) and
  RMS level, each standardised, concatenated.
- **Novelty**: Foote's checkerboard kernel slid along the diagonal of the bar-level cosine
  self-similarity matrix; peaks mark changes of harmony, instrumentation or energy.
- **Phrases** are 8 bars (4 in short tracks), laid from an offset chosen so that novelty peaks
  fall on phrase starts (a 4-bar intro moves the grid by 4); an offset is only taken when it
  explains clearly more novelty than bar 0.
- **Sections** are runs of whole phrases between phrase starts with outstanding novelty, then
  grouped by similarity (letters A, B, ...) and named by position and energy.

References
----------
Foote, J. (2000) "Automatic audio segmentation using a measure of audio novelty", ICME.
McFee, B. & Ellis, D. (2014) "Analyzing song structure with spectral clustering", ISMIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHRASE_BARS = 8
SHORT_TRACK_BARS = 24  # fewer bars than this: 4-bar phrases
KERNEL_BARS = 4  # half-width of the checkerboard kernel


@dataclass
class Structure:
    """Bar/phrase/section layout in bar indices.

    Attributes
    ----------
    bar_starts, bar_ends : np.ndarray
        Seconds of each bar.
    phrases : list[tuple[int, int]]
        (first bar, number of bars) per phrase.
    sections : list[tuple[int, int, str, str]]
        (first phrase, number of phrases, label, group) per section.
    novelty : np.ndarray [shape=(bars,)]
        Boundary novelty at the start of each bar.
    """

    bar_starts: np.ndarray
    bar_ends: np.ndarray
    phrases: list[tuple[int, int]]
    sections: list[tuple[int, int, str, str]]
    novelty: np.ndarray


def bar_bounds(
    downbeats: np.ndarray, beat_period: float, meter: int, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end seconds of each bar."""
    starts = np.asarray(downbeats, dtype=np.float64)
    if starts.size == 0:
        return starts, starts
    last_end = min(starts[-1] + meter * beat_period, duration)
    ends = np.r_[starts[1:], last_end]
    return starts, ends


def segment_structure(
    bar_features: np.ndarray,
    bar_energy_db: np.ndarray,
    bar_starts: np.ndarray,
    bar_ends: np.ndarray,
) -> Structure:
    """Lay phrases and sections over bars.

    Parameters
    ----------
    bar_features : np.ndarray [shape=(bars, d)]
        Standardised per-bar features.
    bar_energy_db : np.ndarray [shape=(bars,)]
        RMS level of each bar in dB.
    bar_starts, bar_ends : np.ndarray [shape=(bars,)]
        Seconds.
    """
    n = len(bar_starts)
    if n == 0:
        return Structure(bar_starts, bar_ends, [], [], np.zeros(0))
    novelty = foote_novelty(bar_features, KERNEL_BARS)
    length, offset = _phrase_grid(novelty)
    phrases = _lay_phrases(n, length, offset)
    sections = _sections(phrases, novelty, bar_features, bar_energy_db)
    return Structure(bar_starts, bar_ends, phrases, sections, novelty)


def foote_novelty(features: np.ndarray, half: int) -> np.ndarray:
    """Checkerboard-kernel novelty of ``features`` rows (cosine similarity), one value per row.

    The value at row i measures the change between rows [i-half, i) and [i, i+half).
    """
    n = len(features)
    if n < 2:
        return np.zeros(n)
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)
    ssm = f @ f.T
    # Gaussian-tapered checkerboard kernel of size 2*half, centred between rows i-1 and i.
    idx = np.arange(-half, half) + 0.5
    taper = np.exp(-0.5 * (idx / (0.5 * half)) ** 2)
    sign = np.sign(idx)
    kernel = np.outer(sign, sign) * np.outer(taper, taper)
    pad = np.pad(ssm, half, mode="edge")
    nov = np.zeros(n)
    for i in range(1, n):
        block = pad[i : i + 2 * half, i : i + 2 * half]
        nov[i] = float(np.sum(block * kernel))
    nov = np.maximum(nov, 0.0)
    top = float(nov.max())
    return nov / top if top > 0 else nov


def _phrase_grid(novelty: np.ndarray) -> tuple[int, int]:
    """Phrase length (4 or 8 bars) and offset (bars) that put novelty peaks on phrase starts."""
    n = len(novelty)
    scores = np.array([novelty[o::4].mean() if o < n else 0.0 for o in range(4)])
    best = int(np.argmax(scores))
    # Bar 0 is where DJ tracks start their phrases; move only for clearly better evidence.
    offset = best if best != 0 and scores[best] > 1.3 * scores[0] + 0.05 else 0
    if n < SHORT_TRACK_BARS:
        return 4, offset
    # 8-bar phrases when changes come every 8 bars: the 4-bar positions in between stay calm.
    on8 = novelty[offset::8]
    mid8 = novelty[offset + 4 :: 8]
    if mid8.size and float(mid8.mean()) > 0.6 * float(on8.mean()):
        return 4, offset
    return PHRASE_BARS, offset % 8 if offset < 8 else offset


def _lay_phrases(n_bars: int, length: int, offset: int) -> list[tuple[int, int]]:
    phrases: list[tuple[int, int]] = []
    if offset:
        phrases.append((0, offset))
    start = offset
    while start < n_bars:
        bars = min(length, n_bars - start)
        phrases.append((start, bars))
        start += bars
    # A dangling bar or two at the end joins the previous phrase rather than standing alone.
    if len(phrases) >= 2 and phrases[-1][1] <= 2:
        (s0, b0), (_, b1) = phrases[-2], phrases[-1]
        phrases[-2:] = [(s0, b0 + b1)]
    return phrases


def _sections(
    phrases: list[tuple[int, int]],
    novelty: np.ndarray,
    features: np.ndarray,
    energy_db: np.ndarray,
) -> list[tuple[int, int, str, str]]:
    starts = np.array([p[0] for p in phrases])
    # Novelty at a phrase start: the largest value within one bar of it.
    nov = np.array([novelty[max(s - 1, 0) : s + 2].max() for s in starts])
    boundary = np.zeros(len(phrases), dtype=bool)
    boundary[0] = True
    if len(phrases) > 1:
        # A phrase start opens a section when its novelty stands out from the novelty *inside*
        # phrases (the background of small changes within one section).
        inside = np.ones(len(novelty), dtype=bool)
        for s in starts:
            inside[max(s - 1, 0) : s + 2] = False
        bg = novelty[inside] if inside.any() else novelty
        thresh = max(0.2, float(np.mean(bg)) + 2.0 * float(np.std(bg)))
        boundary[1:] = nov[1:] >= thresh
    first_phrases = np.flatnonzero(boundary)
    spans = [
        (int(a), int(b - a))
        for a, b in zip(first_phrases, np.r_[first_phrases[1:], len(phrases)], strict=True)
    ]
    # Per-section summaries for grouping and naming.
    bar_ranges = [(phrases[a][0], phrases[a + k - 1][0] + phrases[a + k - 1][1]) for a, k in spans]
    feats = np.array([features[lo:hi].mean(axis=0) for lo, hi in bar_ranges])
    energy = np.array([float(np.mean(energy_db[lo:hi])) for lo, hi in bar_ranges])
    groups = _group_letters(feats)
    labels = _name_sections(energy, groups)
    return [(a, k, lab, grp) for (a, k), lab, grp in zip(spans, labels, groups, strict=True)]


def _group_letters(feats: np.ndarray, threshold: float = 0.8) -> list[str]:
    """Greedy grouping by cosine similarity: a section joins the first group it resembles."""
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
    centroids: list[np.ndarray] = []
    letters: list[str] = []
    for v in unit:
        sims = [float(v @ c) for c in centroids]
        if sims and max(sims) >= threshold:
            letters.append(chr(ord("A") + int(np.argmax(sims))))
        else:
            centroids.append(v)
            letters.append(chr(ord("A") + min(len(centroids) - 1, 25)))
    return letters


def _name_sections(energy_db: np.ndarray, groups: list[str]) -> list[str]:
    n = len(energy_db)
    if n == 1:
        return ["verse"]
    median = float(np.median(energy_db))
    loudest_group = groups[int(np.argmax(energy_db))]
    labels = []
    for i, (e, g) in enumerate(zip(energy_db, groups, strict=True)):
        if i == 0 and e <= median:
            labels.append("intro")
        elif i == n - 1 and e <= median:
            labels.append("outro")
        elif g == loudest_group and e >= median:
            labels.append("chorus")
        elif e < median - 3.0:
            labels.append("break")
        else:
            labels.append("verse")
    return labels
