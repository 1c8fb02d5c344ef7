"""The learned tempo-level ranker: where it may speak (soft onsets only), its file, and how its
decision reaches the beat grid. Its accuracy is measured in bench/ (fit_tempo_level.py and
accuracy.py --set real), not here."""

import numpy as np
import pytest

from cratedig.analysis import pipeline, tempolevel
from cratedig.analysis.frontend import compute_frontend

from .hard_songs import hard_song

SR = 22050


def chords_on_beats(tempo: float = 120.0, seconds: float = 30.0) -> np.ndarray:
    """A new chord on every beat, each swelling in over 250 ms: a clean grid without drums."""
    spb = 60.0 / tempo
    y = np.zeros(int(seconds * SR))
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 62, 67), (45, 60, 64, 69)]
    t = np.arange(int(spb * SR)) / SR
    env = np.minimum(1.0, t / 0.25) * np.exp(-t / 2.0)
    for k, start in enumerate(np.arange(0.5, seconds - spb, spb)):
        i = int(start * SR)
        tone = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t) for m in chords[k % 4])
        y[i : i + len(t)] += env * tone
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def soft_piece(tempo: float = 120.0, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """Four legato voices of one to four eighths each, swelling in over 0.6 s (bowed strings),
    played a little loosely (20 ms): no kick and no hats mark the pulse."""
    rng = np.random.default_rng(seed)
    spb = 60.0 / tempo
    n = int(seconds * SR)
    y = np.zeros(n)
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 62, 67), (45, 60, 64, 69)]
    for voice in range(4):
        t0 = 0.5
        while t0 < seconds - 2:
            d = spb / 2 * int(rng.integers(1, 5))
            bar = int((t0 - 0.5) // (2 * spb))
            m = chords[bar % 4][voice] + int(rng.choice([0, 0, 2, -1]))
            t = np.arange(int((d + 0.15) * SR)) / SR
            env = np.minimum(1.0, t / 0.6) * np.minimum(1.0, (t[-1] - t) / 0.1)
            tone = np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t)
            i = int(t0 * SR)
            seg = (env * tone * (1 + 0.1 * np.sin(2 * np.pi * 5.5 * t)))[: max(0, n - i)]
            y[i : i + len(seg)] += seg
            t0 += d + float(rng.normal(0, 0.02))
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_gate_opens_on_swelling_strings_and_stays_shut_on_a_kit(seed):
    soft = compute_frontend(soft_piece(seed=seed), sr=SR)
    assert tempolevel.soft_onsets(soft, 120.0)
    song = hard_song("dotted_pluck", seed=0)  # a kick on every beat, hats between
    drums = compute_frontend(song.audio, sr=song.sr)
    assert not tempolevel.soft_onsets(drums, 140.0)


def test_every_candidate_has_every_feature_and_stays_in_range():
    fe = compute_frontend(soft_piece(), sr=SR)
    ev = tempolevel.evidence_of(fe, np.ones((10, 12)), None)
    rows = tempolevel.candidate_features(ev, 120.0, confidence=0.8, alternative=60.0)
    ratios = [r for r, _, _ in rows]
    assert 1.0 in ratios and 0.5 in ratios and 4.0 not in ratios  # 480 BPM is no beat
    lo, hi = tempolevel.BPM_RANGE
    assert all(lo <= bpm <= hi for _, bpm, _ in rows)
    names = set(tempolevel.feature_names())
    assert all(set(f) == names for _, _, f in rows)
    assert all(np.isfinite(list(f.values())).all() for _, _, f in rows)
    alt = next(f for r, _, f in rows if r == 0.5)
    assert alt["alt"] == 1.0 and alt["rule"] == 0.0


def test_the_shipped_model_loads_without_pickle_and_a_foreign_file_is_refused(tmp_path):
    model = tempolevel.default_model()
    assert model is not None and set(model.names) <= set(tempolevel.feature_names())
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, names=np.array(["no_such_feature"]), mean=[0.0], scale=[1.0], w=[1.0])
    with pytest.raises(ValueError, match="another layout"):
        tempolevel.LevelModel.from_npz(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, names=np.array([object()], dtype=object), mean=[0.0], scale=[1.0], w=[1.0])
    with pytest.raises(ValueError):  # object arrays need pickle, which is refused
        tempolevel.LevelModel.from_npz(pickled)


def _model(**weights: float) -> tempolevel.LevelModel:
    names = tuple(tempolevel.feature_names())
    w = np.array([weights.get(k, 0.0) for k in names])
    return tempolevel.LevelModel(
        names=names, mean=np.zeros(len(names)), scale=np.ones(len(names)), weights=w, version="t"
    )


def test_the_rankers_level_reaches_the_beat_grid(monkeypatch):
    """A ranker that prefers the slower level halves the tempo of chords on every beat: beats
    a second apart, the rules' reading the runner-up; one that trusts the rules changes
    nothing. (The gate is held open: these chords fold cleanly, as a grid test needs.)"""
    y = chords_on_beats(120.0)
    monkeypatch.setattr(tempolevel, "soft_onsets", lambda fe, bpm: True)
    monkeypatch.setattr(tempolevel, "default_model", lambda: _model(rule=5.0))
    kept = pipeline.analyze_signal(y, sr=SR)
    assert kept.tempo == pytest.approx(120.0, rel=0.02)
    assert kept.estimates["tempo"]["confidence"] > 0.5
    monkeypatch.setattr(tempolevel, "default_model", lambda: _model(lr=-20.0, binrel=20.0))
    halved = pipeline.analyze_signal(y, sr=SR)
    assert halved.tempo == pytest.approx(60.0, rel=0.02)
    assert np.median(np.diff(halved.beats)) == pytest.approx(1.0, rel=0.02)
    assert halved.estimates["tempo"]["alternative"] == pytest.approx(120.0, rel=0.02)


def test_a_missing_or_damaged_model_file_costs_one_warning_and_no_track(
    tmp_path, monkeypatch, caplog
):
    y = soft_piece(120.0, seconds=20.0)
    damaged = tmp_path / "tempolevel.npz"
    damaged.write_bytes(b"PK\x03\x04 not really a zip archive")
    nan = tmp_path / "nan.npz"
    good = tempolevel.default_model()
    np.savez(nan, names=np.array(good.names), mean=good.mean, scale=good.scale,
             w=np.full_like(good.weights, np.nan))  # fmt: skip
    for name in ("no-such-file.npz", str(damaged), str(nan)):
        monkeypatch.setattr(tempolevel, "MODEL_FILE", name)
        tempolevel.default_model.cache_clear()
        caplog.clear()
        try:
            with caplog.at_level("WARNING", logger="cratedig.analysis"):
                a = pipeline.analyze_signal(y, sr=SR)
                pipeline.analyze_signal(y, sr=SR)
        finally:
            tempolevel.default_model.cache_clear()
        warnings = [r for r in caplog.records if "tempo-level model unavailable" in r.getMessage()]
        assert len(warnings) == 1, name  # once, not per track
        assert a.tempo > 0 and len(a.beats) > 8  # the rules' grid
