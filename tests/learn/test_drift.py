"""Drift on feature tables with known shifts: each shift is found on its features only, and
same-distribution batches raise (almost) no alarm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cratedig.learn.drift import (
    MIN_TRACKS,
    build_reference,
    evaluate_drift,
    ks_against_quantiles,
    psi,
)

from .tables import fit_model, population, with_model

#: What a cluster model sees moves with any input shift: these may drift along with the cause.
MODEL_SIDE = {"cluster", "far"}


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(2026)
    train = population(rng, 300)
    model = fit_model(train)
    reference = build_reference(with_model(train, model), k=model.k)
    return model, json.loads(json.dumps(reference))  # stored as JSON, read back


def _batch(model, seed, **kw):
    return with_model(population(np.random.default_rng(seed), 40, prefix=f"b{seed}_", **kw), model)


def test_same_distribution_batches_raise_at_most_one_false_alarm(trained):
    model, reference = trained
    alarms = [evaluate_drift(reference, _batch(model, 100 + i)) for i in range(20)]
    assert sum(r.drift for r in alarms) <= 1, [r.drifted for r in alarms if r.drift]
    assert sum(r.retrain for r in alarms) <= 1


def test_a_batch_of_waltzes_drifts_in_meter_only(trained):
    model, reference = trained
    r = evaluate_drift(reference, _batch(model, 7, waltz=1.0))
    assert r.drift and "meter" in r.drifted
    assert set(r.drifted) - MODEL_SIDE == {"meter"}
    assert any(g["by"] == "meter" and g["group"] == "3/4" for g in r.worse) or r.retrain


def test_a_new_tempo_band_drifts_in_tempo_only(trained):
    model, reference = trained
    r = evaluate_drift(reference, _batch(model, 8, tempo=(160.0, 180.0)))
    assert set(r.drifted) - MODEL_SIDE == {"tempo"}
    assert r.retrain
    assert any(g["by"] == "tempo band" for g in r.worse)


def test_noisy_files_drift_in_spectral_balance_and_key_clarity(trained):
    model, reference = trained
    r = evaluate_drift(reference, _batch(model, 9, hiss=0.5))
    shifted = set(r.drifted) - MODEL_SIDE
    assert "balance_high" in shifted and "key_clarity" in shifted
    assert shifted <= {"balance_low", "balance_mid", "balance_high", "key_clarity"}


def test_too_few_new_tracks_give_no_verdict(trained):
    model, reference = trained
    tiny = with_model(population(np.random.default_rng(1), MIN_TRACKS - 1, waltz=1.0), model)
    r = evaluate_drift(reference, tiny)
    assert not r.drift and "too few" in r.verdict


def test_psi_and_ks_on_known_distributions():
    assert psi(np.array([50, 50]), np.array([50, 50])) == pytest.approx(0.0, abs=1e-12)
    assert psi(np.array([90, 10]), np.array([10, 90])) > 1.0
    q = np.quantile(np.random.default_rng(0).normal(size=10_000), np.linspace(0, 1, 101))
    same = np.random.default_rng(1).normal(size=500)
    moved = same + 1.0
    assert ks_against_quantiles(q, same) < 0.08
    assert ks_against_quantiles(q, moved) == pytest.approx(0.38, abs=0.06)


def test_ratings_since_training_name_what_got_worse():
    from datetime import UTC, datetime, timedelta

    from cratedig.learn.drift import rating_quality
    from cratedig.library.repository import RatingFact

    trained = datetime(2026, 11, 1, tzinfo=UTC)
    before = [RatingFact(f"a_{i}", "b_0", 4, trained - timedelta(days=1)) for i in range(6)]
    since = [RatingFact(f"w_{i}", "b_0", 2, trained + timedelta(days=1)) for i in range(6)]
    since += [RatingFact(f"o_{i}", "b_0", 4, trained + timedelta(days=1)) for i in range(6)]
    clusters = {**{f"w_{i}": 3 for i in range(6)}, **{f"o_{i}": 1 for i in range(6)}}
    r = rating_quality(before + since, trained.replace(tzinfo=None), clusters)
    assert (r["before"], r["since"], r["mean_before"], r["mean_since"]) == (6, 12, 4.0, 3.0)
    assert r["worse"] == ["all suggestions", "cluster #3"]
    assert r["by_cluster"]["#1"] == {"ratings": 6, "mean": 4.0}
