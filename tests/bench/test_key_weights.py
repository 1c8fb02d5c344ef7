"""The key-weights sweep (``bench/key_weights.py``) re-weighs the key stage from the inputs it
records from the pipeline's own calls: at the shipped weights it must give the pipeline's key,
or every swept figure would describe another estimator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import key_weights  # noqa: E402
from cratedig.synth import synthesize_song, write_song  # noqa: E402
from cratedig.theory import Key  # noqa: E402


@pytest.mark.parametrize(
    ("ref", "est", "score"),
    [
        (0, 0, 1.0),
        (0, 7, 0.5),
        (0, 21, 0.3),
        (12, 3, 0.3),
        (0, 12, 0.2),
        (0, 2, 0.0),
        (12, 19, 0.5),
    ],
)
def test_mirex(ref: int, est: int, score: float) -> None:
    assert key_weights.mirex(ref, est) == score


def test_recorded_inputs_give_the_pipelines_key(tmp_path: Path) -> None:
    song = synthesize_song(tempo=112, key=Key(9, "minor"), bars=16, seed=3)
    path = tmp_path / "song.wav"
    write_song(song, path)
    truth = key_weights.key_index(9, "minor")
    r = key_weights.record(("song", str(path), truth, "song"))
    assert r["shipped"] == truth
    assert key_weights.combine(r, key_weights.SHIPPED) == r["shipped"]
    from cratedig.analysis import pipeline

    assert pipeline.estimate_key.__module__ == "cratedig.analysis.tonal"  # put back
