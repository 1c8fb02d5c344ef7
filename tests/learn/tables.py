"""Drift tables with known distributions (no audio): a library's segments drawn from a
population whose tempo band, share of 3/4 pieces and hiss are chosen."""

from __future__ import annotations

import numpy as np

from cratedig.learn.clusters import ClusterModel, fit_clusters
from cratedig.learn.drift import DriftTable


def population(
    rng: np.random.Generator,
    tracks: int,
    *,
    tempo: tuple[float, float] = (110.0, 130.0),
    waltz: float = 0.1,
    hiss: float = 0.0,
    segments: tuple[int, int] = (4, 9),
    prefix: str = "t",
) -> DriftTable:
    """Segments of ``tracks`` songs: each song has one tempo, key, meter, mix balance and key
    clarity; its phrases vary around them. ``hiss`` (0..1) moves energy to the high band and
    blurs the key, as noisy or badly transcoded files do."""
    rows: dict[str, list] = {
        k: [] for k in ("tid", "tempo", "key", "meter", "energy", "bal", "chroma", "clar")
    }
    for t in range(tracks):
        n = int(rng.integers(*segments))
        tid = f"{prefix}{t:06d}"
        bpm = rng.uniform(*tempo)
        key = int(rng.integers(24))
        tonic = key % 12
        meter = 3 if rng.random() < waltz else 4
        bal = rng.dirichlet([8.0, 8.0, 4.0])
        clar = float(rng.beta(4, 4))
        for _ in range(n):
            b = np.abs(bal + rng.normal(0, 0.03, 3))
            b[2] += hiss
            rows["tid"].append(tid)
            rows["tempo"].append(bpm * (1 + rng.normal(0, 0.002)))
            rows["key"].append(key if rng.random() < 0.85 else (key + 7) % 12 + 12 * (key // 12))
            rows["meter"].append(meter)
            rows["energy"].append(float(rng.beta(5, 2)))
            rows["bal"].append(b / b.sum())
            rows["chroma"].append(tonic if rng.random() < 0.7 else (tonic + 7) % 12)
            rows["clar"].append(float(np.clip(clar * (1 - hiss) + rng.normal(0, 0.05), 0, 1)))
    n = len(rows["tid"])
    return DriftTable(
        track_ids=np.array(rows["tid"], dtype=object),
        tempo=np.array(rows["tempo"]),
        key=np.array(rows["key"], dtype=np.int64),
        meter=np.array(rows["meter"], dtype=np.int64),
        energy=np.array(rows["energy"]),
        balance=np.array(rows["bal"]).reshape(n, 3),
        chroma=np.array(rows["chroma"], dtype=np.int64),
        key_clarity=np.array(rows["clar"]),
        cluster=np.full(n, -1, np.int64),
        distance=np.full(n, np.nan),
    )


def features(table: DriftTable) -> np.ndarray:
    """What a cluster model sees of a table row (log2 tempo, meter, energy, balance, clarity,
    dominant pitch class one-hot)."""
    onehot = np.eye(12)[table.chroma]
    return np.hstack(
        [
            np.log2(table.tempo)[:, None],
            table.meter[:, None] / 4.0,
            table.energy[:, None],
            table.balance,
            table.key_clarity[:, None],
            onehot,
        ]
    )


def fit_model(table: DriftTable, *, k: int = 8) -> ClusterModel:
    return fit_clusters(features(table), k=k, seed=0)


def with_model(table: DriftTable, model: ClusterModel) -> DriftTable:
    table.cluster, table.distance = model.nearest(features(table))
    return table
