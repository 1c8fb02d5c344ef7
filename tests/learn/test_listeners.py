"""The feedback loop with simulated listeners (reduced): held-out queries move toward a taste."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.learn.feedback import (
    LISTENERS,
    RatedList,
    candidate_lists,
    relation_counts,
    run_loop,
    split_tracks,
    synthetic_segments,
)
from cratedig.learn.ranker import EXTRA_FEATURES, train_from_ratings
from cratedig.match.batch import SegmentBatch
from cratedig.match.index import build_index

BY_NAME = {listener.name: listener for listener in LISTENERS}


@pytest.fixture(scope="module")
def lists():
    segments = synthetic_segments(70, phrases=4, seed=5)
    batch = SegmentBatch.from_segments(segments)
    index = build_index(batch)
    train_tracks, _ = split_tracks(batch.track_ids.astype(str), 0.3, seed=2)
    is_train = np.isin(batch.track_ids.astype(str), sorted(train_tracks))
    train = candidate_lists(batch.take(np.flatnonzero(is_train)), index, batch)
    test = candidate_lists(batch.take(np.flatnonzero(~is_train)), index, batch)
    return train, test


def test_the_tastes_are_expressible_and_occur_among_rule_valid_candidates(lists):
    train, test = lists
    assert {c.track for c in train}.isdisjoint({c.track for c in test})
    counts = relation_counts(train)
    for what in ("relation_same", "relation_fifth", "relation_relative", "half_or_double_time",
                 "contrast_tv_over_0.3"):  # fmt: skip
        assert counts[what] >= 50, counts
    assert all(np.all(c.rule > 0) for c in train)  # rejected candidates are never listed
    for name in ("rel_fifth", "rel_relative", "half_double", "abs_low_diff", "rule"):
        assert name in EXTRA_FEATURES


@pytest.mark.parametrize("name", ["keys", "contrast"])
def test_a_differing_taste_is_learned_on_held_out_queries(lists, name):
    train, test = lists
    result = run_loop(train, test, BY_NAME[name], checkpoints=(0, 200), seed=1)
    start, end = result.at(0), result.at(200)
    assert start.blend == start.rule  # no model yet: exactly the rule ranking
    assert end.blend >= end.rule + 0.10, (start, end)
    assert end.weight > 0
    # The control: the same loop with the learned term disabled gains nothing.
    off = run_loop(train, test, BY_NAME[name], checkpoints=(0, 200), seed=1, learn=False)
    assert off.at(200).blend == off.at(200).rule


def test_the_listener_who_agrees_with_the_rules_loses_nothing(lists):
    train, test = lists
    result = run_loop(train, test, BY_NAME["rules"], checkpoints=(0, 100, 200), seed=1)
    for cp in result.checkpoints:
        assert cp.blend >= cp.rule - 0.01, result.checkpoints


def test_pure_noise_ratings_keep_the_blend_at_zero(lists):
    """Ratings that are pure noise must (nearly always) leave the score the rule score. The
    best of eleven blends is an optimistic pick: with a one-standard-error bar 9 of 20 noise
    draws adopted a learned term, with the two of the design (BLEND_SE) 2 of 20."""
    train, _ = lists
    adopted = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        rated = [
            RatedList(c.X[:10], c.rule[:10], rng.integers(1, 6, min(10, len(c))).astype(float), c.track)
            for c in train[:30]
        ]  # fmt: skip
        adopted.append(train_from_ratings(rated, train[0].names).blend > 0.05)
    assert sum(adopted) <= 1, adopted


def test_ratings_out_of_range_or_misshapen_are_refused(lists):
    train, _ = lists
    c = train[0]
    with pytest.raises(ParameterError, match="1..5"):
        train_from_ratings([RatedList(c.X[:3], c.rule[:3], np.array([0.0, 3, 5]), "t")], c.names)
    with pytest.raises(ParameterError, match="feature names"):
        train_from_ratings([RatedList(c.X[:3, :-1], c.rule[:3], np.ones(3), "t")], c.names)
    with pytest.raises(ParameterError, match="no ratings"):
        train_from_ratings([], c.names)
    with pytest.raises(ParameterError, match="held-out"):
        run_loop(train, train[:3], BY_NAME["keys"])
