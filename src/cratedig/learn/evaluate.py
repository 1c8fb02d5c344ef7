"""An honest evaluation of the rule score, the learned term and their blend on one library.

Conventions
-----------
- **Split by track, never by pair**: the library's tracks are dealt into ``folds`` groups
  (a seeded permutation, so the same library gives the same split); each fold in turn is the
  test set. A pair is a test pair when both its query's and its candidate's tracks are in the
  test fold, a training pair when both are outside it, and is left out of that fold otherwise
  (a pair joining tracks of two folds is never tested, counted in ``cross_track_pairs``):
  no song is on both sides. Every pair is tested at most
  once, and the figures pool the test queries of all folds (k-fold cross-validation; with
  fewer tracks than ``folds``, one fold per track).
- **Ground truth**: (a) ratings: the 1-5 score of each rated pair is its graded relevance
  (gain ``2**(score - 1) - 1``: a 1 is not relevant, 4 and 5 are "relevant" for MRR), queries
  are the rated query phrases with two or more rated candidates; (b) stem partners: for each
  stem query phrase (a song's lead/vocal), its own accompaniment at the same bars is the one
  relevant item among the rule-valid candidates (the same accompaniment moved by a bar or half
  a bar, transposed, and other songs' phrases: :mod:`cratedig.learn.pairs`). A partner the rules
  reject counts as not found, for every scorer.
- **Scorers**: ``rule`` (the match score), ``learned`` (the ranker's term trained on the
  training folds only) and ``blend`` (:func:`cratedig.learn.ranker.blend` at the weight
  ``cratedig train`` would choose from the training folds alone, by
  :func:`cratedig.learn.ranker.cv_evidence_blend`, cross-validated over their tracks: exactly
  the rule score when no model could be trained or the learned term did not earn a say). The rules are hard limits for all three: a pair the
  rules reject scores 0.
- **Ties** rank pessimistically (a relevant item tied with others ranks after them), so a
  constant score earns nothing.

Metrics (:mod:`cratedig.learn.metrics`)
---------------------------------------
NDCG@10 (Järvelin & Kekäläinen 2002), MRR, pairwise accuracy (share of differently-judged
candidate pairs of one query ordered right) and stem-partner top-1, each with the number of
queries it rests on, or ``None`` with the reason where there is nothing to measure.

Learning curve: in every fold the ranker is trained again on a growing share of that fold's
training pairs (the same seeded order, so each subset contains the smaller ones), and the test
quality is measured at each size.

This module takes feature matrices and scores computed by the caller
(:func:`cratedig.workflows.evaluate_rankers`); it never imports ``match``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.errors import ParameterError
from cratedig.learn.metrics import (
    mean_reciprocal_rank,
    ndcg_of_scores,
    pairwise_accuracy,
    single_relevant_ndcg,
    top_k_rate,
)
from cratedig.learn.ranker import STEM_MODEL, blend, cv_evidence_blend, train_ranker

SCORERS: tuple[str, ...] = ("rule", "learned", "blend")
SOURCES: tuple[str, ...] = ("stems", "ratings")
METRICS: tuple[str, ...] = ("ndcg@10", "mrr", "pairwise_accuracy", "top1")
#: Shares of each fold's training pairs the learning curve trains on.
DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
DEFAULT_FOLDS = 4
#: A rating this high or higher is a relevant partner (MRR); lower ones are graded down.
RELEVANT_SCORE = 4


@dataclass
class EvaluationSet:
    """Every judged (query, candidate) pair of a library, with its features and rule score.

    Attributes
    ----------
    X : np.ndarray [shape=(n, d)]
        Pair features (:func:`cratedig.learn.ranker.pair_features`), columns ``names``.
    names : list of str
    rule : np.ndarray [shape=(n,)]
        The rule score; 0 where the rules reject the pair.
    source : np.ndarray [shape=(n,), dtype=str]
        ``"stems"`` or ``"ratings"``.
    query : np.ndarray [shape=(n,), dtype=str]
        Query id: pairs of one query are ranked against each other.
    relevance : np.ndarray [shape=(n,)]
        Stems: 1 for the true partner, 0 otherwise; ratings: the score 1-5.
    label : np.ndarray [shape=(n,), dtype=int]
        Training label: 1 layers well, 0 does not, -1 not used for training (a 3 rating).
    weight : np.ndarray [shape=(n,)]
        Training weight of each pair.
    query_track, candidate_track : np.ndarray [shape=(n,), dtype=str]
        The library track each side comes from (what the split is by).
    """

    X: np.ndarray
    names: list[str]
    rule: np.ndarray
    source: np.ndarray
    query: np.ndarray
    relevance: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    query_track: np.ndarray
    candidate_track: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.rule)
        arrays = (self.source, self.query, self.relevance, self.label, self.weight)
        if (
            self.X.shape != (n, len(self.names))
            or any(len(a) != n for a in arrays)
            or (len(self.query_track) != n or len(self.candidate_track) != n)
        ):
            raise ParameterError(f"evaluation set: every array must hold {n} pairs")
        bad = set(np.unique(self.source)) - set(SOURCES)
        if bad:
            raise ParameterError(f"evaluation set: unknown sources {sorted(bad)}")

    @property
    def tracks(self) -> list[str]:
        return sorted(set(self.query_track.tolist()) | set(self.candidate_track.tolist()))


@dataclass
class Measure:
    """One metric of one scorer: its value over ``queries`` queries, or why there is none."""

    value: float | None
    queries: int
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": None if self.value is None else round(self.value, 4),
            "queries": self.queries,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class CurvePoint:
    """Test quality after training on ``fraction`` of every fold's training pairs."""

    fraction: float
    stem_pairs: float  # training stem pairs per fold, on average
    ratings: float  # training ratings per fold, on average
    models: int  # folds where a model could be trained
    metrics: dict[str, dict[str, dict[str, Measure]]]  # source -> metric -> scorer

    def to_json(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "stem_pairs": round(self.stem_pairs, 1),
            "ratings": round(self.ratings, 1),
            "models": self.models,
            "metrics": _metrics_json(self.metrics),
        }


@dataclass
class Evaluation:
    """The figures of :func:`evaluate`: the full-data comparison and the learning curve."""

    folds: int
    seed: int
    split: str
    tracks: int
    fold_tracks: list[list[str]]
    pairs: dict[str, int]
    cross_track_pairs: int
    metrics: dict[str, dict[str, dict[str, Measure]]]  # at the full training set
    curve: list[CurvePoint]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "folds": self.folds,
            "seed": self.seed,
            "tracks": self.tracks,
            "fold_tracks": self.fold_tracks,
            "pairs": self.pairs,
            "cross_track_pairs": self.cross_track_pairs,
            "scorers": list(SCORERS),
            "metrics": _metrics_json(self.metrics),
            "learning_curve": [p.to_json() for p in self.curve],
            "notes": self.notes,
        }


def _metrics_json(m: dict[str, dict[str, dict[str, Measure]]]) -> dict[str, Any]:
    return {
        src: {name: {sc: x.to_json() for sc, x in by.items()} for name, by in ms.items()}
        for src, ms in m.items()
    }


def split_tracks(tracks: Sequence[str], *, folds: int, seed: int) -> list[list[str]]:
    """Deal ``tracks`` into ``min(folds, len(tracks))`` groups after a seeded shuffle.

    Examples
    --------
    >>> split_tracks(["a", "b", "c", "d", "e"], folds=2, seed=0)
    [['b', 'c', 'e'], ['a', 'd']]
    """
    if folds < 2:
        raise ParameterError(f"folds={folds} must be at least 2")
    order = np.random.default_rng(seed).permutation(sorted(tracks)).tolist()
    k = min(folds, len(order))
    return [sorted(order[i::k]) for i in range(k)]


def _ranks_of_partner(score: np.ndarray, data: EvaluationSet, idx: np.ndarray) -> list[float]:
    """1-based pessimistic rank of each stem query's first partner among its rule-valid
    candidates (inf where the rules reject every partner). A query may have several partners
    (its accompaniment at its bars, and repeats under the same chords): the best scored counts,
    as a listener stops at the first that fits."""
    ranks = []
    q = data.query[idx]
    for query in np.unique(q):
        m = idx[q == query]
        pos = m[data.relevance[m] > 0]
        if not len(pos):
            continue
        pos = pos[data.rule[pos] > 0]
        if not len(pos):
            ranks.append(math.inf)
            continue
        best = float(np.max(score[pos]))
        valid = m[(data.rule[m] > 0) & (data.relevance[m] <= 0)]
        ranks.append(1.0 + float(np.sum(score[valid] >= best)))
    return ranks


def _judged_groups(relevance: np.ndarray, query: np.ndarray) -> int:
    """Queries with at least two differently judged candidates (what pairwise accuracy uses)."""
    return sum(1 for g in np.unique(query) if len(np.unique(relevance[query == g])) > 1)


def _measure(values: list[float], reason: str) -> Measure:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return Measure(None, 0, reason)
    return Measure(float(np.mean(vals)), len(vals))


def _stem_metrics(score: np.ndarray, data: EvaluationSet, idx: np.ndarray) -> dict[str, Measure]:
    none = "no stem query among the test pairs (no track with a vocal/lead stem and others)"
    ranks = _ranks_of_partner(score, data, idx)
    if not ranks:
        return {m: Measure(None, 0, none) for m in METRICS}
    valid = idx[data.rule[idx] > 0]
    acc = pairwise_accuracy(score[valid], data.relevance[valid], data.query[valid])
    groups = _judged_groups(data.relevance[valid], data.query[valid])
    n = len(ranks)
    return {
        "ndcg@10": Measure(single_relevant_ndcg(ranks, k=10), n),
        "mrr": Measure(mean_reciprocal_rank(ranks), n),
        "pairwise_accuracy": (
            Measure(acc, groups)
            if not math.isnan(acc)
            else Measure(None, 0, "no stem query with its partner and a rival both rule-valid")
        ),
        "top1": Measure(top_k_rate(ranks, k=1), n),
    }


def _rating_metrics(score: np.ndarray, data: EvaluationSet, idx: np.ndarray) -> dict[str, Measure]:
    ndcgs, ranks = [], []
    q = data.query[idx]
    for query in np.unique(q):
        m = idx[q == query]
        if len(m) < 2:
            continue
        rel = data.relevance[m] - 1.0  # a 1 gains nothing
        if rel.max() > 0 and len(set(rel.tolist())) > 1:
            ndcgs.append(ndcg_of_scores(score[m], rel, k=10))
        good = data.relevance[m] >= RELEVANT_SCORE
        if good.any() and not good.all():
            # The first relevant item's pessimistic rank.
            best = max(score[m][good])
            ranks.append(1.0 + float(np.sum(score[m][~good] >= best)))
    acc = pairwise_accuracy(score[idx], data.relevance[idx], q)
    groups = _judged_groups(data.relevance[idx], q)
    few = "no query with two or more rated candidates scored differently"
    return {
        "ndcg@10": _measure(ndcgs, few),
        "mrr": (
            Measure(mean_reciprocal_rank(ranks), len(ranks))
            if ranks
            else Measure(
                None, 0, f"no query with a candidate rated {RELEVANT_SCORE}-5 and a lower one"
            )
        ),
        "pairwise_accuracy": Measure(acc, groups) if not math.isnan(acc) else Measure(None, 0, few),
        "top1": Measure(None, 0, "stem-partner top-1 is measured on stem queries only"),
    }


def _all_metrics(
    scores: dict[str, np.ndarray], data: EvaluationSet, tested: np.ndarray, reasons: dict[str, str]
) -> dict[str, dict[str, dict[str, Measure]]]:
    out: dict[str, dict[str, dict[str, Measure]]] = {}
    for src, fn in (("stems", _stem_metrics), ("ratings", _rating_metrics)):
        idx = np.flatnonzero(tested & (data.source == src))
        by_scorer: dict[str, dict[str, Measure]] = {}
        for sc in SCORERS:
            s = scores[sc]
            if sc in reasons and np.all(np.isnan(s[idx])) and len(idx):
                by_scorer[sc] = {m: Measure(None, 0, reasons[sc]) for m in METRICS}
                continue
            keep = idx[~np.isnan(s[idx])]
            if src == "ratings" and not len(keep):
                reason = "no rated pair among the test pairs (rate suggestions: cratedig rate)"
                by_scorer[sc] = {m: Measure(None, 0, reason) for m in METRICS}
                continue
            by_scorer[sc] = fn(s, data, keep)
        out[src] = {m: {sc: by_scorer[sc][m] for sc in SCORERS} for m in METRICS}
    return out


def _inner_blend(
    data: EvaluationSet,
    rule: np.ndarray,
    take: np.ndarray,
    rng: np.random.Generator,
    *,
    default: float,
) -> float:
    """The blend weight ``cratedig train`` would choose from the training rows ``take`` alone:
    :func:`cratedig.learn.ranker.cv_evidence_blend` over their query tracks (``default`` when
    under four tracks or one kind of label leave nothing to judge by)."""
    tracks = np.unique(data.query_track[take])
    if len(tracks) < 4 or len(set(data.label[take].tolist())) < 2:
        return default
    weight, _ = cv_evidence_blend(
        data.X[take],
        data.label[take],
        data.names,
        data.query_track[take],
        data.query[take],
        rule=rule[take],
        sample_weight=data.weight[take],
        model=STEM_MODEL,
        seed=int(rng.integers(1 << 30)),
    )
    return weight


def evaluate(
    data: EvaluationSet,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Evaluation:
    """Rule vs learned vs blend on held-out tracks, and the learning curve.

    Parameters
    ----------
    data : EvaluationSet
    folds : int >= 2
        Groups of tracks; each is the test set once (fewer when there are fewer tracks).
    seed : int
        The split and the order in which training pairs join the learning curve.
    fractions : sequence of float in [0, 1]
        Learning-curve sizes (shares of each fold's training pairs); 1.0 is always included:
        it gives the main figures.

    Raises
    ------
    ParameterError
        Nothing to evaluate: fewer than two tracks, or no stem query and no query with two
        differently rated candidates.
    """
    tracks = data.tracks
    if len(tracks) < 2:
        raise ParameterError(
            "nothing to evaluate: the split is by track and needs at least two tracks with "
            "judged pairs (songs with stems, or ratings: cratedig rate)"
        )
    stem_queries = np.unique(data.query[(data.source == "stems") & (data.relevance > 0)])
    rated = data.query[data.source == "ratings"]
    rated_queries = [q for q in np.unique(rated) if np.sum(rated == q) >= 2]
    if not len(stem_queries) and not rated_queries:
        raise ParameterError(
            "nothing to evaluate: no song with stems (a vocals or lead stem and others) and no "
            "query phrase with two or more rated candidates"
        )
    fracs = sorted({float(f) for f in fractions} | {1.0})
    if any(not 0.0 <= f <= 1.0 for f in fracs):
        raise ParameterError(f"fractions {list(fractions)}: each must be within 0..1")
    groups = split_tracks(tracks, folds=folds, seed=seed)
    n = len(data.rule)
    rule = np.where(data.rule > 0, data.rule, 0.0)
    learned = {f: np.full(n, np.nan) for f in fracs}
    blended = {f: rule.copy() for f in fracs}
    tested = np.zeros(n, bool)
    sizes = {f: [0.0, 0.0, 0] for f in fracs}  # stem pairs, ratings, models
    rng = np.random.default_rng(seed + 1)
    for test_tracks in groups:
        in_q = np.isin(data.query_track, test_tracks)
        in_c = np.isin(data.candidate_track, test_tracks)
        test, train = in_q & in_c, ~in_q & ~in_c
        tested |= test
        order = rng.permutation(np.flatnonzero(train & (data.label >= 0)))
        for f in fracs:
            take = order[: int(round(f * len(order)))]
            sizes[f][0] += float(np.sum(data.source[take] == "stems"))
            sizes[f][1] += float(np.sum(data.source[take] == "ratings"))
            if len(set(data.label[take].tolist())) < 2 or not test.any():
                continue
            model = train_ranker(
                data.X[take], data.label[take], data.names, sample_weight=data.weight[take],
                queries=data.query[take], model=STEM_MODEL,
            )  # fmt: skip
            t = np.flatnonzero(test)
            term = model.learned(data.X[t], data.names)
            learned[f][t] = np.where(rule[t] > 0, term, 0.0)
            weight = _inner_blend(data, rule, take, rng, default=model.blend)
            blended[f][t] = blend(rule[t], term, weight=weight)
            sizes[f][2] += 1
    k = len(groups)
    cross = int(np.sum(~tested))
    reasons = {
        "learned": "no model: the training folds hold no pairs of both kinds (layers well / not)"
    }
    curve = []
    for f in fracs:
        scores = {"rule": rule, "learned": learned[f], "blend": blended[f]}
        curve.append(
            CurvePoint(
                f, sizes[f][0] / k, sizes[f][1] / k, int(sizes[f][2]),
                _all_metrics(scores, data, tested, reasons),
            )
        )  # fmt: skip
    notes = []
    if cross:
        notes.append(
            f"{cross} pairs join tracks of two folds: never tested (each fold tests only pairs "
            "of its own tracks, so no song is on both sides), used for training elsewhere"
        )
    full = curve[-1]
    if full.models < k:
        notes.append(f"a model could be trained in {full.models} of {k} folds")
    return Evaluation(
        folds=k,
        seed=seed,
        split=f"{k}-fold cross-validation by track (seed {seed})",
        tracks=len(tracks),
        fold_tracks=groups,
        pairs={src: int(np.sum(data.source == src)) for src in SOURCES},
        cross_track_pairs=cross,
        metrics=full.metrics,
        curve=curve,
        notes=notes,
    )
