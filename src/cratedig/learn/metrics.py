"""Ranking-quality measures shared by the benches, ``cratedig evaluate`` and the listener loop.

All take plain numpy arrays and return floats (``nan`` when there is nothing to measure, never a
made-up value). Conventions follow Järvelin & Kekäläinen (2002) for DCG with graded gains
``2**rel - 1`` and a ``log2(rank + 1)`` discount; ranks are 1-based.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def dcg_at_k(relevance_in_rank_order: Sequence[float] | np.ndarray, k: int = 10) -> float:
    """Discounted cumulative gain of the first ``k`` items, graded gains ``2**rel - 1``."""
    rel = np.asarray(relevance_in_rank_order, dtype=float)[:k]
    if rel.size == 0:
        return 0.0
    discounts = np.log2(np.arange(2, rel.size + 2))
    return float(np.sum((2.0**rel - 1.0) / discounts))


def ndcg_at_k(
    relevance_in_rank_order: Sequence[float] | np.ndarray,
    k: int = 10,
    *,
    all_relevances: Sequence[float] | np.ndarray | None = None,
) -> float:
    """NDCG@k of one ranked list.

    ``all_relevances`` are the relevances of every candidate that could have been ranked
    (default: the ranked list itself); the ideal DCG sorts them. ``nan`` when no candidate is
    relevant at all.
    """
    pool = np.asarray(
        relevance_in_rank_order if all_relevances is None else all_relevances, dtype=float
    )
    ideal = dcg_at_k(np.sort(pool)[::-1], k)
    if ideal <= 0:
        return math.nan
    return dcg_at_k(relevance_in_rank_order, k) / ideal


def ndcg_of_scores(score: np.ndarray, relevance: np.ndarray, k: int = 10) -> float:
    """NDCG@k of ranking ``relevance`` by ``score`` (descending; ties keep the given order)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    rel = np.asarray(relevance, dtype=float)
    return ndcg_at_k(rel[order], k, all_relevances=rel)


def reciprocal_rank(rank: float) -> float:
    """1 / rank of the first relevant item (1-based); 0 when it was not found (``inf``/nan)."""
    return 0.0 if not math.isfinite(rank) or rank < 1 else 1.0 / rank


def mean_reciprocal_rank(ranks: Iterable[float]) -> float:
    """MRR over queries, given each query's 1-based rank of its first relevant item."""
    rr = [reciprocal_rank(r) for r in ranks]
    return float(np.mean(rr)) if rr else math.nan


def single_relevant_ndcg(ranks: Iterable[float], k: int = 10) -> float:
    """Mean NDCG@k when each query has exactly one relevant item at the given 1-based rank."""
    r = np.asarray(list(ranks), dtype=float)
    if r.size == 0:
        return math.nan
    ok = np.isfinite(r) & (r <= k)
    return float(np.mean(np.where(ok, 1.0 / np.log2(np.where(ok, r, 1.0) + 1.0), 0.0)))


def top_k_rate(ranks: Iterable[float], k: int = 1) -> float:
    """Share of queries whose first relevant item is within the top ``k`` (recall@k, top-1)."""
    r = np.asarray(list(ranks), dtype=float)
    return float(np.mean(np.isfinite(r) & (r <= k))) if r.size else math.nan


def pairwise_accuracy(score: np.ndarray, label: np.ndarray, groups: np.ndarray) -> float:
    """Share of (better, worse) pairs within one group that ``score`` orders the right way.

    ``label`` may be binary or graded; only pairs with different labels in the same group count,
    and ties in ``score`` count as half right. ``nan`` when no group has two different labels.
    """
    score = np.asarray(score, dtype=float)
    label = np.asarray(label, dtype=float)
    groups = np.asarray(groups)
    right = total = 0.0
    for g in np.unique(groups):
        m = groups == g
        s, y = score[m], label[m]
        better = y[:, None] > y[None, :]
        if not better.any():
            continue
        diff = s[:, None] - s[None, :]
        right += float(np.sum(better & (diff > 0)) + 0.5 * np.sum(better & (diff == 0)))
        total += float(np.sum(better))
    return right / total if total else math.nan
