"""The learned ranker at the top of a list (issue 10): trained on stem pairs of synthesized
songs, scored on songs it never saw, against the rule score and a pointwise fit.

On real stems the pointwise fit lost at the top: with thousands of easy other-song negatives per
query it learned what tells them from the partner and ranked the partner first less often than
the rules did. Here the lists are built the same way (many other-song negatives per query, the
song's own accompaniment at other bars under other chords, bent copies), end to end from the
synthesizer's stems.
"""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.learn.metrics import pairwise_accuracy
from cratedig.learn.pairs import OTHER_BARS, POSITIVE, stem_pairs
from cratedig.learn.ranker import train_ranker
from cratedig.synth import synthesize_song
from cratedig.theory import Key

from .test_ranker import features_of

SR = 22050
KEYS = ("A minor", "D major", "F# minor", "Bb major", "E minor", "G major", "C minor", "Eb major")


@pytest.fixture(scope="module")
def lists():
    songs = {
        f"s{i}": synthesize_song(
            tempo=116.0 + 2 * i, key=Key.parse(k), bars=32, seed=71 + i, sr=SR
        ).stems
        for i, k in enumerate(KEYS)
    }
    pairs = stem_pairs(songs, sr=SR, others_per_query=40, seed=3)
    X, names, rule = features_of(pairs)
    return {
        "X": X,
        "names": names,
        "rule": rule,
        "y": np.array([p.label for p in pairs]),
        "song": np.array([p.song for p in pairs]),
        "query": np.array([p.query.id for p in pairs]),
        "kind": np.array([p.kind for p in pairs]),
    }


def _held_out_scores(d, *, pairwise: bool) -> np.ndarray:
    """Each song's pairs scored by a ranker trained on the other songs' pairs."""
    out = np.zeros(len(d["y"]))
    for s in np.unique(d["song"]):
        test = d["song"] == s
        train = ~test
        model = train_ranker(
            d["X"][train], d["y"][train], d["names"],
            queries=d["query"][train] if pairwise else None,
        )  # fmt: skip
        out[test] = model.learned(d["X"][test], d["names"])
    return out


def _top1(score, d) -> float:
    hits = []
    for q in np.unique(d["query"]):
        rows = np.flatnonzero(d["query"] == q)
        hits.append(bool(d["y"][rows][np.argmax(score[rows])]))
    return float(np.mean(hits))


def test_the_lists_hold_the_own_accompaniment_at_other_bars(lists):
    kind = lists["kind"]
    assert np.sum(kind == OTHER_BARS) >= np.sum(kind == POSITIVE)
    assert set(lists["y"][kind == OTHER_BARS]) == {0}


def test_the_pairwise_ranker_keeps_up_with_the_rules_and_the_pointwise_fit(lists):
    """Top-1 of the queries, each song scored by a ranker trained on the other seven.

    Before the rule score counted coverage (a fragment under a whole phrase), the rules ranked
    24 partners first, the pairwise ranker 27, the pointwise fit 25; after it, 27, 26 and 25 of
    43. Analysis v30 then left out the 11 queries whose lead is silent (their level had read
    30 dB too loud, over the -45 dBFS floor): of the 32 left the rules rank 27 first, the
    pairwise ranker and the pointwise fit 26 each, and over all pairs they order 0.989, 0.989
    and 0.994 right. On these synthesized stems the learned term gains nothing, and
    ``evidence_blend`` gives it no weight unless a held-out quarter of the songs shows a gain
    (on real stems it does: ``bench/README.md``). What must hold: it stays within two queries
    of the rules at the top (the pointwise fit once lost 13 % of the queries' first places on
    real stems) and of the pointwise fit, and it orders all pairs about as well as the rules.
    """
    pairwise = _held_out_scores(lists, pairwise=True)
    pointwise = _held_out_scores(lists, pairwise=False)
    rule = lists["rule"]
    top = {"pairwise": _top1(pairwise, lists), "pointwise": _top1(pointwise, lists),
           "rule": _top1(rule, lists)}  # fmt: skip
    n_queries = len(np.unique(lists["query"]))
    assert n_queries >= 30, n_queries
    assert top["pairwise"] >= top["rule"] - 2 / n_queries, top
    assert top["pairwise"] >= top["pointwise"] - 1 / n_queries, top
    acc = {
        k: pairwise_accuracy(s, lists["y"], lists["query"])
        for k, s in (("pairwise", pairwise), ("rule", rule))
    }
    assert acc["pairwise"] >= acc["rule"] - 0.005, acc
