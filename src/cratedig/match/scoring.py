"""Mashability of one query segment with many candidate segments, vectorised.

For every candidate the scorer finds the cheapest transform that makes it fit the query, then
reports each term in [0, 1] separately and one weighted score:

- **tempo**: metrical ratio 1:1, 2:1 or 1:2 (candidate beat = 1, 2 or 1/2 query beats) with
  the smallest time-stretch; a stretch beyond ``max_stretch`` rejects the candidate. The term is
  :func:`cratedig.theory.stretch_score` of the stretch (times ``HALF_DOUBLE_SCORE`` off 1:1).
- **shift**: :func:`cratedig.theory.shift_score` of the candidate's pitch shift, chosen within
  ``+-max_shift`` semitones as the one that maximises the combined score.
- **key**: the relation of the shifted candidate key to the query key
  (:func:`cratedig.theory.key_relation`, scored by ``RELATION_SCORE``), trusted as far as the
  less clear of the two labels: ``1 - c * (1 - RELATION_SCORE)`` with ``c`` the smaller
  key clarity. Short phrases often carry an ambiguous label (a 4-bar phrase on the IV chord
  reads as the subdominant key); the harmonic term judges the notes themselves.
- **harmonic**: bar-by-bar (or beat-by-beat, see ``SegmentBatch.units_per_bar``) Pearson
  correlation of beat-synchronous chroma with the candidate rotated by that shift and its rows
  mapped through the tempo ratio, averaged over rows where both sound, clipped to [0, 1] (the
  "mashability" of AutoMashUpper, Davies et al. 2014). Beat rows see misalignments within a
  bar (half a bar late) that bar averages blur.
- **rhythm**: cosine of the two 16th-grid onset patterns (candidate pattern mapped through the
  tempo ratio): high when the layers accent the same grid positions. 0 across meters (3/4
  against 4/4).
- **spectral**: ``1 - sum_b w_b * min(q_b, c_b)`` over low / mid / high energy fractions with
  ``w = (1.0, 0.6, 0.2)``: two bass-heavy layers (or two mid-heavy, vocal-range layers) overlap
  and clash; a vocal over an instrumental does not.
- **energy**: ``1 - |e_q - e_c|``, continuity of relative energy.
- **transposition**: ``1 - (peak - h)`` with ``h`` the harmonic term at the chosen shift and
  ``peak`` its largest value over all twelve rotations (allowed or not). The key rule calls a
  fifth "fine", so the same accompaniment transposed by a fourth scores almost like the right
  one on the key term, and a lead's chroma correlates with the chords a fourth away nearly as
  well as with its own (they share a triad note per bar). What separates them is *where* the
  notes agree best: the identical progression peaks at the suggested shift; the transposed copy
  peaks at a rotation the shift limit does not reach, and this term says by how much.

The combined score is ``tempo * shift * transposition * sum_t(w_t * term_t) / sum_t(w_t)``
over the content terms (harmonic, key, rhythm, spectral, energy; :data:`DEFAULT_WEIGHTS`): the
transform costs multiply, so that a perfect fit reached by a 1-semitone shift ranks below the
same fit reached without one, whatever the noise in the other terms.

**Coverage** scales it next (:func:`coverage_fit`): ``x (COVERAGE_FLOOR + (1 - COVERAGE_FLOOR)
* coverage)``, with ``coverage`` the share of the query's sounding bars under which the
candidate (through the tempo ratio) sounds. A 3-bar tail of a track under an 8-bar phrase
leaves the phrase bare for five bars; over the few bars it has, its chords may fit as well as a
whole phrase's do, and with less evidence such fragments used to win by chance (issue 10:
measured on real lead / accompaniment stems, ``bench/retrieval.py --set real --split dev``,
and on the synthesized stems bench). A coverage under 1 is named in the reason ("covers 3 of
8 bars").

**Section roles** then scale it (:func:`section_factor`): ``x (1 + SECTION_WEIGHT)`` when the
two phrases play the same energy role (a drop under a drop or a chorus, a break under a
break), ``x (1 - SECTION_WEIGHT)`` for a peak against a low point (a break under a drop drains
the drop), unchanged otherwise or when either label is unknown; clipped to 1. It is a factor
beside the terms, not a term: the learned ranker's features stay as they were trained.

References
----------
Davies, M. E. P., Hamel, P., Yoshii, K., Goto, M. (2014). AutoMashUpper: Automatic Creation of
Multi-Song Music Mashups. IEEE/ACM TASLP 22(12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from cratedig.analysis.structure import LOOP_LABEL, SECTION_ROLES, section_fit
from cratedig.errors import ParameterError
from cratedig.match.batch import RHYTHM_STEPS, SegmentBatch
from cratedig.theory import (
    RELATION_SCORE,
    RELATIONS,
    TEMPO_RATIOS,
    Key,
    key_relation,
    shift_score,
    stretch_score,
)

#: Default weights of the content terms (normalised by their sum). Harmonic fit on the notes
#: actually played carries the most weight (it is what the ear judges first); the key label is
#: a prior on it; rhythm and spectral balance decide how cleanly two layers sit together;
#: energy continuity matters least for layering. Replaced by the learned ranker once trained.
DEFAULT_WEIGHTS: dict[str, float] = {
    "harmonic": 0.45,
    "key": 0.15,
    "rhythm": 0.15,
    "spectral": 0.15,
    "energy": 0.10,
}
#: Costs of the transform, which multiply the content score: a stretched or transposed layer
#: sounds worse however well it fits (Rubber Band artefacts; MUSIC.md "What real DJs do").
TRANSFORM_TERMS: tuple[str, ...] = ("tempo", "shift", "transposition")
TERMS: tuple[str, ...] = (*DEFAULT_WEIGHTS, *TRANSFORM_TERMS)

#: Half/double time is common in DJ sets (MUSIC.md) but a slightly weaker fit than 1:1.
HALF_DOUBLE_SCORE = 0.9
#: Spectral overlap weights per band: bass on bass clashes most, highs hardly.
BAND_CLASH_WEIGHTS = np.array([1.0, 0.6, 0.2])

#: Score factor of a candidate that sounds under none of the query's bars; one that sounds under
#: all of them keeps its score (:func:`coverage_factor`). Chosen on the real stems' dev split
#: (``bench/retrieval.py --set real --split dev``): floors 0.5-0.85 all gave recall@10 0.63
#: against 0.60 without the factor; 0.7 sits in the middle of that plateau.
COVERAGE_FLOOR = 0.7
#: A coverage under this is named in the reason ("covers 5 of 8 bars").
COVERAGE_SAY = 0.95

DEFAULT_MAX_SHIFT = 3
DEFAULT_MAX_STRETCH = 0.08

#: Score floors of the fit labels, calibrated with ``bench/retrieval.py`` (12 synthesized songs,
#: 72 lead + drums phrase queries against every accompaniment phrase and decoy): 95 % of the
#: true partners score >= 0.52 (FIT_FLOOR, rounded down) and 90 % of the best *other-song*
#: phrases score < 0.60 (FIT_GOOD). A query phrase whose best candidate stays under FIT_FLOOR has
#: "no partner that fits well" (the issue-10 case: a top pair whose own reasons say "chords
#: disagree; two bass-heavy layers").
FIT_FLOOR = 0.50
FIT_GOOD = 0.60
FIT_LABELS: tuple[str, ...] = ("poor", "fair", "good")
#: Thresholds of the reasons (:func:`explain`): chords agree / disagree bar by bar (harmonic
#: term), two layers crowd the same band (spectral term).
#: Key clarity under which a phrase's key label is named unclear in the reason (the key term
#: then waives most of the relation's cost; see :func:`key_fit`).
KEY_UNCLEAR = 0.5
HARMONIC_AGREE = 0.6
HARMONIC_DISAGREE = 0.3
SPECTRAL_CLASH = 0.4


def fit_of(score: float, *, harmonic: float | None = None, spectral: float | None = None) -> str:
    """Label of a (possibly doubt-weighted) score: "good", "fair" or "poor" (under the floor).

    The label never contradicts the reasons :func:`explain` gives for the same terms: a pair
    whose chords disagree (``harmonic < HARMONIC_DISAGREE``) is at best "fair", and "poor" when
    its layers also clash (``spectral < SPECTRAL_CLASH``), whatever the other terms add up to.
    Measured on real lead / accompaniment stems (``bench/retrieval.py --set real --split
    dev``), 16 of 219 lead phrases had a first suggestion shown as a fair or good fit whose
    reasons said "chords disagree" (one of them also "two bass-heavy layers": the issue-10
    case), rhythm, key and energy carrying its score over the floor.

    Examples
    --------
    >>> fit_of(0.9), fit_of(0.1), fit_of(0.65, harmonic=0.25), fit_of(0.55, harmonic=0.25, spectral=0.2)
    ('good', 'poor', 'fair', 'poor')
    """
    label = "good" if score >= FIT_GOOD else "fair" if score >= FIT_FLOOR else "poor"
    if harmonic is not None and harmonic < HARMONIC_DISAGREE:
        if spectral is not None and spectral < SPECTRAL_CLASH:
            return "poor"
        if label == "good":
            return "fair"
    return label


@dataclass
class MatchScores:
    """Per-candidate transform and terms for one query segment.

    Attributes
    ----------
    score : np.ndarray [shape=(n,)]
        ``tempo * shift * weighted mean of the content terms``, in [0, 1]; 0 where ``valid``
        is False.
    valid : np.ndarray [shape=(n,), dtype=bool]
        False where no tempo ratio fits within ``max_stretch``.
    tempo_ratio : np.ndarray [shape=(n,)]
        1.0, 2.0 (candidate beat = two query beats: it plays as half-time) or 0.5.
    stretch : np.ndarray [shape=(n,)]
        Relative speed change of the candidate (0.016 = +1.6 %).
    semitones : np.ndarray [shape=(n,), dtype=int64]
        Pitch shift to apply to the candidate.
    relation : np.ndarray [shape=(n,), dtype=int64]
        Index into :data:`cratedig.theory.RELATIONS` of the shifted candidate key to the query's.
    terms : dict of str to np.ndarray [shape=(n,)]
        Every term of :data:`TERMS`, each in [0, 1].
    section : np.ndarray [shape=(n,)]
        Section-role fit of each candidate with the query (:func:`section_role_fit`: 1, 0 or
        -1), already applied to ``score`` through :func:`section_factor`. Zeros if not given.
    coverage : np.ndarray [shape=(n,)]
        Share of the query's sounding bars the candidate sounds under (:func:`coverage_fit`),
        already applied to ``score`` through :func:`coverage_factor`. Ones if not given.
    query_bars : int
        The query's sounding bars (the denominator of ``coverage``).
    """

    score: np.ndarray
    valid: np.ndarray
    tempo_ratio: np.ndarray
    stretch: np.ndarray
    semitones: np.ndarray
    relation: np.ndarray
    terms: dict[str, np.ndarray]
    section: np.ndarray = field(default_factory=lambda: np.zeros(0))
    coverage: np.ndarray = field(default_factory=lambda: np.zeros(0))
    query_bars: int = 0

    def __post_init__(self) -> None:
        if len(self.section) != len(self.score):
            self.section = np.zeros(len(self.score))
        if len(self.coverage) != len(self.score):
            self.coverage = np.ones(len(self.score))

    def __len__(self) -> int:
        return len(self.score)

    def relation_name(self, i: int) -> str:
        """Name of candidate ``i``'s key relation ("same", "relative", "fifth"...)."""
        return RELATIONS[int(self.relation[i])]

    def ranking(self, k: int | None = None) -> np.ndarray:
        """Candidate rows, best first (valid before rejected); the first ``k`` if given."""
        order = np.lexsort((-self.score, ~self.valid))
        return order if k is None else order[:k]


# ---------------------------------------------------------------------------------------------
# Tables derived once from theory.py


@lru_cache(maxsize=1)
def relation_table() -> np.ndarray:
    """(24, 24) index into RELATIONS of key index b relative to key index a."""
    keys = [Key.from_index(i) for i in range(24)]
    return np.array(
        [[RELATIONS.index(key_relation(a, b)) for b in keys] for a in keys], dtype=np.int64
    )


def _shifts(max_shift: int) -> np.ndarray:
    """0, +1, -1, +2, -2, ...: argmax ties resolve to the smallest shift."""
    out = [0]
    for s in range(1, max_shift + 1):
        out += [s, -s]
    return np.array(out, dtype=np.int64)


def transpose_key_index(key_index: np.ndarray | int, semitones: np.ndarray | int) -> np.ndarray:
    """Key indices (0..23) after pitch shifts; broadcasts."""
    key_index = np.asarray(key_index)
    minor = key_index >= 12
    return (key_index % 12 + semitones) % 12 + 12 * minor


# Bar and step maps per tempo ratio, in TEMPO_RATIOS order (1, 2, 0.5). Under ratio 2 one
# candidate bar spans two query bars; under 0.5 two candidate bars fit in one query bar.
_RATIOS = np.array(TEMPO_RATIOS)


def _bar_maps(bars: int) -> tuple[np.ndarray, np.ndarray]:
    b = np.arange(bars)
    a = np.stack([b, b // 2, 2 * b])
    return a, np.stack([b, b // 2, 2 * b + 1])


@lru_cache(maxsize=4)
def _step_maps(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ratio, two candidate steps read for each query step; index ``RHYTHM_STEPS`` is 0.

    Under 2:1 query step ``k`` falls on candidate half-step ``k / 2`` of either half of the
    candidate bar (odd ``k`` fall between candidate steps: nothing there); under 1:2 on
    candidate step ``2k`` (mod the bar).
    """
    k = np.arange(RHYTHM_STEPS)
    zero = RHYTHM_STEPS
    half = np.where(k % 2 == 0, k // 2, zero)
    second = np.where(k % 2 == 0, steps // 2 + k // 2, zero)
    ia = np.stack([k, half, (2 * k) % steps])
    ib = np.stack([k, second, (2 * k) % steps])
    # Steps past a 3/4 bar read nothing; the query's padding there is zero anyway.
    ia[:, steps:] = zero
    ib[:, steps:] = zero
    return ia, ib


# ---------------------------------------------------------------------------------------------
# Terms


def tempo_fit(
    query_bpm: float, candidate_bpm: np.ndarray, *, max_stretch: float = DEFAULT_MAX_STRETCH
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best metrical ratio and stretch of each candidate to the query tempo.

    Parameters
    ----------
    query_bpm : float > 0
    candidate_bpm : np.ndarray [shape=(n,)]
    max_stretch : float >= 0
        Largest accepted relative speed change (0.08 = 8 %).

    Returns
    -------
    ratio_index : np.ndarray [shape=(n,), dtype=int64]
        Index into :data:`cratedig.theory.TEMPO_RATIOS`.
    stretch : np.ndarray [shape=(n,)]
        Speed change of the candidate, as :func:`cratedig.theory.tempo_stretch`.
    term : np.ndarray [shape=(n,)]
        Tempo term in [0, 1]; 0 where rejected.
    valid : np.ndarray [shape=(n,), dtype=bool]

    Examples
    --------
    >>> r, s, t, ok = tempo_fit(128.0, np.array([64.0]))
    >>> float(TEMPO_RATIOS[r[0]]), float(s[0]), bool(ok[0])
    (2.0, 0.0, True)
    """
    if query_bpm <= 0 or max_stretch < 0:
        raise ParameterError(f"query_bpm={query_bpm} must be > 0, max_stretch={max_stretch} >= 0")
    c = np.maximum(np.asarray(candidate_bpm, dtype=np.float64), 1e-9)
    stretch = query_bpm / (c[:, None] * _RATIOS[None, :]) - 1.0  # (n, 3)
    # Compare in log-speed so that +x % and -x % weigh alike; 1:1 wins ties.
    cost = np.abs(np.log1p(stretch)) + np.array([0.0, 1e-9, 1e-9])
    ratio_index = np.argmin(cost, axis=1)
    best = np.take_along_axis(stretch, ratio_index[:, None], axis=1)[:, 0]
    valid = np.abs(best) <= max_stretch + 1e-12
    term = stretch_score(best) * np.where(ratio_index == 0, 1.0, HALF_DOUBLE_SCORE)
    return ratio_index, best, np.where(valid, term, 0.0), valid


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre each 12-bin row and scale it to unit norm; also return which rows were non-flat."""
    xc = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(xc, axis=-1, keepdims=True)
    ok = norm[..., 0] > 1e-6
    return np.where(norm > 1e-6, xc / np.maximum(norm, 1e-12), 0.0), ok


def _sounding_length(mask: np.ndarray) -> np.ndarray:
    """Rows up to the last sounding one, per row of ``mask`` (n, rows) -> (n,); all of them
    where none sounds."""
    filled = np.asarray(mask, bool)
    rows = filled.shape[-1]
    return np.where(filled.any(axis=-1), rows - np.argmax(filled[..., ::-1], axis=-1), rows)


def _tiled(ia: np.ndarray, mask: np.ndarray, loops: np.ndarray | None) -> np.ndarray:
    """Row maps ``ia`` (n, bq) with each loop candidate's rows taken modulo its length (the
    rows up to its last sounding one): query bar 5 falls on bar 1 of a 4-bar loop."""
    if loops is None or not np.any(loops):
        return ia
    length = np.maximum(_sounding_length(mask), 1)
    return np.where(np.asarray(loops, bool)[:, None], ia % length[:, None], ia)


def _looped_query(chroma: np.ndarray, mask: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A loop query's chroma rows repeated to ``rows`` (the candidates' length): a loop plays
    over the whole of a partner's phrase, so its chords meet every bar of it."""
    filled = np.asarray(mask, bool)
    length = int(_sounding_length(filled))
    if length == 0 or rows <= length:
        return chroma, mask
    reps = -(-rows // length)
    return np.tile(chroma[:length], (reps, 1))[:rows], np.tile(filled[:length], reps)[:rows]


def harmonic_fit(
    query_chroma: np.ndarray,
    query_mask: np.ndarray,
    chroma: np.ndarray,
    mask: np.ndarray,
    ratio_index: np.ndarray,
    shifts: np.ndarray,
    loops: np.ndarray | None = None,
) -> np.ndarray:
    """Mean row-by-row (bar or beat) chroma correlation per shift -> (n, len(shifts)) in [0, 1].

    Parameters
    ----------
    query_chroma : np.ndarray [shape=(bq, 12)]
    query_mask : np.ndarray [shape=(bq,), dtype=bool]
    chroma : np.ndarray [shape=(n, bc, 12)]
    mask : np.ndarray [shape=(n, bc), dtype=bool]
    ratio_index : np.ndarray [shape=(n,)]
        Tempo ratio per candidate (index into TEMPO_RATIOS): maps query rows (bars or beats)
        to candidate rows of the same unit.
    shifts : np.ndarray [shape=(s,), dtype=int]
        Pitch shifts of the candidate in semitones.
    loops : np.ndarray [shape=(n,), dtype=bool], optional
        Candidates that are loops: their rows repeat under a longer query (:func:`_tiled`).
    """
    bq, bc = query_chroma.shape[0], chroma.shape[1]
    map_a, map_b = _bar_maps(bq)
    ia, ib = map_a[ratio_index], map_b[ratio_index]  # (n, bq)
    ia, ib = _tiled(ia, mask, loops), _tiled(ib, mask, loops)
    inside = (ia < bc) & (ib < bc)
    ia, ib = np.minimum(ia, bc - 1), np.minimum(ib, bc - 1)
    aligned = np.take_along_axis(chroma, ia[..., None], axis=1)
    aligned = aligned + np.take_along_axis(chroma, ib[..., None], axis=1)
    both = (
        inside
        & np.take_along_axis(mask, ia, axis=1)
        & np.take_along_axis(mask, ib, axis=1)
        & query_mask[None, :]
    )
    cn, c_ok = _unit_rows(aligned.astype(np.float32))
    qn, q_ok = _unit_rows(query_chroma.astype(np.float32))
    w = (both & c_ok & q_ok[None, :]).astype(np.float32)
    # Shifting the candidate up s semitones equals rotating the query down s.
    q_rot = np.stack([np.roll(qn, -int(s), axis=-1) for s in shifts])  # (s, bq, 12)
    corr = np.einsum("nbp,sbp->nsb", cn, q_rot, optimize=True)
    total = w.sum(axis=1)
    mean = np.einsum("nsb,nb->ns", corr, w) / np.maximum(total, 1.0)[:, None]
    return np.clip(mean, 0.0, 1.0)


def key_fit(
    query_key: int,
    key_index: np.ndarray,
    shifts: np.ndarray,
    *,
    confidence: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Key term of each shifted candidate -> (n, len(shifts)).

    ``RELATION_SCORE`` of the relation, shrunk toward 1 (no penalty) as the labels'
    ``confidence`` (n,) in [0, 1] falls.
    """
    rel = relation_table()[query_key, transpose_key_index(key_index[:, None], shifts[None, :])]
    penalty = 1.0 - np.array([RELATION_SCORE[r] for r in RELATIONS])[rel]
    c = np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    return 1.0 - (c[:, None] if c.ndim else c) * penalty


def rhythm_fit(
    query_rhythm: np.ndarray,
    query_steps: int,
    rhythm: np.ndarray,
    steps: np.ndarray,
    ratio_index: np.ndarray,
) -> np.ndarray:
    """Cosine of onset patterns on the 16th grid under each candidate's tempo ratio -> (n,)."""
    out = np.zeros(len(rhythm))
    q = np.asarray(query_rhythm, np.float64)
    qn = float(np.linalg.norm(q))
    if qn <= 1e-9:
        return out
    for st in np.unique(steps):
        if st != query_steps or st < 2:
            continue  # a meter clash: 3/4 against 4/4 has no common grid
        rows = np.flatnonzero(steps == st)
        sa, sb = _step_maps(int(st))
        ia, ib = sa[ratio_index[rows]], sb[ratio_index[rows]]
        r = np.pad(rhythm[rows].astype(np.float64), ((0, 0), (0, 1)))  # column 16 reads 0
        aligned = 0.5 * (np.take_along_axis(r, ia, axis=1) + np.take_along_axis(r, ib, axis=1))
        norm = np.linalg.norm(aligned, axis=1)
        out[rows] = np.where(norm > 1e-9, aligned @ q / np.maximum(norm, 1e-12) / qn, 0.0)
    return np.clip(out, 0.0, 1.0)


def spectral_fit(query_balance: np.ndarray, balance: np.ndarray) -> np.ndarray:
    """``1 - sum_b w_b min(q_b, c_b)``: low when both layers crowd the same band -> (n,)."""
    overlap = np.minimum(query_balance[None, :], balance) @ BAND_CLASH_WEIGHTS
    return np.clip(1.0 - overlap, 0.0, 1.0)


def energy_fit(query_energy: float, energy: np.ndarray) -> np.ndarray:
    """``1 - |e_q - e_c|`` -> (n,)."""
    return np.clip(1.0 - np.abs(float(query_energy) - energy.astype(np.float64)), 0.0, 1.0)


def coverage_fit(
    query_mask: np.ndarray,
    mask: np.ndarray,
    ratio_index: np.ndarray,
    loops: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Share of the query's sounding bars under which each candidate sounds -> ((n,), bars).

    Parameters
    ----------
    query_mask : np.ndarray [shape=(bq,), dtype=bool]
        The query's sounding bars.
    mask : np.ndarray [shape=(n, bc), dtype=bool]
        Each candidate's sounding bars (False past its end).
    ratio_index : np.ndarray [shape=(n,)]
        Tempo ratio per candidate (index into TEMPO_RATIOS): under 2:1 one candidate bar spans
        two query bars; under 1:2 a query bar holds two candidate bars (either sounding counts).
    loops : np.ndarray [shape=(n,), dtype=bool], optional
        Candidates that are loops: repeated, they sound under every query bar their bars do.

    Returns
    -------
    coverage : np.ndarray [shape=(n,)]
        In [0, 1]; 1 for every candidate when the query has no sounding bar.
    bars : int
        The query's sounding bars.

    Examples
    --------
    >>> q = np.ones(8, bool)
    >>> m = np.array([[True] * 8, [True] * 3 + [False] * 5])
    >>> coverage_fit(q, m, np.array([0, 0]))
    (array([1.   , 0.375]), 8)
    >>> float(coverage_fit(q, np.ones((1, 4), bool), np.array([1]))[0][0])  # 4 half-time bars
    1.0
    """
    q = np.asarray(query_mask, bool)
    bars = int(q.sum())
    n, bc = mask.shape
    if bars == 0 or n == 0:
        return np.ones(n), bars
    map_a, map_b = _bar_maps(len(q))
    ia, ib = map_a[ratio_index], map_b[ratio_index]  # (n, bq)
    ia, ib = _tiled(ia, mask, loops), _tiled(ib, mask, loops)
    sa = np.take_along_axis(mask, np.minimum(ia, bc - 1), axis=1) & (ia < bc)
    sb = np.take_along_axis(mask, np.minimum(ib, bc - 1), axis=1) & (ib < bc)
    return ((sa | sb) & q[None, :]).sum(axis=1) / bars, bars


def coverage_factor(coverage: np.ndarray, *, floor: float = COVERAGE_FLOOR) -> np.ndarray:
    """Score factor of a coverage: ``floor + (1 - floor) * coverage``."""
    return floor + (1.0 - floor) * np.clip(np.asarray(coverage, np.float64), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Section roles (issue 14: a drop pairs with a drop-energy partner, a break with a break)

#: How far the section roles move the score (see :func:`section_factor`). Small beside the
#: transform costs and the content terms: the swing between a same-role partner and a clashing
#: one (2 x 0.04) is about what a 1-semitone shift (0.95) or a 2 % stretch (0.92) costs, so
#: harmonic and tempo fit still decide, and roles break near-ties.
SECTION_WEIGHT = 0.04


def section_role_fit(query_label: str | None, labels: np.ndarray) -> np.ndarray:
    """Role fit of each candidate's section with the query's -> (n,) in {-1, 0, 1}.

    :func:`cratedig.analysis.structure.section_fit` per candidate: 1 for the same energy role
    (drop/chorus are peaks, break the low point...), -1 for a peak against a low point, 0
    otherwise or when a label is unknown (``""`` or None).

    Examples
    --------
    >>> section_role_fit("drop", np.array(["chorus", "break", "", "verse"], dtype=object))
    array([ 1., -1.,  0.,  0.])
    """
    return np.array([section_fit(query_label, str(c or "")) for c in labels], dtype=np.float64)


def section_factor(fit: np.ndarray, *, weight: float = SECTION_WEIGHT) -> np.ndarray:
    """Score factor of a role fit: ``1 + weight * fit`` (1 when the roles are unknown)."""
    return 1.0 + weight * np.asarray(fit, dtype=np.float64)


def section_words(query_label: str | None, label: str | None) -> str:
    """The reason text of two section labels: "both drops", "break under a drop", or ``""``.

    Examples
    --------
    >>> section_words("drop", "drop"), section_words("drop", "break")
    ('both drops', 'break under a drop')
    >>> section_words("drop", "chorus"), section_words("verse", "drop"), section_words(None, "drop")
    ('chorus under a drop (both peaks)', '', '')
    """
    q, c = query_label or "", label or ""
    fit = section_fit(q, c)
    if fit == 0.0:
        return ""
    if fit > 0 and q == c:
        return f"both {c}es" if c.endswith("s") else f"both {c}s"
    article = "an" if q[:1] in "aeiou" else "a"
    words = f"{c} under {article} {q}"
    return f"{words} (both {_ROLE_WORDS[SECTION_ROLES[q]]})" if fit > 0 else words


_ROLE_WORDS = {
    "peak": "peaks",
    "low": "low points",
    "rise": "builds",
    "mid": "mid-energy",
    "edge": "mixing edges",
}


# ---------------------------------------------------------------------------------------------
# The scorer


def score_candidates(
    query: SegmentBatch,
    candidates: SegmentBatch,
    *,
    max_shift: int = DEFAULT_MAX_SHIFT,
    max_stretch: float = DEFAULT_MAX_STRETCH,
    weights: dict[str, float] | None = None,
) -> MatchScores:
    """Score every candidate against one query segment.

    Parameters
    ----------
    query : SegmentBatch
        Exactly one segment.
    candidates : SegmentBatch
        ``n`` segments, any padding.
    max_shift : int in 0..6
        Largest pitch shift of the candidate, in semitones either way.
    max_stretch : float >= 0
        Largest time-stretch, relative (0.08 = 8 %).
    weights : dict of str to float, optional
        Weight of each content term (harmonic, key, rhythm, spectral, energy) in the combined
        score (default :data:`DEFAULT_WEIGHTS`; missing terms weigh 0). The transform terms
        (tempo, shift, transposition) always multiply.

    Returns
    -------
    MatchScores

    Examples
    --------
    >>> scores = score_candidates(batch.take([0]), batch)  # doctest: +SKIP
    >>> scores.ranking(5), scores.terms["harmonic"][:3]  # doctest: +SKIP
    """
    if len(query) != 1:
        raise ParameterError(f"query must hold exactly one segment, got {len(query)}")
    if query.units_per_bar != candidates.units_per_bar:
        raise ParameterError(
            f"query has {query.units_per_bar} chroma rows per bar, candidates "
            f"{candidates.units_per_bar}"
        )
    if not 0 <= max_shift <= 6:
        raise ParameterError(f"max_shift={max_shift} must be within 0..6 semitones")
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(w) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ParameterError(
            f"unknown weighted terms {sorted(unknown)}; known: {list(DEFAULT_WEIGHTS)}"
        )
    w_total = sum(w.values())
    if w_total <= 0 or min(w.values()) < 0:
        raise ParameterError(f"weights={w} must be >= 0 with a positive sum")
    n = len(candidates)

    ratio_index, stretch, tempo_term, valid = tempo_fit(
        float(query.tempo[0]), candidates.tempo, max_stretch=max_stretch
    )
    terms = {
        "rhythm": rhythm_fit(
            query.rhythm[0], int(query.steps[0]), candidates.rhythm, candidates.steps, ratio_index
        ),
        "spectral": spectral_fit(query.balance[0].astype(np.float64), candidates.balance),
        "energy": energy_fit(float(query.energy[0]), candidates.energy),
        "tempo": tempo_term,
    }
    shifts = _shifts(max_shift)
    key_all = key_fit(
        int(query.key_index[0]),
        candidates.key_index,
        shifts,
        confidence=np.minimum(float(query.key_clarity[0]), candidates.key_clarity),
    )
    # Every rotation, allowed or not: index 0..len(shifts)-1 are the allowed shifts.
    rotations = np.r_[shifts, np.setdiff1d(np.arange(-5, 7), shifts)]
    loops = (
        np.array([str(x) == LOOP_LABEL for x in candidates.labels], dtype=bool)
        if len(candidates.labels) == n
        else None
    )
    q_chroma, q_mask = query.chroma[0], query.chroma_mask[0]
    if len(query.labels) and str(query.labels[0]) == LOOP_LABEL:
        q_chroma, q_mask = _looped_query(q_chroma, q_mask, candidates.chroma.shape[1])
    harm_rot = harmonic_fit(
        q_chroma, q_mask, candidates.chroma, candidates.chroma_mask, ratio_index, rotations, loops
    )
    harm_all = harm_rot[:, : len(shifts)]
    transposition_all = 1.0 - (harm_rot.max(axis=1, keepdims=True) - harm_all)
    rest = np.zeros(n)
    for t in ("rhythm", "spectral", "energy"):
        rest += w.get(t, 0.0) * terms[t]
    content_all = (
        w.get("key", 0.0) * key_all + w.get("harmonic", 0.0) * harm_all + rest[:, None]
    ) / w_total
    shift_all = shift_score(shifts)[None, :]
    # first maximum: the smallest shift
    best = np.argmax(content_all * shift_all * transposition_all, axis=1)
    rows = np.arange(n)
    semitones = shifts[best]
    relation = relation_table()[
        int(query.key_index[0]), transpose_key_index(candidates.key_index, semitones)
    ]
    terms["harmonic"] = harm_all[rows, best]
    terms["key"] = key_all[rows, best]
    terms["shift"] = shift_all[0, best]
    terms["transposition"] = transposition_all[rows, best]
    terms = {t: terms[t] for t in TERMS}
    score = tempo_term * terms["shift"] * terms["transposition"] * content_all[rows, best]
    coverage, n_bars = coverage_fit(query.bar_mask()[0], candidates.bar_mask(), ratio_index, loops)
    section = section_role_fit(str(query.labels[0]), candidates.labels)
    score = np.minimum(score * coverage_factor(coverage) * section_factor(section), 1.0)
    return MatchScores(
        score=np.where(valid, score, 0.0),
        valid=valid,
        tempo_ratio=_RATIOS[ratio_index],
        stretch=stretch,
        semitones=semitones,
        relation=relation,
        terms=terms,
        section=section,
        coverage=coverage,
        query_bars=n_bars,
    )


# ---------------------------------------------------------------------------------------------
# Explanations (built only for the rows shown)

_RELATION_WORDS = {
    "same": "same key",
    "relative": "relative key",
    "fifth": "a fifth apart",
    "diagonal": "a fifth apart across modes",
    "parallel": "parallel key",
    "energy_boost": "energy boost (+2 on the wheel)",
    "other": "distant keys",
    "tritone": "tritone clash",
}


def explain(
    query: SegmentBatch,
    candidates: SegmentBatch,
    scores: MatchScores,
    rows: np.ndarray | list[int],
    *,
    max_stretch: float = DEFAULT_MAX_STRETCH,
) -> list[str]:
    """Plain-language reasons for ``rows`` of ``scores``.

    Examples
    --------
    >>> explain(q, cands, scores, scores.ranking(1))  # doctest: +SKIP
    ['same key after -2 st (8A); 126→128 BPM (+1.6%); chords agree bar by bar (0.82)']
    """
    q_key = Key.from_index(int(query.key_index[0]))
    out = []
    for i in np.asarray(rows, dtype=np.int64):
        s = int(scores.semitones[i])
        ck = Key.from_index(int(transpose_key_index(candidates.key_index[i], s)))
        rel = scores.relation_name(int(i))
        words = _RELATION_WORDS[rel]
        codes = q_key.camelot if rel == "same" else f"{q_key.camelot}/{ck.camelot}"
        parts = [f"{words} ({codes})" + (f" after {s:+d} st" if s else "")]
        if RELATION_SCORE[rel] < 1.0:
            # The key term trusts the labels only as far as the less clear one: say so when
            # that waived the relation's cost, or "distant keys" reads as a verdict it is not.
            unclear = [
                who
                for who, c in (
                    ("this phrase's", float(query.key_clarity[0])),
                    ("the partner's", float(candidates.key_clarity[i])),
                )
                if c < KEY_UNCLEAR
            ]
            if unclear:
                which = "both keys are" if len(unclear) == 2 else f"{unclear[0]} key is"
                parts[0] += f", but {which} unclear: the chords decide"
        bpm = float(candidates.tempo[i])
        st = float(scores.stretch[i])
        if not scores.valid[i]:
            parts.append(f"needs a {st:+.1%} stretch, beyond ±{max_stretch:.0%}")
        else:
            ratio = float(scores.tempo_ratio[i])
            feel = "" if ratio == 1.0 else (" as half-time" if ratio == 2.0 else " as double-time")
            parts.append(f"{bpm:.0f}→{bpm * (1 + st):.0f} BPM ({st:+.1%}){feel}")
        h = float(scores.terms["harmonic"][i])
        if h >= HARMONIC_AGREE:
            parts.append(f"chords agree bar by bar ({h:.2f})")
        elif h < HARMONIC_DISAGREE:
            parts.append(f"chords disagree ({h:.2f})")
        if scores.terms["spectral"][i] < SPECTRAL_CLASH:
            band = int(np.argmax(np.minimum(query.balance[0], candidates.balance[i])))
            parts.append(
                ("two bass-heavy layers", "two mid-heavy layers", "two bright layers")[band]
            )
        if scores.terms["rhythm"][i] >= 0.8:
            parts.append("grooves lock")
        cover = float(scores.coverage[i])
        if cover < COVERAGE_SAY and scores.query_bars:
            parts.append(f"covers {round(cover * scores.query_bars)} of {scores.query_bars} bars")
        if str(candidates.labels[i]) == LOOP_LABEL if len(candidates.labels) > i else False:
            parts.append("a loop, repeated under the phrase")
        roles = section_words(str(query.labels[0]), str(candidates.labels[i]))
        if roles:
            parts.append(roles)
        out.append("; ".join(parts))
    return out


def candidate_records(
    query: SegmentBatch,
    candidates: SegmentBatch,
    scores: MatchScores,
    rows: np.ndarray | list[int],
    *,
    max_stretch: float = DEFAULT_MAX_STRETCH,
) -> list[dict[str, Any]]:
    """The ``match --json`` candidate objects (DESIGN.md) for ``rows``, without paths/times."""
    rows = np.asarray(rows, dtype=np.int64)
    reasons = explain(query, candidates, scores, rows, max_stretch=max_stretch)
    return [
        {
            "segment": str(candidates.ids[i]),
            "track_id": str(candidates.track_ids[i]),
            "score": round(float(scores.score[i]), 4),
            "tempo_ratio": float(scores.tempo_ratio[i]),
            "stretch": round(float(scores.stretch[i]), 4),
            "semitones": int(scores.semitones[i]),
            "key_relation": scores.relation_name(int(i)),
            "terms": {t: round(float(v[i]), 4) for t, v in scores.terms.items()},
            "section_fit": int(scores.section[i]),
            "coverage": round(float(scores.coverage[i]), 4),
            "reason": reason,
        }
        for i, reason in zip(rows, reasons, strict=True)
    ]
