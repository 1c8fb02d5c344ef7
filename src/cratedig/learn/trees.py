"""Boosted regression trees as plain arrays: fitted by LightGBM, read and evaluated by numpy.

The learned ranker (:mod:`cratedig.learn.ranker`) can be a LambdaRank ensemble of small trees
(Burges 2010; LightGBM's ``lambdarank`` objective). LightGBM fits it; what is stored and read
back is only numbers: per node a feature index, a threshold and two child indices, per leaf a
value. Loading a model therefore runs no code (no pickle, no LightGBM model file parsed by a
native library), matching needs no LightGBM, and a damaged file is refused by
:func:`check_trees` instead of looping or indexing out of range.

Layout (:class:`Trees`): the nodes of every tree in pre-order, one array per attribute; a leaf
has ``feature == -1``; ``roots`` holds each tree's first node. Every child index is larger than
its parent's, so evaluation always ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cratedig.errors import ParameterError

#: Most nodes a stored ensemble may hold (a damaged or hostile file is refused, not evaluated).
MAX_NODES = 200_000
#: Rows evaluated together by :meth:`Trees.predict` (bounds its memory: rows x trees nodes).
CHUNK = 4096


@dataclass(frozen=True)
class Trees:
    """An additive ensemble of binary regression trees: ``f(x) = sum of the leaves reached``."""

    feature: np.ndarray  # int64, -1 for a leaf
    threshold: np.ndarray  # float64: go left where x[feature] <= threshold
    left: np.ndarray  # int64 child indices (unused for a leaf)
    right: np.ndarray
    value: np.ndarray  # float64 leaf values (0 for a split)
    roots: np.ndarray  # int64

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's raw score of each row of ``X`` (its columns: the features' indices).

        Every tree descends at once, one level a step (rows in chunks of :data:`CHUNK`): a few
        numpy passes for the whole ensemble instead of a pass per tree and level.
        """
        X = np.asarray(X, np.float64)
        out = np.zeros(len(X))
        for lo in range(0, len(X), CHUNK):
            x = X[lo : lo + CHUNK]
            rows = np.arange(len(x))[:, None]
            node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
            while True:
                f = self.feature[node]
                inner = f >= 0
                if not inner.any():
                    break
                go_left = x[rows, np.where(inner, f, 0)] <= self.threshold[node]
                node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
            out[lo : lo + CHUNK] = self.value[node].sum(axis=1)
        return out

    def to_json(self) -> dict[str, list[float] | list[int]]:
        return {
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": self.value.tolist(),
            "roots": self.roots.tolist(),
        }

    @classmethod
    def from_json(cls, doc: Any, n_features: int) -> Trees:
        """Rebuild from :meth:`to_json`; ParameterError on anything malformed."""
        try:
            t = cls(
                feature=np.asarray(doc["feature"], np.int64),
                threshold=np.asarray(doc["threshold"], np.float64),
                left=np.asarray(doc["left"], np.int64),
                right=np.asarray(doc["right"], np.int64),
                value=np.asarray(doc["value"], np.float64),
                roots=np.asarray(doc["roots"], np.int64),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"malformed trees: {exc}") from exc
        check_trees(t, n_features)
        return t


def check_trees(t: Trees, n_features: int) -> None:
    """Refuse an ensemble that could index out of range, loop, or give a non-finite score."""
    n = len(t.feature)
    arrays = (t.feature, t.threshold, t.left, t.right, t.value)
    if not 0 < n <= MAX_NODES or any(a.shape != (n,) for a in arrays) or t.roots.ndim != 1:
        raise ParameterError("malformed trees: node arrays of different or impossible sizes")
    if not (np.all(np.isfinite(t.threshold)) and np.all(np.isfinite(t.value))):
        raise ParameterError("malformed trees: thresholds or leaf values that are not finite")
    if np.any(t.feature < -1) or np.any(t.feature >= n_features):
        raise ParameterError("malformed trees: a split on a feature the model does not have")
    inner = t.feature >= 0
    own = np.arange(n)[inner]
    for child in (t.left[inner], t.right[inner]):
        if np.any(child <= own) or np.any(child >= n):  # children after their parent: no loop
            raise ParameterError("malformed trees: a child index out of order or range")
    if len(t.roots) == 0 or np.any(t.roots < 0) or np.any(t.roots >= n):
        raise ParameterError("malformed trees: a root index out of range")


def from_lightgbm(booster: Any) -> Trees:
    """Flatten a fitted LightGBM booster (numerical splits ``<=`` only) into :class:`Trees`."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    roots: list[int] = []

    def add(node: dict[str, Any]) -> int:
        i = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(0.0)
        if "leaf_value" in node:
            value[i] = float(node["leaf_value"])
            return i
        if node.get("decision_type") != "<=":
            raise ParameterError(f"unsupported split {node.get('decision_type')!r}")
        feature[i] = int(node["split_feature"])
        threshold[i] = float(node["threshold"])
        left[i] = add(node["left_child"])
        right[i] = add(node["right_child"])
        return i

    for tree in booster.dump_model()["tree_info"]:
        roots.append(add(tree["tree_structure"]))
    return Trees(
        feature=np.array(feature, np.int64),
        threshold=np.array(threshold, np.float64),
        left=np.array(left, np.int64),
        right=np.array(right, np.int64),
        value=np.array(value, np.float64),
        roots=np.array(roots, np.int64),
    )
