"""A learned ranker over pair features: the ``learned`` term of the match contract.

Features of a (query, candidate) pair are every score term of :mod:`cratedig.match.scoring`,
the rule score itself, and what the transform leaves between the two layers: size of the
stretch and of the shift, half/double time, the key relation after the shift (one column per
relation of :data:`cratedig.theory.RELATIONS`, so a taste for fifths and relative keys over the
same key is expressible), and the low/mid/high balance of the query minus the candidate's, signed
and absolute (a taste for contrast: a bass-heavy phrase under a bright one). ``match`` computes
them and asks this module for the term; this module never imports ``match``.

The model is a logistic regression on standardised features (scikit-learn). :func:`train_ranker`
fits it on labelled pairs (self-supervised stem pairs, :mod:`cratedig.learn.pairs`), pairwise
within each query when the queries are given (as ``cratedig train`` gives them: what the term
must do is order one query's candidates), with the rule score as the prior and the term put on
the rule score's scale;
:func:`train_from_ratings` on 1-5 ratings (as ``cratedig rate`` stores them, each a soft label
``(score - 1) / 4``) together with optional stem pairs, and chooses the blend weight from the
evidence: by cross-validation over rated queries grouped by track, the weight whose blend ranks
held-out rated lists best (NDCG@10), shrunk toward 0 while ratings are few, and 0 when the
learned term does not beat the rule score there. It is stored as **JSON** (feature names,
means, scales, coefficients, intercept, blend weight, format version): loading a model file
cannot run code, as a pickle could. A corrupt file, or one of another format (a newer cratedig,
or an older one with other features), gives one warning and no model, and the score is then
exactly the rule score (:func:`blend`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.errors import ParameterError
from cratedig.fileio import atomic_path
from cratedig.learn.metrics import ndcg_of_scores, pairwise_accuracy
from cratedig.learn.trees import Trees, from_lightgbm
from cratedig.theory import RELATIONS

log = logging.getLogger("cratedig.learn")

#: Version of the JSON layout and feature set; a file with a larger one is refused (written by a
#: newer cratedig), and so is one with a smaller one (its features are not the ones computed now).
MODEL_FORMAT = 3
#: The oldest format still read: 2 (logistic models on today's features); 3 adds LambdaRank
#: trees (``"trees"``), which a format-2 reader would not know to use.
OLDEST_FORMAT = 2
MODEL_KIND = "ranker"
#: Share of the learned term in the blended score by default: the rules keep the larger say
#: until the model has shown, on held-out songs, that it ranks better.
DEFAULT_BLEND = 0.5
#: Weight of one human rating against one self-supervised pair, at least (see
#: :func:`train_from_ratings`: ratings together weigh at least as much as all stem pairs).
RATING_WEIGHT = 3.0
#: Ratings at which the blend weight chosen by cross-validation is halved (it grows with the
#: evidence: ``w * n / (n + BLEND_HALF_RATINGS)``).
BLEND_HALF_RATINGS = 40.0
#: Scale-up of the rule score among the features of :func:`train_from_ratings` (its coefficient
#: is penalised ``RULE_PRIOR ** 2`` times less than the others'): the rules are the prior.
RULE_PRIOR = 3.0
#: Scale-up of the rule score in the pairwise fit of :func:`train_ranker` (its coefficient is
#: penalised ``RULE_PRIOR_PAIRWISE ** 2`` times less than the others'): the rules are the
#: prior, the other features corrections that must earn their weight on the lists.
RULE_PRIOR_PAIRWISE = 10.0
#: What :func:`train_ranker` fits within queries: a pairwise logistic regression, or a LambdaRank
#: ensemble of small trees (LightGBM), which ``cratedig train`` uses on stem pairs.
RANKER_MODELS = ("logistic", "lambdarank")
#: The model ``cratedig train`` (and ``cratedig evaluate``) fits on stem pairs.
STEM_MODEL = "lambdarank"
#: Most share of the score a ranker trained on stem pairs alone gets, whatever its evidence:
#: that evidence is the pairs' own (built decoys), not real match lists. On the real stems'
#: held-out match lists, the LambdaRank trees trained as ``cratedig train`` trains them on the
#: dev songs' stem pairs chose share 1 (cross-validated MRR on the pairs 0.53 -> 0.60) and then
#: lost recall@10 against the rule (0.724 -> 0.686); at 0.5 they kept it and gained MRR
#: (0.499 -> 0.514). Set after that held-out run (stop 35); ratings, which rate real match lists,
#: are not capped.
STEM_BLEND_CAP = DEFAULT_BLEND
#: The LambdaRank ensemble: 100 trees of 3 leaves, learning rate 0.05, rows and features
#: subsampled (0.8), the lambdas of the first 20 of each list. Chosen on the real stems' dev
#: lists (5-fold cross-validation by song, blended at 0.5 with the rule score): top-1 / MRR
#: 0.500 / 0.586 against the pairwise logistic fit's 0.429 / 0.511 and the rule's 0.384 /
#: 0.477; 2-5 leaves and 50-200 trees gave 0.455-0.500 / 0.556-0.586.
LAMBDARANK_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 3,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "lambdarank_truncation_level": 20,
}
#: Standard errors by which the cross-validated gain of the chosen blend must exceed 0.
BLEND_SE = 2.0
#: Blend weights tried by the cross-validation of :func:`train_from_ratings`.
BLEND_GRID: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
#: Extra features beside the score terms, in this order.
EXTRA_FEATURES: tuple[str, ...] = (
    "rule",
    "abs_stretch",
    "abs_semitones",
    "half_double",
    "low_diff",
    "mid_diff",
    "high_diff",
    "abs_low_diff",
    "abs_mid_diff",
    "abs_high_diff",
    *(f"rel_{r}" for r in RELATIONS),
    "coverage",
)


def pair_features(
    terms: Mapping[str, np.ndarray],
    *,
    stretch: np.ndarray,
    semitones: np.ndarray,
    tempo_ratio: np.ndarray,
    query_balance: np.ndarray,
    balance: np.ndarray,
    relation: np.ndarray,
    rule_score: np.ndarray,
    coverage: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix of ``n`` pairs -> ``(X [shape=(n, d)], names)``.

    Parameters
    ----------
    terms : mapping of str to np.ndarray [shape=(n,)]
        The score terms (``MatchScores.terms``), each in [0, 1]; a ``learned`` term is ignored.
    stretch, semitones, tempo_ratio : np.ndarray [shape=(n,)]
        The suggested transform.
    query_balance : np.ndarray [shape=(3,) or (n, 3)]
        Low / mid / high energy fractions of the query.
    balance : np.ndarray [shape=(n, 3)]
        The candidates' fractions.
    relation : np.ndarray [shape=(n,), dtype=int]
        Key relation after the shift, index into :data:`cratedig.theory.RELATIONS`
        (``MatchScores.relation``).
    rule_score : np.ndarray [shape=(n,)]
        The rule score (``MatchScores.score``).
    coverage : np.ndarray [shape=(n,)], optional
        Share of the query's bars the candidate sounds under (``MatchScores.coverage``); 1 for
        every pair when not given (a rating stored before coverage was recorded).
    """
    names = sorted(t for t in terms if t != "learned")
    n = len(stretch)
    if any(len(terms[t]) != n for t in names) or len(relation) != n or len(rule_score) != n:
        raise ParameterError(f"every term, relation and rule score must hold {n} values")
    rel = np.asarray(relation, np.int64)
    if n and (rel.min() < 0 or rel.max() >= len(RELATIONS)):
        raise ParameterError(f"relation indices must be within 0..{len(RELATIONS) - 1}")
    diff = np.broadcast_to(np.asarray(query_balance, np.float64), (n, 3)) - np.asarray(
        balance, np.float64
    ).reshape(n, 3)
    cols = [np.asarray(terms[t], np.float64) for t in names] + [
        np.asarray(rule_score, np.float64),
        np.abs(np.asarray(stretch, np.float64)),
        np.abs(np.asarray(semitones, np.float64)) / 6.0,
        (np.asarray(tempo_ratio, np.float64) != 1.0).astype(np.float64),
        *diff.T,
        *np.abs(diff).T,
        *(rel[None, :] == np.arange(len(RELATIONS))[:, None]).astype(np.float64),
        np.ones(n) if coverage is None else np.asarray(coverage, np.float64).reshape(n),
    ]
    return np.stack(cols, axis=1) if n else np.zeros((0, len(cols))), [*names, *EXTRA_FEATURES]


@dataclass
class Ranker:
    """A trained logistic ranker: ``learned = sigmoid(((X - mean) / scale) @ coef + intercept)``."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    blend: float = DEFAULT_BLEND
    metrics: dict[str, Any] = field(default_factory=dict)
    #: A LambdaRank tree ensemble (:func:`train_ranker` ``model="lambdarank"``): the learned
    #: term is then ``sigmoid(slope * trees(X) + intercept)`` and mean/scale/coef are unused.
    trees: Trees | None = None
    slope: float = 1.0

    def learned(self, X: np.ndarray, names: list[str]) -> np.ndarray:
        """The learned term in [0, 1] of each row of ``X`` (columns named ``names``).

        A model trained before a feature was added reads only its own columns (by name), so it
        still means what it meant; a model that needs a column ``names`` lacks is refused.
        """
        names = list(names)
        X = np.asarray(X, np.float64)
        if names != self.features:
            missing = [f for f in self.features if f not in names]
            if missing:
                raise ParameterError(f"features {names} lack the model's {missing}")
            X = X[:, [names.index(f) for f in self.features]]
        if self.trees is not None:
            z = self.slope * self.trees.predict(X) + self.intercept
        else:
            z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            # A logistic model keeps format 2, which older readers still use rightly.
            "format": MODEL_FORMAT if self.trees is not None else OLDEST_FORMAT,
            "kind": MODEL_KIND,
            "features": self.features,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "blend": self.blend,
            "metrics": self.metrics,
        }
        if self.trees is not None:
            doc["trees"] = self.trees.to_json()
            doc["slope"] = self.slope
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Ranker:
        """Rebuild from :meth:`to_json`; raises ParameterError on anything malformed."""
        if not isinstance(doc, Mapping) or doc.get("kind") != MODEL_KIND:
            raise ParameterError("not a cratedig ranker model")
        fmt = doc.get("format")
        if not isinstance(fmt, int) or fmt > MODEL_FORMAT:
            raise ParameterError(
                f"model format {fmt!r} is newer than this cratedig's {MODEL_FORMAT}"
            )
        if fmt < OLDEST_FORMAT:
            raise ParameterError(
                f"model format {fmt} was trained on older features: retrain (cratedig train)"
            )
        try:
            features = [str(f) for f in doc["features"]]
            arrays = [np.asarray(doc[k], np.float64) for k in ("mean", "scale", "coef")]
            intercept, blend = float(doc["intercept"]), float(doc["blend"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"malformed ranker model: {exc}") from exc
        d = len(features)
        if any(a.shape != (d,) or not np.all(np.isfinite(a)) for a in arrays) or not (
            math.isfinite(intercept) and 0.0 <= blend <= 1.0 and np.all(arrays[1] > 0)
        ):
            raise ParameterError("malformed ranker model: arrays, intercept or blend out of range")
        mean, scale, coef = arrays
        trees, slope = None, 1.0
        if doc.get("trees") is not None:
            trees = Trees.from_json(doc["trees"], d)
            try:
                slope = float(doc["slope"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ParameterError(f"malformed ranker model: {exc}") from exc
            if not (math.isfinite(slope) and slope > 0):
                raise ParameterError("malformed ranker model: slope out of range")
        metrics = dict(doc.get("metrics") or {})
        return cls(features, mean, scale, coef, intercept, blend, metrics, trees, slope)


def _lists(queries: np.ndarray) -> list[np.ndarray]:
    """The rows of each query (ids sorted), in one sort: no pass over all rows per query."""
    if len(queries) == 0:
        return []
    _, inverse = np.unique(queries, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)


def _query_pairs(
    Z: np.ndarray, y: np.ndarray, queries: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Differences ``Z[positive] - Z[negative]`` of every pair within one query, and weights.

    Each query's pairs together weigh the mean weight of its rows: a query with 200 candidates
    is one list to rank, as much evidence as one with ten.
    """
    diffs: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for rows in _lists(queries):
        pos, neg = rows[y[rows] == 1], rows[y[rows] == 0]
        if not len(pos) or not len(neg):
            continue
        d = (Z[pos][:, None, :] - Z[neg][None, :, :]).reshape(-1, Z.shape[1])
        w = (weight[pos][:, None] * weight[neg][None, :]).ravel()
        diffs.append(d)
        weights.append(w / w.sum() * float(weight[rows].mean()))
    if not diffs:
        return np.zeros((0, Z.shape[1])), np.zeros(0)
    return np.vstack(diffs), np.concatenate(weights)


def train_ranker(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    blend: float = DEFAULT_BLEND,
    sample_weight: np.ndarray | None = None,
    queries: np.ndarray | None = None,
    c: float = 1.0,
    model: str = "logistic",
    seed: int = 0,
) -> Ranker:
    """Fit a ranker on labelled pairs (label 1: layers well).

    ``model="lambdarank"`` (with ``queries``): a LambdaRank ensemble of small regression trees
    (:data:`LAMBDARANK_PARAMS`, LightGBM, ``seed`` for its subsampling) that orders each query's
    candidates for NDCG, weighing the top of the list most; its score is calibrated onto the
    rule score's scale as the pairwise fit's is, and stored as plain arrays
    (:mod:`cratedig.learn.trees`). It can learn what the linear fit cannot: that a feature
    matters only where another is high (a harmonic fit counts for more without a shift).
    Without queries it falls back to the logistic fits below.

    With ``queries`` (the query phrase of each row) the fit is **pairwise within a query**: a
    logistic regression without intercept on ``x_positive - x_negative`` of every (positive,
    negative) pair of one query, each query weighing one list. What the ranker must do is order
    one query's candidates, and a pointwise fit over all rows does something else: with
    thousands of easy negatives (other songs whose tempo or shift the rules already price) it
    learns what tells them from the positives and gives the terms that decide the top of a list
    (the harmonic fit against the same song's accompaniment at other bars, or another song's
    phrase in the same key) less than the rules do (issue 10: on the real stems' dev lists,
    top-1 0.371 -> 0.276 for the pointwise fit, cross-validated by song). The rule score is the
    prior: its column is scaled up :data:`RULE_PRIOR_PAIRWISE` times before the L2 penalty, so
    the model starts from the rules and every other feature has to earn its weight on the
    lists. The pairwise direction is then calibrated onto the rule score's scale
    (``logit(rule) ~ a * z + b`` by least squares over rows the rules accept), so that the
    learned term reads like a score, fit labels keep their meaning and :func:`blend` mixes
    like with like. A query whose rows hold one label only gives no pairs; when no query holds
    both, the fit falls back to the pointwise one (ratings of separate queries).

    Without ``queries`` the fit is pointwise: a class-balanced logistic regression on
    standardised features, the learned term the probability of label 1.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
        :func:`pair_features`.
    y : np.ndarray [shape=(n,)]
        0 or 1; both classes needed.
    names : list of str
        Column names of ``X``.
    blend : float in [0, 1]
        Share of the learned term in :func:`blend`.
    sample_weight : np.ndarray [shape=(n,)], optional
        E.g. to give human ratings more weight than self-supervised pairs.
    queries : np.ndarray [shape=(n,)], optional
        The query of each row (any hashable ids): pairwise fit within queries.
    c : float > 0
        Inverse L2 regularisation strength (pairwise: per query list of evidence).
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, np.float64)
    y = np.asarray(y).astype(int)
    if X.ndim != 2 or len(X) != len(y) or X.shape[1] != len(names):
        raise ParameterError(f"X {X.shape}, y {y.shape} and {len(names)} names do not agree")
    if set(np.unique(y)) != {0, 1}:
        raise ParameterError("training needs positive (1) and negative (0) pairs")
    if not 0.0 <= blend <= 1.0:
        raise ParameterError(f"blend={blend} must be within 0..1")
    if queries is not None and len(queries) != len(y):
        raise ParameterError(f"queries hold {len(queries)} ids for {len(y)} rows")
    if model not in RANKER_MODELS:
        raise ParameterError(f"model={model!r} must be one of {RANKER_MODELS}")
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if model == "lambdarank" and queries is not None:
        tree_model = _fit_lambdarank(X, y, names, np.asarray(queries), weight, blend, seed)
        if tree_model is not None:
            return tree_model
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    metrics: dict[str, Any] = {"pairs": int(len(y)), "positives": int(y.sum())}
    if queries is not None:
        if "rule" in names:
            scale[names.index("rule")] /= RULE_PRIOR_PAIRWISE
        Z = (X - mean) / scale
        D, w = _query_pairs(Z, y, np.asarray(queries), weight)
        if len(D):
            lr = LogisticRegression(C=c, fit_intercept=False, max_iter=2000)
            lr.fit(np.vstack([D, -D]), np.r_[np.ones(len(D)), np.zeros(len(D))],
                   sample_weight=np.r_[w, w])  # fmt: skip
            coef = lr.coef_[0].astype(np.float64)
            a, b = _calibrate(Z @ coef, X[:, names.index("rule")] if "rule" in names else None, y)
            metrics.update(objective="pairwise", queries=int(len(np.unique(queries))))
            return Ranker(list(names), mean, scale, a * coef, b, blend, metrics)
        scale = np.where(X.std(axis=0) > 1e-9, X.std(axis=0), 1.0)
    pointwise = LogisticRegression(C=c, max_iter=1000, class_weight="balanced")
    pointwise.fit((X - mean) / scale, y, sample_weight=sample_weight)
    metrics["objective"] = "pointwise"
    return Ranker(
        list(names),
        mean,
        scale,
        pointwise.coef_[0].astype(np.float64),
        float(pointwise.intercept_[0]),
        blend,
        metrics,
    )


def _fit_lambdarank(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    queries: np.ndarray,
    weight: np.ndarray,
    blend: float,
    seed: int,
) -> Ranker | None:
    """:func:`train_ranker`'s LambdaRank fit; None when no query holds both labels, or when
    LightGBM cannot be loaded (one warning; the pairwise logistic fit is used instead)."""
    try:
        import lightgbm as lgb
    except (ImportError, OSError) as exc:  # e.g. OpenMP's libgomp missing on the system
        log.warning("LightGBM unavailable (%s): training the pairwise logistic ranker", exc)
        return None

    _, inverse = np.unique(queries, return_inverse=True)
    positives = np.bincount(inverse, weights=(y == 1).astype(np.float64))
    both = (positives > 0) & (positives < np.bincount(inverse))
    keep = both[inverse]
    if not keep.any():
        return None
    order = np.flatnonzero(keep)[np.argsort(inverse[keep], kind="stable")]  # lists contiguous
    sizes = np.bincount(inverse[order])
    sizes = sizes[sizes > 0]
    ranker = lgb.LGBMRanker(
        objective="lambdarank", random_state=seed, n_jobs=1, verbose=-1, **LAMBDARANK_PARAMS
    )
    ranker.fit(X[order], y[order], group=sizes, sample_weight=weight[order])
    trees = from_lightgbm(ranker.booster_)
    z = trees.predict(X)
    a, b = _calibrate(z, X[:, names.index("rule")] if "rule" in names else None, y)
    d = X.shape[1]
    metrics = {
        "pairs": int(len(y)),
        "positives": int(y.sum()),
        "objective": "lambdarank",
        "queries": int(len(sizes)),
        "trees": int(len(trees.roots)),
    }
    return Ranker(
        list(names), np.zeros(d), np.ones(d), np.zeros(d), b, blend, metrics, trees=trees, slope=a
    )


def _calibrate(z: np.ndarray, rule: np.ndarray | None, y: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` putting ``sigmoid(a * z + b)`` on the rule score's scale.

    Least squares of ``logit(rule)`` on ``z`` over the rows the rules accept (rule > 0); the
    slope is kept positive (the ranking is the pairwise fit's). Without a rule column, or with
    too few accepted rows, a 1-D logistic regression of the labels on ``z``.
    """
    if rule is not None:
        ok = rule > 0
        if ok.sum() >= 3 and np.ptp(z[ok]) > 1e-12:
            r = np.clip(rule[ok], 1e-4, 1 - 1e-4)
            a, b = np.polyfit(z[ok], np.log(r / (1 - r)), 1)
            if a > 0:
                return float(a), float(b)
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(max_iter=1000, class_weight="balanced").fit(z[:, None], y)
    return float(max(m.coef_[0, 0], 1e-6)), float(m.intercept_[0])


@dataclass
class RatedList:
    """The rated candidates of one query phrase.

    Attributes
    ----------
    X : np.ndarray [shape=(m, d)]
        :func:`pair_features` of the rated pairs.
    rule : np.ndarray [shape=(m,)]
        Their rule scores.
    scores : np.ndarray [shape=(m,)]
        The ratings, 1..5 (``cratedig rate``).
    group : str
        The query's track: cross-validation never splits a track's lists.
    """

    X: np.ndarray
    rule: np.ndarray
    scores: np.ndarray
    group: str


def _fit_soft(
    X: np.ndarray, target: np.ndarray, weight: np.ndarray, names: list[str], c: float
) -> Ranker:
    """Logistic regression on soft labels in [0, 1]: each row twice, as 1 and as 0, weighed.

    Features are not standardised on the rows: rated rows are the top of each list, where a
    column such as ``half_double`` hardly varies, and its tiny spread would blow up on the rest
    of the list. Every feature is already on a unit scale (terms and shares in [0, 1],
    differences in [-1, 1]); the rule score is scaled up by :data:`RULE_PRIOR`, so that the L2
    penalty lets the model lean on it and asks more evidence for every other feature.
    """
    from sklearn.linear_model import LogisticRegression

    mean = np.zeros(X.shape[1])
    scale = np.ones(X.shape[1])
    if "rule" in names:
        scale[names.index("rule")] = 1.0 / RULE_PRIOR
    Z = (X - mean) / scale
    w = np.r_[weight * target, weight * (1.0 - target)]
    y = np.r_[np.ones(len(X), int), np.zeros(len(X), int)]
    keep = w > 0
    if len(set(y[keep])) < 2:
        raise ParameterError("training needs good and bad examples (ratings 4-5 and 1-2)")
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(np.vstack([Z, Z])[keep], y[keep], sample_weight=w[keep])
    return Ranker(
        list(names), mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0])
    )


def _training_rows(
    rated: list[RatedList],
    pairs_X: np.ndarray | None,
    pairs_y: np.ndarray | None,
    rating_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked features, soft targets and weights of ratings (and stem pairs)."""
    parts_x = [r.X for r in rated]
    parts_t = [(np.asarray(r.scores, np.float64) - 1.0) / 4.0 for r in rated]
    n_ratings = sum(len(r.scores) for r in rated)
    n_pairs = 0 if pairs_X is None else len(pairs_X)
    # Ratings are the user's own taste: together they weigh at least as much as every stem pair.
    w_rating = max(rating_weight, n_pairs / max(n_ratings, 1))
    parts_w = [np.full(len(r.scores), w_rating) for r in rated]
    if pairs_X is not None and pairs_y is not None and n_pairs:
        y = np.asarray(pairs_y, np.float64)
        pos = max(float(y.sum()), 1.0)
        neg = max(float(len(y) - y.sum()), 1.0)
        parts_x.append(np.asarray(pairs_X, np.float64))
        parts_t.append(y)
        parts_w.append(np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg)))
    return np.vstack(parts_x), np.concatenate(parts_t), np.concatenate(parts_w)


def train_from_ratings(
    rated: list[RatedList],
    names: list[str],
    *,
    pairs_X: np.ndarray | None = None,
    pairs_y: np.ndarray | None = None,
    rating_weight: float = RATING_WEIGHT,
    c: float = 1.0,
    folds: int = 3,
    k: int = 10,
) -> Ranker:
    """Fit a ranker on 1-5 ratings (and stem pairs) and choose its blend weight from evidence.

    Each rating is a soft label ``(score - 1) / 4``; together the ratings weigh at least as much
    as all stem pairs (``pairs_X``, ``pairs_y``: labelled 1/0, classes balanced). The blend
    weight is chosen by ``folds``-fold cross-validation over the rated lists grouped by query
    track: among :data:`BLEND_GRID`, the blend that ranks the held-out lists best (mean NDCG@k
    with relevance ``score - 1``) counts only when its gain over the rule score (weight 0)
    exceeds :data:`BLEND_SE` standard errors over the lists; then the smallest weight within
    one standard error of it is taken, shrunk by ``n / (n + BLEND_HALF_RATINGS)`` for ``n``
    ratings. Otherwise the weight is 0: the score stays the rule score.

    Parameters
    ----------
    rated : list of RatedList
    names : list of str
        Column names (:func:`pair_features`).
    pairs_X, pairs_y : np.ndarray, optional
        Self-supervised pairs and their 0/1 labels.
    rating_weight : float > 0
        Least weight of one rating against one stem pair.
    c : float > 0
        Inverse L2 regularisation strength.
    folds : int >= 2
    k : int >= 1
        Cut-off of the NDCG that chooses the blend.

    Raises
    ------
    ParameterError
        No ratings, features that disagree with ``names``, or only one kind of example.
    """
    if not rated:
        raise ParameterError("no ratings to learn from")
    d = len(names)
    for r in rated:
        if r.X.ndim != 2 or r.X.shape[1] != d or not (len(r.X) == len(r.rule) == len(r.scores)):
            raise ParameterError(f"a rated list's X {r.X.shape} does not fit {d} feature names")
        sc = np.asarray(r.scores, np.float64)
        if len(sc) and (sc.min() < 1 or sc.max() > 5):
            raise ParameterError("ratings must be within 1..5")
    if pairs_X is not None and np.asarray(pairs_X).shape[1:] != (d,):
        raise ParameterError(f"stem pairs have {np.asarray(pairs_X).shape[1:]} columns, need {d}")
    if folds < 2:
        raise ParameterError(f"folds={folds} must be >= 2")
    X, t, w = _training_rows(rated, pairs_X, pairs_y, rating_weight)
    ranker = _fit_soft(X, t, w, names, c)
    n_ratings = sum(len(r.scores) for r in rated)
    groups = sorted({r.group for r in rated})
    grid = np.asarray(BLEND_GRID)
    ndcg = np.full(len(grid), np.nan)
    table = np.zeros((0, len(grid)))
    if len(groups) >= 2:
        order = {g: i % min(folds, len(groups)) for i, g in enumerate(groups)}
        per_list: list[np.ndarray] = []
        for f in sorted(set(order.values())):
            held = [r for r in rated if order[r.group] == f]
            kept = [r for r in rated if order[r.group] != f]
            try:
                probe = _fit_soft(*_training_rows(kept, pairs_X, pairs_y, rating_weight), names, c)
            except ParameterError:
                continue  # this fold's training part holds one kind of rating only
            for r in held:
                learned = probe.learned(r.X, names)
                rel = np.asarray(r.scores, np.float64) - 1.0
                per_list.append(
                    np.array(
                        [ndcg_of_scores(blend(r.rule, learned, weight=x), rel, k) for x in grid]
                    )
                )
        if per_list:
            table = np.array(per_list)
            table = table[~np.isnan(table).any(axis=1)]
            if len(table):
                ndcg = table.mean(axis=0)
    # The best of eleven noisy means is optimistic: kept only when its gain over the rule score
    # stands out of the lists' noise, then the smallest weight within one standard error of it
    # (a learned term fitted on few ratings is a risk).
    best = _weight_of(table, BLEND_GRID) if np.isfinite(ndcg).all() else 0.0
    ranker.blend = best * n_ratings / (n_ratings + BLEND_HALF_RATINGS)
    ranker.metrics = {
        "ratings": int(n_ratings),
        "rated_queries": len(rated),
        "stem_pairs": 0 if pairs_X is None else len(pairs_X),
        "cv_ndcg_rule": None if not np.isfinite(ndcg[0]) else round(float(ndcg[0]), 4),
        "cv_ndcg_best": None if not np.isfinite(ndcg).all() else round(float(ndcg.max()), 4),
        "cv_blend": best,
        "blend": round(ranker.blend, 4),
    }
    return ranker


#: Blend weights tried on held-out pairs by :func:`evidence_blend`.
EVIDENCE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Folds (by song) of :func:`cv_evidence_blend`.
EVIDENCE_FOLDS = 4
#: Shuffles of the folds whose reciprocal ranks :func:`cv_evidence_blend` averages.
EVIDENCE_REPEATS = 3


def _reciprocal_ranks(
    rule_score: np.ndarray, learned: np.ndarray, label: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Per query holding a partner (label > 0) and a non-partner: the reciprocal rank of its
    first partner under each blend of :data:`EVIDENCE_GRID` (queries x weights)."""
    rule_score, learned = np.asarray(rule_score, np.float64), np.asarray(learned, np.float64)
    label, groups = np.asarray(label), np.asarray(groups)
    rows = []
    for m in _lists(groups):
        pos = label[m] > 0
        if not pos.any() or pos.all():
            continue
        row = []
        for x in EVIDENCE_GRID:
            order = np.argsort(-blend(rule_score[m], learned[m], weight=x), kind="stable")
            row.append(1.0 / (1 + int(np.flatnonzero(pos[order])[0])))
        rows.append(row)
    return np.array(rows, np.float64).reshape(-1, len(EVIDENCE_GRID))


def evidence_blend(
    rule_score: np.ndarray, learned: np.ndarray, label: np.ndarray, groups: np.ndarray
) -> float:
    """Blend weight chosen on held-out labelled pairs (stem pairs of songs not trained on).

    The evidence is each query's reciprocal rank of its partner under every weight of
    :data:`EVIDENCE_GRID` (a query's pairs share its partner and its list: the sample is the
    queries, not the pairs). The best mean counts only where its gain over the rule score
    (weight 0), paired query by query, exceeds :data:`BLEND_SE` standard errors; then the
    smallest weight within one standard error of the best is taken (the one-standard-error
    rule, as :func:`train_from_ratings` chooses). Else 0: a learned term that has not shown it
    ranks better gets no say.
    """
    return _weight_of(_reciprocal_ranks(rule_score, learned, label, groups))


def _weight_of(table: np.ndarray, grid: tuple[float, ...] = EVIDENCE_GRID) -> float:
    """The blend weight a (lists x weights of ``grid``) table of per-list quality chooses: the
    best mean counts only where its paired gain over weight 0 exceeds :data:`BLEND_SE`
    standard errors; then the smallest weight within one standard error of the best (never 0).
    0 otherwise. Shared by the stem pairs' and the ratings' evidence."""
    if len(table) < 2:
        return 0.0
    mean = table.mean(axis=0)
    i = int(np.argmax(mean))  # the first maximum: the smallest weight
    gain = table[:, i] - table[:, 0]
    se = float(gain.std(ddof=1) / math.sqrt(len(gain)))
    if not gain.mean() > max(1e-9, BLEND_SE * se):
        return 0.0
    j = int(np.flatnonzero(mean >= mean[i] - se)[0])
    return float(grid[max(j, 1)])


def cv_evidence_blend(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    songs: np.ndarray,
    queries: np.ndarray,
    *,
    rule: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    folds: int = EVIDENCE_FOLDS,
    repeats: int = EVIDENCE_REPEATS,
    seed: int = 0,
    model: str = "logistic",
) -> tuple[float, dict[str, Any]]:
    """The blend weight of stem pairs by cross-validation over songs.

    Each song's pairs are scored by a probe ranker trained without it (``folds`` folds of the
    songs), ``repeats`` times with the songs shuffled anew (seeds ``seed``, ``seed + 1``...);
    each query's reciprocal ranks are averaged over the repeats and :func:`evidence_blend`'s
    rule judges every query at once. All the songs are evidence, not a quarter of them: on the
    real-stems bench's dev lists (112 queries of 30 songs) the weight 0.25 gains 0.04 in MRR
    at three standard errors, where a quarter's 18-26 queries showed nothing beyond their noise;
    one shuffle of the folds in six showed no gain there, hence the repeats.

    ``model``: what the probes are (:func:`train_ranker`'s ``model``, as the ranker to be
    blended). ``rule``: the rule score of each pair (default: the ``"rule"`` column of ``X``). Returns
    the weight and metrics: ``evidence_queries`` and the out-of-fold pairwise accuracy of the
    rule score and the learned term (``nan`` where no fold could be trained).
    """
    y, songs, queries = np.asarray(y), np.asarray(songs), np.asarray(queries)
    if rule is None:
        rule = np.asarray(X)[:, list(names).index("rule")]
    rule = np.asarray(rule, np.float64)
    ids = sorted({str(s) for s in songs})
    out: dict[str, Any] = {"evidence_songs": len(ids), "evidence_queries": 0}
    if len(ids) < 2:
        return 0.0, out
    tables, acc_learned = [], []
    for r in range(max(1, repeats)):
        perm = np.random.default_rng(seed + r).permutation(ids)
        fold_of = {s: i % min(folds, len(ids)) for i, s in enumerate(perm)}
        fold = np.array([fold_of[str(s)] for s in songs])
        learned = np.full(len(y), np.nan)
        for k in np.unique(fold):
            train = fold != k
            if len(set(y[train].tolist())) < 2:
                continue
            w = None if sample_weight is None else np.asarray(sample_weight)[train]
            probe = train_ranker(
                X[train], y[train], names, sample_weight=w, queries=queries[train], model=model
            )
            learned[~train] = probe.learned(X[~train], names)
        if not np.isfinite(learned).all():  # a fold held one kind of label only
            continue
        tables.append(_reciprocal_ranks(rule, learned, y, queries))
        acc_learned.append(pairwise_accuracy(learned, y, queries))
    if not tables:
        return 0.0, out
    table = np.mean(tables, axis=0)
    out["evidence_queries"] = len(table)
    out["pairwise_accuracy_rule"] = pairwise_accuracy(rule, y, queries)
    out["pairwise_accuracy_learned"] = float(np.mean(acc_learned))
    if len(table):
        out["cv_mrr"] = {
            f"{x:g}": round(float(v), 4)
            for x, v in zip(EVIDENCE_GRID, table.mean(axis=0), strict=True)
        }
    return _weight_of(table), out


def blend(rule_score: np.ndarray, learned: np.ndarray | None, *, weight: float) -> np.ndarray:
    """Final score: ``(1 - weight) * rule + weight * learned``; exactly the rule without a model.

    Rejected candidates (rule score 0: the rules are hard limits) stay at 0.
    """
    rule = np.asarray(rule_score, np.float64)
    if learned is None:
        return rule
    out = (1.0 - weight) * rule + weight * np.asarray(learned, np.float64)
    return np.where(rule > 0.0, out, 0.0)


def save_ranker(ranker: Ranker, path: str | os.PathLike[str]) -> Path:
    """Write the model as JSON, atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        Path(tmp).write_text(json.dumps(ranker.to_json()), encoding="utf-8")
    return p


def load_ranker(path: str | os.PathLike[str]) -> Ranker | None:
    """The model at ``path``, or None with one warning when missing, corrupt or too new."""
    try:
        return Ranker.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ParameterError) as exc:
        log.warning("ranker model %s unusable (%s): using the rule score", path, exc)
        return None
