"""Hand-made segment features with known harmony, tempo and rhythm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cratedig.match.batch import SegmentBatch
from cratedig.theory import Key

MAJOR_TRIAD = (0, 4, 7)
MINOR_TRIAD = (0, 3, 7)
FOUR_ON_FLOOR = [0, 4, 8, 12]


def triad_chroma(root: int, minor: bool = False) -> np.ndarray:
    """L1-normalised chroma of a triad on pitch class ``root``."""
    c = np.full(12, 0.01)
    for d in MINOR_TRIAD if minor else MAJOR_TRIAD:
        c[(root + d) % 12] = 1.0
    return c / c.sum()


def progression(key: str, degrees: Sequence[int], *, shift: int = 0) -> np.ndarray:
    """One diatonic triad per bar (major-key degrees 1..6), transposed by ``shift``."""
    k = Key.parse(key)
    steps = {1: (0, False), 2: (2, True), 3: (4, True), 4: (5, False), 5: (7, False), 6: (9, True)}
    return np.stack(
        [triad_chroma((k.tonic + steps[d][0] + shift) % 12, steps[d][1]) for d in degrees]
    )


def pattern(hits: Sequence[int], steps: int = 16) -> np.ndarray:
    r = np.zeros(16)
    r[list(hits)] = 1.0
    r[steps:] = 0.0
    return r


def make_batch(rows: list[dict]) -> SegmentBatch:
    """A batch from dicts with keys tempo, key, chroma and optionally rhythm, steps, balance..."""
    n = len(rows)
    bars = max(len(r["chroma"]) for r in rows)
    chroma = np.zeros((n, bars, 12), np.float32)
    for i, r in enumerate(rows):
        chroma[i, : len(r["chroma"])] = r["chroma"]
    return SegmentBatch(
        ids=np.array([r.get("id", f"t{i}_0") for i, r in enumerate(rows)], dtype=object),
        track_ids=np.array([r.get("track", f"t{i}") for i, r in enumerate(rows)], dtype=object),
        tempo=np.array([r["tempo"] for r in rows], np.float64),
        key_index=np.array([Key.parse(r["key"]).index for r in rows], np.int64),
        key_clarity=np.array([r.get("key_clarity", 1.0) for r in rows], np.float32),
        chroma=chroma,
        chroma_mask=chroma.sum(axis=2) > 1e-6,
        rhythm=np.array([r.get("rhythm", pattern(FOUR_ON_FLOOR)) for r in rows], np.float32),
        steps=np.array([r.get("steps", 16) for r in rows], np.int64),
        balance=np.array([r.get("balance", (0.3, 0.5, 0.2)) for r in rows], np.float32),
        energy=np.array([r.get("energy", 0.8) for r in rows], np.float32),
    )


def random_batch(
    rng: np.random.Generator, n: int, *, bars: int = 8, tracks: int = 50
) -> SegmentBatch:
    """Random but plausible features: triad progressions in random keys and tempos."""
    rows = []
    for i in range(n):
        root = int(rng.integers(12))
        chroma = np.stack(
            [
                triad_chroma((root + int(d)) % 12, bool(rng.random() < 0.4))
                for d in rng.choice([0, 5, 7, 9], size=bars)
            ]
        )
        chroma = chroma + rng.random((bars, 12)) * 0.05
        chroma /= chroma.sum(axis=1, keepdims=True)
        rows.append(
            {
                "id": f"trk{i % tracks:03d}_{i // tracks}",
                "track": f"trk{i % tracks:03d}",
                "tempo": float(rng.uniform(70, 180)),
                "key": Key.from_index(int(rng.integers(24))).camelot,
                "chroma": chroma,
                "rhythm": rng.random(16),
                "balance": rng.dirichlet(np.ones(3)),
                "energy": float(rng.random()),
            }
        )
    return make_batch(rows)
