"""Ranking measures: hand-computed cases, including the edge cases that must not be guessed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cratedig.learn import metrics


def test_ndcg_is_one_for_the_ideal_order_and_lower_otherwise() -> None:
    assert metrics.ndcg_at_k([3, 2, 0], 10) == pytest.approx(1.0)
    worse = metrics.ndcg_at_k([0, 2, 3], 10)
    # DCG = 3/log2(3) + 7/log2(4); ideal = 7 + 3/log2(3)
    assert worse == pytest.approx((3 / math.log2(3) + 7 / 2) / (7 + 3 / math.log2(3)))
    assert math.isnan(metrics.ndcg_at_k([0, 0], 10))


def test_ndcg_counts_relevant_items_left_outside_the_list() -> None:
    # one relevant item exists but the list ranked only irrelevant ones
    assert metrics.ndcg_at_k([0, 0], 10, all_relevances=[0, 0, 1]) == 0.0
    assert metrics.ndcg_of_scores(np.array([0.1, 0.9, 0.5]), np.array([1, 0, 0])) == pytest.approx(
        1 / math.log2(4)
    )


def test_single_relevant_measures_match_their_definitions() -> None:
    ranks = [1, 2, 11, math.inf]
    assert metrics.top_k_rate(ranks, 1) == 0.25
    assert metrics.top_k_rate(ranks, 10) == 0.5
    assert metrics.mean_reciprocal_rank(ranks) == pytest.approx((1 + 0.5 + 1 / 11 + 0) / 4)
    assert metrics.single_relevant_ndcg(ranks, 10) == pytest.approx((1 + 1 / math.log2(3)) / 4)


def test_pairwise_accuracy_only_compares_within_a_group() -> None:
    score = np.array([0.9, 0.1, 0.5, 0.5, 0.0])
    label = np.array([1, 0, 1, 0, 1])
    groups = np.array([0, 0, 1, 1, 2])
    # group 0 right, group 1 a tie (half), group 2 has nothing to compare
    assert metrics.pairwise_accuracy(score, label, groups) == pytest.approx(0.75)
    assert math.isnan(metrics.pairwise_accuracy(score[4:], label[4:], groups[4:]))
