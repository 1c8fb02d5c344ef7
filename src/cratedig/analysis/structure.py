"""Bars -> sections -> phrases, with labels a DJ can use.

Method
------
- **Bars** run from one downbeat to the next (the last bar lasts one bar period).
- **Cues per bar** (:func:`bar_cues`), all read from the shared front end: timbre (log-mel
  mean), the level of the low / mid / high bands, drum presence (onset flux in the kick band
  and in the hat band), spectral flatness, texture (each mel band's spread within the bar),
  harmony (chroma) and loudness. Every cue is in dB (chroma excepted) and
  divided by its spread within the track, floored at a fixed number of dB, so that a cue that
  never changes cannot turn its noise into boundaries.
- **Boundary novelty** per cue: the distance between the mean of the ``w`` bars before a bar
  line and the ``w`` bars after it (Foote's novelty with a box kernel, one cue at a time),
  for w = 2; the cues are weighed and summed: what plays (band levels and drums first, then
  timbre, flatness, texture, loudness) places boundaries, harmony does not (chords and melodies
  change inside a section; chroma serves repetition, groups and labels). **Repetition** adds its own cue: the same novelty on the
  time-lag view of the bar self-similarity (each bar's similarity to the bars 1, 2, ... later:
  Serrà et al.'s structure features), which changes where the pattern of what repeats does.
- **Phrase grid**: boundaries are snapped to a 4-bar grid laid from the offset (0..3 bars) whose
  lines hold the most novelty *peaks* (bar 0 unless clearly beaten: sections may start on
  bars 2, 6, 10... after a two-bar intro), peaks are picked greedily
  (sections at least 4 bars), and a boundary needs novelty above an absolute floor and a share
  of the track's strongest change, or a clear peak over its neighbouring grid lines. A boundary
  then moves one bar off its line when the novelty peaks clearly there (two-bar patterns, a
  pickup bar). Its **confidence** is the novelty mapped to [0, 1).
- **Phrases** are laid inside each section (8 bars, 4 in short tracks; 9 or 10 bars make one
  phrase, a shorter rest ends the section), so a section always starts a phrase.
- **Groups** (A, B, ...): sections whose mean cues are close share a letter.
- **Labels** from what plays: a *peak* section (loudest level, drums and low end present) is a
  ``drop`` when it follows a break or a build and a ``chorus`` when it follows a verse; a
  drumless or much quieter section inside the track is a ``break``; a section before a peak
  whose level rises (or whose drums play without the low end) is a ``build``; the first and
  the last section, unless a peak, are ``intro`` and ``outro``; the rest ``verse``.

References
----------
Foote, J. (2000) "Automatic audio segmentation using a measure of audio novelty", ICME.
Serrà, J., Müller, M., Grosche, P., Arcos, J. (2014) "Unsupervised music structure annotation
by time series structure features and segment similarity", IEEE Trans. Multimedia.
McFee, B. & Ellis, D. (2014) "Analyzing song structure with spectral clustering", ISMIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cratedig.analysis import features as feat
from cratedig.analysis.frontend import Frontend

PHRASE_BARS = 8
GRID_BARS = 4  # sections start on this grid (DJ music changes every 4/8/16 bars)
SHORT_TRACK_BARS = 24  # fewer bars than this: 4-bar phrases
MIN_SECTION_BARS = 4
# Spread floors of each cue (dB; chroma in its own units): a change below them is not a change.
_FLOOR_DB = 3.0
_CHROMA_FLOOR = 0.04
# Flatness and texture move less than levels when an instrument enters (a voice among several):
# 1 dB of spread is already a change.
_TEXTURE_FLOOR_DB = 1.0
#: Weights of the cues in the boundary novelty. A DJ's section, like the truth of the real-music
#: set (tracker modules: where the set of instruments in play changes), is a change of
#: *instrumentation*: band levels and drums weigh most, then timbre, its spread within the bar
#: (texture) and spectral flatness (noise-like drums and pads against tones). Harmony weighs
#: nothing here: chords and melodies change inside sections (it still serves repetition, groups
#: and labels). Set on the real-music dev half (``bench/sections.py --set real --split dev``:
#: pooled F@3 s 0.455 -> 0.50 with the floor below; chroma at 0.4 split sections on melody).
_WEIGHTS = {
    "timbre": 1.0,
    "bands": 1.5,
    "drums": 1.5,
    "level": 0.6,
    "chroma": 0.0,
    "flatness": 0.5,
    "texture": 0.5,
    "repetition": 0.6,
}
#: The section (and phrase) label of a loop (:func:`cratedig.analysis.rhythm.fit_loop`): one
#: thing played over and over, not an intro or a drop; the matcher repeats its bars under a
#: longer phrase, the renderer its audio (it has no energy role).
LOOP_LABEL = "loop"
#: What each section label does for the energy of a mix: a drop and a chorus are its peaks, a
#: break its low point; a build rises toward a peak; intro and outro are the mixing edges.
SECTION_ROLES: dict[str, str] = {
    "intro": "edge",
    "outro": "edge",
    "break": "low",
    "build": "rise",
    "verse": "mid",
    "chorus": "peak",
    "drop": "peak",
}
#: Drum thinning (dB, see ``_name_sections``) beyond which a section's drums are not in full
#: (a break, an intro...). Set on development songs of both generators (numpy synthesizer
#: seeds 900.., FluidSynth truth set seed 7): verses reach 7.7, breakdowns 7.8 to 31.
DRUMS_THIN_DB = 8.5
#: Combined novelty a boundary needs at least (spread-floored units), and the share of the
#: track's strongest change it needs too. Set on development data only: the real-music set's
#: dev half (tracker modules and scores, section truth from their sources; ``bench/sections.py
#: --set real --split dev``; with the weights above, pooled F@3 s 0.47 at floor 3.5, 0.50 at
#: 4.0 with share 0.3, 0.46 with share 0.45), the synthesized dev songs (seeds 900..) at F 1.0.
#: Real music changes melody and voicing inside a section; a low floor splits it there.
BOUNDARY_FLOOR = 4.0
BOUNDARY_SHARE = 0.3
#: A boundary moves off its grid line to the bar beside it (one bar either way) when the
#: novelty there is this many times the line's: a section of a tracker module or a score
#: that starts one bar off the 4-bar grid (two-bar patterns, a pickup bar). Real dev half,
#: without the contrast rule: F@3 s 0.50 -> 0.53; F@0.5 s 0.385 -> 0.36 on the estimated bar
#: grid but 0.41 -> 0.46 on the true downbeats (the estimated bar lines carry the loss).
PEAK_MOVE_RATIO = 1.3
#: The share of a bar read as its opening (``BarCues.first_half``): one and a half beats of a
#: 4/4 bar, clear of a fill on its last two beats and of the onset smear at its middle.
FIRST_PART = 0.375
#: A bar early only where its opening is this much nearer the next bar's opening than the
#: previous bar's (clearly the new section already; set on the synthesized development songs
#: with fills, seeds 900..: at 1.0 one intro whose chords change every bar still moved).
EARLY_MOVE_MARGIN = 0.8
#: A boundary that stands out from both neighbouring grid lines (``BOUNDARY_CONTRAST`` times
#: the calmer) needs only ``CONTRAST_FLOOR``: a moderate verse-to-chorus change between two
#: steady sections. Real dev half with all of the above: pooled F@3 s 0.519, F@0.5 s 0.349
#: (0.546 / 0.463 on the true downbeats); 1.5 / 2.5x (v6's) gave 0.496 / 0.336.
CONTRAST_FLOOR = 3.0
BOUNDARY_CONTRAST = 3.5
#: Novelty whose boundary reads as confidence 1 - 1/e (0.63).
CONFIDENCE_SCALE = 3.0
GRID_PHASE_MARGIN = 1.25  # another grid phase must hold this much more peak novelty than bar 0


@dataclass
class BarCues:
    """Per-bar cues for section analysis (rows are bars).

    Attributes
    ----------
    timbre : np.ndarray [shape=(bars, N_MEL)]
        Mean log-mel spectrum (dB).
    bands : np.ndarray [shape=(bars, 3)]
        Level of the low / mid / high bands (dB).
    drums : np.ndarray [shape=(bars, 2)]
        Onset flux in the kick band and the hat band (dB of the mean flux).
    chroma : np.ndarray [shape=(bars, 12)]
        L1-normalised chroma.
    level : np.ndarray [shape=(bars,)]
        RMS level (dBFS).
    flatness : np.ndarray [shape=(bars,)] or None
        Spectral flatness of the mel power spectrum (dB, <= 0): noise (drums, pads) against
        tones. None: not used.
    texture : np.ndarray [shape=(bars, N_MEL)] or None
        Spread of each mel band's level within the bar (dB): sustained against articulated
        parts. None: not used.
    first_half : BarCues or None
        The same cues over each bar's first half (no chroma, texture or nested halves): tells
        a section that starts on a bar's downbeat from a fill in its second half. None: not
        used.
    """

    timbre: np.ndarray
    bands: np.ndarray
    drums: np.ndarray
    chroma: np.ndarray
    level: np.ndarray
    flatness: np.ndarray | None = None
    texture: np.ndarray | None = None
    first_half: BarCues | None = None


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
        Boundary novelty at the start of each bar (combined cues, spread-floored units).
    confidence : list[float]
        Per section, the confidence in [0, 1) of the boundary that opens it (1.0 for the first).
    """

    bar_starts: np.ndarray
    bar_ends: np.ndarray
    phrases: list[tuple[int, int]]
    sections: list[tuple[int, int, str, str]]
    novelty: np.ndarray
    confidence: list[float]


def section_fit(a: str | None, b: str | None) -> float:
    """How well two sections layer by their roles: 1 same role, -1 a peak against a low point
    (a drop over a break drains it), 0 otherwise or when a label is unknown.

    Examples
    --------
    >>> section_fit("drop", "chorus"), section_fit("break", "drop"), section_fit("verse", None)
    (1.0, -1.0, 0.0)
    """
    ra, rb = SECTION_ROLES.get(a or ""), SECTION_ROLES.get(b or "")
    if ra is None or rb is None:
        return 0.0
    if ra == rb:
        return 1.0
    return -1.0 if {ra, rb} == {"peak", "low"} else 0.0


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


def bar_cues(
    fe: Frontend,
    bar_chroma: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    halves: bool = True,
) -> BarCues:
    """Read the per-bar section cues from the front end.

    Parameters
    ----------
    fe : Frontend
    bar_chroma : np.ndarray [shape=(bars, 12)]
    starts, ends : np.ndarray [shape=(bars,)]
        Seconds of each bar.
    halves : bool
        Also read the timbre, band, drum and level cues over each bar's first half
        (``BarCues.first_half``).

    Returns
    -------
    BarCues
    """
    timbre = feat.span_means(fe.mel_db.T, fe.fps, starts, ends)
    bands = 10.0 * np.log10(
        np.maximum(feat.span_means(fe.band_energy.T, fe.fps, starts, ends), 1e-10)
    )
    flux = feat.span_means(fe.onset_bands[[0, 2]].T, fe.fps, starts, ends)
    top = np.maximum(flux.max(axis=0, keepdims=True), 1e-12) if len(flux) else 1.0
    drums = 10.0 * np.log10(np.maximum(flux / top, 1e-3))
    level = feat.rms_db(fe, starts, ends)
    first = None
    if halves and len(starts):
        mids = starts + FIRST_PART * (ends - starts)
        half_flux = feat.span_means(fe.onset_bands[[0, 2]].T, fe.fps, starts, mids)
        first = BarCues(
            feat.span_means(fe.mel_db.T, fe.fps, starts, mids),
            10.0
            * np.log10(np.maximum(feat.span_means(fe.band_energy.T, fe.fps, starts, mids), 1e-10)),
            10.0 * np.log10(np.maximum(half_flux / top, 1e-3)),
            np.zeros((len(starts), 12)),
            feat.rms_db(fe, starts, mids),
        )
    mel_db = fe.mel_db.astype(np.float64)
    # Geometric over arithmetic mean of the mel power per frame (Wiener entropy), in dB.
    log_power = mel_db * (np.log(10.0) / 10.0)
    arith = np.log(np.maximum(np.mean(np.exp(log_power), axis=0), 1e-30))
    flat_db = (10.0 / np.log(10.0)) * (np.mean(log_power, axis=0) - arith)
    flatness = feat.span_means(flat_db[:, None], fe.fps, starts, ends)[:, 0]
    square = feat.span_means(mel_db.T**2, fe.fps, starts, ends)
    texture = np.sqrt(np.maximum(square - timbre**2, 0.0))
    return BarCues(
        timbre,
        bands,
        drums,
        np.asarray(bar_chroma, dtype=np.float64),
        level,
        flatness=flatness,
        texture=texture,
        first_half=first,
    )


def segment_structure(cues: BarCues, bar_starts: np.ndarray, bar_ends: np.ndarray) -> Structure:
    """Find sections (with confidence), lay phrases inside them, group and label the sections.

    Parameters
    ----------
    cues : BarCues
        From :func:`bar_cues`.
    bar_starts, bar_ends : np.ndarray [shape=(bars,)]
        Seconds.

    Returns
    -------
    Structure

    Examples
    --------
    >>> import numpy as np
    >>> bars = 16
    >>> quiet = np.r_[np.full(8, -30.0), np.full(8, -12.0)]
    >>> cues = BarCues(np.tile(quiet[:, None], (1, 4)), np.tile(quiet[:, None], (1, 3)),
    ...                np.tile(quiet[:, None], (1, 2)), np.full((bars, 12), 1 / 12), quiet)
    >>> s = segment_structure(cues, np.arange(bars) * 2.0, np.arange(1, bars + 1) * 2.0)
    >>> [(s.phrases[p][0], label) for p, _, label, _ in s.sections]
    [(0, 'intro'), (8, 'drop')]
    """
    n = len(bar_starts)
    if n == 0:
        return Structure(bar_starts, bar_ends, [], [], np.zeros(0), [])
    views = _views(cues)
    novelty = boundary_novelty(views)
    bounds, conf = _pick_boundaries(novelty, _half_check(cues))
    phrase_len = 4 if n < SHORT_TRACK_BARS else PHRASE_BARS
    spans = list(zip(bounds, [*bounds[1:], n], strict=True))
    phrases: list[tuple[int, int]] = []
    sections_bars: list[tuple[int, int]] = []
    for lo, hi in spans:
        p0 = len(phrases)
        phrases += _lay_phrases(lo, hi - lo, phrase_len)
        sections_bars.append((p0, len(phrases) - p0))
    groups = _group_letters(np.array([_section_vector(views, lo, hi) for lo, hi in spans]))
    labels = _name_sections(cues, spans)
    sections = [
        (p0, k, lab, grp) for (p0, k), lab, grp in zip(sections_bars, labels, groups, strict=True)
    ]
    return Structure(bar_starts, bar_ends, phrases, sections, novelty, [1.0, *conf])


def _half_check(cues: BarCues) -> tuple[np.ndarray, np.ndarray] | None:
    """Whole-bar and first-half cue vectors on one scale (each cue by its whole-bar spread,
    weighted as the novelty weighs it), or None without half-bar cues."""
    h = cues.first_half
    if h is None:
        return None
    whole, half = [], []
    for name, floor in (("timbre", _FLOOR_DB), ("bands", _FLOOR_DB), ("drums", _FLOOR_DB),
                        ("level", _FLOOR_DB)):  # fmt: skip
        x, y = getattr(cues, name), getattr(h, name)
        x, y = (x, y) if x.ndim == 2 else (x[:, None], y[:, None])
        mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), floor)
        w = np.sqrt(_WEIGHTS[name])
        whole.append(w * (x - mu) / sd)
        half.append(w * (y - mu) / sd)
    return np.hstack(whole), np.hstack(half)


def _scaled(x: np.ndarray, floor: float) -> np.ndarray:
    x = x if x.ndim == 2 else x[:, None]
    sd = np.maximum(x.std(axis=0, keepdims=True), floor)
    return (x - x.mean(axis=0, keepdims=True)) / sd


def _views(cues: BarCues) -> dict[str, np.ndarray]:
    views = {
        "timbre": _scaled(cues.timbre, _FLOOR_DB),
        "bands": _scaled(cues.bands, _FLOOR_DB),
        "drums": _scaled(cues.drums, _FLOOR_DB),
        "level": _scaled(cues.level, _FLOOR_DB),
        "chroma": _scaled(cues.chroma, _CHROMA_FLOOR),
    }
    if cues.flatness is not None:
        views["flatness"] = _scaled(cues.flatness, _TEXTURE_FLOOR_DB)
    if cues.texture is not None:
        views["texture"] = _scaled(cues.texture, _TEXTURE_FLOOR_DB)
    return views


def _mean_difference(x: np.ndarray, w: int) -> np.ndarray:
    """Per bar line b: RMS over dimensions of mean(x[b-w:b]) - mean(x[b:b+w]) (edges shortened)."""
    n, d = x.shape
    csum = np.vstack([np.zeros((1, d)), np.cumsum(x, axis=0)])
    b = np.arange(n)
    lo = np.maximum(b - w, 0)
    hi = np.minimum(b + w, n)
    left = (csum[b] - csum[lo]) / np.maximum(b - lo, 1)[:, None]
    right = (csum[hi] - csum[b]) / np.maximum(hi - b, 1)[:, None]
    out = np.sqrt(np.mean((left - right) ** 2, axis=1))
    # A side of one bar is too little evidence: weigh edge positions down.
    short = np.minimum(b - lo, hi - b)
    out *= np.minimum(short / 2.0, 1.0)
    out[0] = 0.0
    return out


def _repetition_novelty(views: dict[str, np.ndarray]) -> np.ndarray:
    """Change of the lag structure (Serrà et al. 2014) of the bar self-similarity, per bar line."""
    x = np.hstack([views["timbre"], views["chroma"], views["drums"]])
    n = len(x)
    if n < 4:
        return np.zeros(n)
    d = np.sqrt(np.mean((x[:, None, :] - x[None, :, :]) ** 2, axis=2))
    sim = np.exp(-d / max(float(np.median(d)), 1e-9))
    # Circular time-lag representation: row i holds similarity of bar i to bar i + lag.
    idx = (np.arange(n)[:, None] + np.arange(n)[None, :]) % n
    lag = sim[np.arange(n)[:, None], idx]
    return _mean_difference(lag, 2)


def boundary_novelty(views: dict[str, np.ndarray]) -> np.ndarray:
    """Combined boundary novelty at the start of each bar (0 at bar 0).

    Parameters
    ----------
    views : dict of np.ndarray [shape=(bars, d)]
        Spread-scaled cues (``timbre``, ``bands``, ``drums``, ``level``, ``chroma``; optional
        ``flatness``, ``texture``).

    Returns
    -------
    np.ndarray [shape=(bars,)]
    """
    n = len(views["level"])
    total = np.zeros(n)
    for name, x in views.items():
        if _WEIGHTS[name] > 0.0:
            # Two bars either side: four-bar windows smeared short sections into their
            # neighbours and cost precision on real music.
            total += _WEIGHTS[name] * _mean_difference(x, 2)
    total += _WEIGHTS["repetition"] * _repetition_novelty(views)
    return total


def _grid_offset(novelty: np.ndarray) -> int:
    """Phase (0..3 bars) of the section grid: the one whose lines hold the most novelty peaks.

    A peak is a local maximum of the novelty above the boundary floor; its bar is where the
    change happens, while the novelty around it is smeared over the kernel width (summing all
    of it on each phase's lines hardly tells the phases apart). A track whose sections start
    on bars 2, 6, 10... (a two-bar intro, a pickup phrase) puts its peaks on phase 2. Peaks in
    the first and last four bars do not vote (an intro's instruments entering on bar 2). Bar 0
    keeps the grid unless another phase holds clearly more peak novelty (1.25x and one floor
    more): DJ tracks start their phrases on the first downbeat.
    """
    n = len(novelty)
    if n < 3:
        return 0
    mid = novelty[1:-1]
    is_peak = (mid >= novelty[:-2]) & (mid > novelty[2:]) & (mid >= BOUNDARY_FLOOR)
    bars = np.flatnonzero(is_peak) + 1
    # Not the first and last grid cell: instruments entering one by one in an intro (a peak
    # on bar 1 or 2) and a fade-out are no phrase evidence.
    bars = bars[(bars >= GRID_BARS) & (bars <= n - GRID_BARS)]
    scores = np.bincount(bars % GRID_BARS, weights=novelty[bars], minlength=GRID_BARS)
    best = int(np.argmax(scores))
    return best if scores[best] > GRID_PHASE_MARGIN * scores[0] + BOUNDARY_FLOOR else 0


def _pick_boundaries(
    novelty: np.ndarray, halves: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[list[int], list[float]]:
    """Section starts (bar indices, 0 first) and the confidence of each later one; ``halves``
    (:func:`_half_check`) lets a boundary move a bar early where that bar's first half
    already plays the new section."""
    n = len(novelty)
    offset = _grid_offset(novelty)
    # The novelty of a grid line: the largest within one bar of it (a fill or a pickup moves
    # the peak by a bar; the section still starts on the line).
    lines = np.arange(offset, n, GRID_BARS)
    lines = lines[(lines >= MIN_SECTION_BARS // 2) & (lines <= n - MIN_SECTION_BARS // 2)]
    if lines.size == 0:
        return [0], []
    value = np.array([novelty[max(b - 1, 0) : b + 2].max() for b in lines])
    # Prefer the exact line: a neighbour's peak counts a little less.
    value = np.maximum(value * 0.85, novelty[lines])
    # A boundary needs the floor and a share of the track's strongest change, or a clear peak
    # over the calmer of its neighbouring lines above a lower floor (a moderate verse-to-chorus
    # change in a track whose drop dwarfs it; not the ripple of a section's own variations).
    strong = value >= max(BOUNDARY_FLOOR, BOUNDARY_SHARE * float(value.max()))
    padded = np.r_[np.inf, value, np.inf]  # a line at either end has one neighbour
    calm = np.minimum(padded[:-2], padded[2:])
    peak = (value >= CONTRAST_FLOOR) & (value >= BOUNDARY_CONTRAST * calm)
    chosen: dict[int, float] = {}
    for i in np.argsort(-value):
        if not (strong[i] or peak[i]):
            continue
        b = int(lines[i])
        if all(abs(b - c) >= MIN_SECTION_BARS for c in chosen):
            chosen[b] = float(value[i])
    chosen = _move_to_peaks(novelty, chosen, halves)
    bounds = sorted(b for b in chosen if b >= 2)
    # Novelty at the floor reads as 0.63, at twice the floor as 0.86.
    conf = [float(1.0 - np.exp(-chosen[b] / CONFIDENCE_SCALE)) for b in bounds]
    return [0, *bounds], conf


def _move_to_peaks(
    novelty: np.ndarray,
    chosen: dict[int, float],
    halves: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[int, float]:
    """Move each boundary to the bar beside its grid line whose novelty is clearly higher
    (``PEAK_MOVE_RATIO`` times), keeping sections at least ``MIN_SECTION_BARS - 1`` apart.

    A bar early only where that bar's first half already sounds like the new section
    (``halves``: whole-bar and first-half cue vectors): in produced music the bar before the
    line usually holds the drum fill or riser that leads into the section, which differs
    from what came before as much as the section does, and the section starts on the line,
    where a DJ counts it; a fill plays in the bar's second half, a section from its downbeat.
    Without ``halves``, never a bar early.
    """
    n = len(novelty)
    out: dict[int, float] = {}

    def early_ok(x: int) -> bool:
        if halves is None or not 1 <= x < n - 1:
            return False
        _, half = halves  # like with like: first halves against first halves
        to_new = float(np.sqrt(np.mean((half[x] - half[x + 1]) ** 2)))
        to_old = float(np.sqrt(np.mean((half[x] - half[x - 1]) ** 2)))
        return to_new < EARLY_MOVE_MARGIN * to_old

    for line in sorted(chosen):
        lo, hi = max(line - 1, 1) if early_ok(line - 1) else line, min(line + 2, n)
        b = lo + int(np.argmax(novelty[lo:hi]))
        others = [*out, *(c for c in chosen if c > line)]
        moved = novelty[b] > PEAK_MOVE_RATIO * novelty[line]
        if not (moved and all(abs(b - c) >= MIN_SECTION_BARS - 1 for c in others)):
            b = line
        out[b] = chosen[line]
    return out


def _lay_phrases(first: int, bars: int, length: int) -> list[tuple[int, int]]:
    """Phrases covering bars [first, first + bars): ``length`` bars, a short remainder joined."""
    phrases: list[tuple[int, int]] = []
    start, rest = first, bars
    while rest > 0:
        # 9 or 10 bars make one phrase rather than leaving a dangling bar or two.
        take = rest if rest <= length + 2 else length
        phrases.append((start, take))
        start += take
        rest -= take
    return phrases


def _section_vector(views: dict[str, np.ndarray], lo: int, hi: int) -> np.ndarray:
    return np.concatenate(
        [views[k][lo:hi].mean(axis=0) for k in ("timbre", "bands", "drums", "chroma")]
    )


def _group_letters(vectors: np.ndarray, threshold: float = 0.5) -> list[str]:
    """Greedy grouping: a section joins the first group whose first member is this close (RMS)."""
    firsts: list[np.ndarray] = []
    letters: list[str] = []
    for v in vectors:
        dist = [float(np.sqrt(np.mean((v - c) ** 2))) for c in firsts]
        if dist and min(dist) <= threshold:
            letters.append(chr(ord("A") + int(np.argmin(dist))))
        else:
            firsts.append(v)
            letters.append(chr(ord("A") + min(len(firsts) - 1, 25)))
    return letters


def _name_sections(cues: BarCues, ranges: list[tuple[int, int]]) -> list[str]:
    """intro / build / drop / break / verse / chorus / outro from what plays in each section."""
    m = len(ranges)
    level = np.array([cues.level[lo:hi].mean() for lo, hi in ranges])
    kick = np.array([cues.drums[lo:hi, 0].mean() for lo, hi in ranges])
    hats = np.array([cues.drums[lo:hi, 1].mean() for lo, hi in ranges])
    low = np.array([cues.bands[lo:hi, 0].mean() for lo, hi in ranges])
    if m == 1:
        return ["verse"]
    # How far the drums thin out against the busiest section: the hat band's (hats, snare,
    # cymbals) drop plus twice the kick band's (bass notes keep the kick band busy through a
    # breakdown, so a drop there weighs more). A verse that only loses its open hats and claps
    # stays well under the threshold; a breakdown without drums goes far over it.
    thinning = (float(hats.max()) - hats) + 2.0 * (float(kick.max()) - kick)
    drums_full = thinning <= DRUMS_THIN_DB
    low_on = low > float(low.max()) - 6.0
    peak = (level >= float(level.max()) - 1.5) & drums_full & low_on
    labels = ["verse"] * m
    for i, (lo, hi) in enumerate(ranges):
        if peak[i]:
            continue
        if not drums_full[i] or level[i] < float(level.max()) - 6.0:
            labels[i] = "break"
        nxt_peak = i + 1 < m and bool(peak[i + 1])
        if nxt_peak and i > 0 and hi - lo >= 2:
            half = (lo + hi) // 2
            rising = float(cues.level[half:hi].mean() - cues.level[lo:half].mean()) > 2.0
            thin_low = bool(drums_full[i]) and not bool(low_on[i])
            if rising or thin_low:
                labels[i] = "build"
    # A break needs something to break from: before the first peak, a thin section is the
    # intro going on (a kick-only or filtered opening a DJ mixes in over; until a verse
    # comes) or, right before the peak, its build-up. A track without a peak keeps its breaks.
    first_peak = int(np.argmax(peak)) if peak.any() else 0
    opening = True
    for i in range(1, first_peak):
        if labels[i] != "break":
            opening = False
        elif i + 1 == first_peak:
            labels[i] = "build"
        elif opening:
            labels[i] = "intro"
    first_non_peak = 0 if not peak[0] else None
    last_non_peak = m - 1 if not peak[-1] else None
    if first_non_peak is not None:
        labels[0] = "intro"
    if last_non_peak is not None:
        labels[-1] = "outro"
    has_verse = any(lab == "verse" and not p for lab, p in zip(labels, peak, strict=True))
    for i in range(m):
        if not peak[i]:
            continue
        prev = labels[i - 1] if i > 0 else "intro"
        if prev in ("break", "build"):
            labels[i] = "drop"
        elif prev == "verse":
            labels[i] = "chorus"
        elif prev in ("drop", "chorus"):
            labels[i] = prev
        else:
            labels[i] = "chorus" if has_verse else "drop"
    return labels
