"""The real-music bench's per-source-kind table (``bench/accuracy.py``): which kinds of music
carry the errors, with the same per-file scores as the main table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

_env = dict(os.environ)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import accuracy  # noqa: E402

# accuracy.py pins math libraries to one thread for its timings; not for the other tests.
os.environ.clear()
os.environ.update(_env)


def _truth(kind: str, tempo: float, key: str | None) -> dict:
    beats = list(np.arange(0.0, 30.0, 60.0 / tempo))
    return {
        "id": f"{kind}-{tempo}-{key}",
        "kind": kind,
        "tempo": tempo,
        "tempo_steady": True,
        "tempo_level_certain": True,
        "beats": beats,
        "beats_exact": True,
        "beat_level_certain": True,
        "downbeats": beats[::4],
        "downbeats_certain": True,
        "meter": 4,
        "meter_certain": True,
        "key": key.split()[0] if key else None,
        "mode": key.split()[1] if key else None,
    }


def _estimate(t: dict, tempo: float, key: str | None) -> accuracy.Estimate:
    beats = np.arange(0.0, 30.0, 60.0 / tempo)
    tonic, mode = (None, None)
    if key:
        tonic, mode = accuracy.PITCH_CLASSES.index(key.split()[0]), key.split()[1]
    return accuracy.Estimate(
        tempo=tempo, tonic=tonic, mode=mode, beats=beats, downbeats=beats[::4], meter=4
    )


def test_kinds_are_scored_apart():
    songs = [
        _truth("corpus", 120.0, "C major"),
        _truth("corpus", 90.0, "A minor"),
        _truth("tracker", 125.0, None),
    ]
    est = {
        songs[0]["id"]: _estimate(songs[0], 120.0, "C major"),  # all right
        songs[1]["id"]: _estimate(songs[1], 120.0, "C major"),  # 4:3 tempo, relative key
        songs[2]["id"]: _estimate(songs[2], 125.0, None),
    }
    kinds = accuracy.by_kind(songs, est)
    assert set(kinds) == {"corpus", "tracker"}
    assert kinds["corpus"]["tempo_acc2"] == (0.5, 2)
    assert kinds["corpus"]["key_mirex"] == (pytest.approx(0.65), 2)  # 1 and 0.3 (relative)
    assert kinds["tracker"]["key_mirex"][1] == 0  # no key truth: no score, not a zero
    assert kinds["tracker"]["beat_f_any"] == (pytest.approx(1.0), 1)
    assert kinds["corpus"]["downbeat_f"][1] == 2
    # A system without a downbeat tracker (Essentia) gets no downbeat score at all.
    blind = accuracy.by_kind(songs, est, has_downbeats=False)
    assert blind["corpus"]["downbeat_f"][1] == 0
