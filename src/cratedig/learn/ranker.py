"""A learned ranker over pair features: the ``learned`` term of the match contract.

Features of a (query, candidate) pair are every score term of :mod:`cratedig.match.scoring`
plus differences after the transform (size of the stretch and of the shift, half/double time,
low/mid/high balance of the query minus the candidate's). ``match`` computes them and asks this
module for the term; this module never imports ``match``.

The model is a logistic regression on standardised features (scikit-learn), trained on labelled
pairs (self-supervised stem pairs, :mod:`cratedig.learn.pairs`, and ratings mapped to labels).
It is stored as **JSON** (feature names, means, scales, coefficients, intercept, blend weight,
format version): loading a model file cannot run code, as a pickle could. A corrupt file, or
one written by a newer format, gives one warning and no model, and the score is then exactly the
rule score (:func:`blend`).
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

log = logging.getLogger("cratedig.learn")

#: Version of the JSON layout; a file with a larger one is refused (written by a newer cratedig).
MODEL_FORMAT = 1
MODEL_KIND = "ranker"
#: Share of the learned term in the blended score by default: the rules keep the larger say
#: until the model has shown, on held-out songs, that it ranks better.
DEFAULT_BLEND = 0.5
#: Extra features beside the score terms, in this order.
EXTRA_FEATURES: tuple[str, ...] = (
    "abs_stretch",
    "abs_semitones",
    "half_double",
    "low_diff",
    "mid_diff",
    "high_diff",
)


def pair_features(
    terms: Mapping[str, np.ndarray],
    *,
    stretch: np.ndarray,
    semitones: np.ndarray,
    tempo_ratio: np.ndarray,
    query_balance: np.ndarray,
    balance: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix of ``n`` pairs -> ``(X [shape=(n, d)], names)``.

    Parameters
    ----------
    terms : mapping of str to np.ndarray [shape=(n,)]
        The score terms (``MatchScores.terms``), each in [0, 1].
    stretch, semitones, tempo_ratio : np.ndarray [shape=(n,)]
        The suggested transform.
    query_balance : np.ndarray [shape=(3,) or (n, 3)]
        Low / mid / high energy fractions of the query.
    balance : np.ndarray [shape=(n, 3)]
        The candidates' fractions.
    """
    names = sorted(terms)
    n = len(stretch)
    if any(len(terms[t]) != n for t in names):
        raise ParameterError(f"every term must hold {n} values (one per pair)")
    diff = np.broadcast_to(np.asarray(query_balance, np.float64), (n, 3)) - np.asarray(
        balance, np.float64
    ).reshape(n, 3)
    cols = [np.asarray(terms[t], np.float64) for t in names] + [
        np.abs(np.asarray(stretch, np.float64)),
        np.abs(np.asarray(semitones, np.float64)) / 6.0,
        (np.asarray(tempo_ratio, np.float64) != 1.0).astype(np.float64),
        diff[:, 0],
        diff[:, 1],
        diff[:, 2],
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

    def learned(self, X: np.ndarray, names: list[str]) -> np.ndarray:
        """The learned term in [0, 1] of each row of ``X`` (columns named ``names``)."""
        if list(names) != self.features:
            raise ParameterError(f"features {names} differ from the model's {self.features}")
        z = ((np.asarray(X, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "kind": MODEL_KIND,
            "features": self.features,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "blend": self.blend,
            "metrics": self.metrics,
        }

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
        return cls(features, mean, scale, coef, intercept, blend, dict(doc.get("metrics") or {}))


def train_ranker(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    blend: float = DEFAULT_BLEND,
    sample_weight: np.ndarray | None = None,
    c: float = 1.0,
) -> Ranker:
    """Fit a logistic ranker on labelled pairs (label 1: layers well).

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
    c : float > 0
        Inverse L2 regularisation strength.
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
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, max_iter=1000, class_weight="balanced")
    model.fit((X - mean) / scale, y, sample_weight=sample_weight)
    return Ranker(
        list(names),
        mean,
        scale,
        model.coef_[0].astype(np.float64),
        float(model.intercept_[0]),
        blend,
        {"pairs": int(len(y)), "positives": int(y.sum())},
    )


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
