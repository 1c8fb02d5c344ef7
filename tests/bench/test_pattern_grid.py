"""The tracker modules' bar-line score (``bench/accuracy.py``, "bar lines on the pattern grid"):
a module's bar lines are assumed (four beats of four rows from each pattern's start) where no
composer's highlight gives them, so our bar lines are judged at the level whose bar length is
nearest ours, and only where the patterns put bar lines. A bar off by half a bar or a beat
scores 0 at any level; the moduleset's sources are new to every other set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

_env = dict(os.environ)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import accuracy  # noqa: E402
import moduleset  # noqa: E402
import realset  # noqa: E402
import stemset  # noqa: E402

os.environ.clear()
os.environ.update(_env)

BEAT = 0.5  # 120 BPM: a 4-beat bar of 2 s, a 64-row pattern of 4 bars = 8 s


def _module(patterns: int = 8, bars_per_pattern: int = 4) -> dict:
    beats = np.arange(patterns * bars_per_pattern * 4) * BEAT
    return {
        "kind": "tracker",
        "meter": 4,
        "beats": beats.tolist(),
        "downbeats": beats[::4].tolist(),
        "sections": {
            "units": [{"start": p * bars_per_pattern * 4 * BEAT} for p in range(patterns)]
        },
    }


def test_bar_lines_on_the_patterns_bars_score_one_and_a_half_bar_or_a_beat_off_zero():
    t = _module()
    bars = np.asarray(t["downbeats"])
    assert accuracy.bar_f_pattern_grid(t, bars) == 1.0
    assert accuracy.bar_f_pattern_grid(t, bars + 2 * BEAT) == 0.0  # half a bar late
    assert accuracy.bar_f_pattern_grid(t, bars + BEAT) == 0.0  # a beat late
    assert accuracy.bar_f_pattern_grid(t, bars + BEAT / 2) == 0.0  # beats on the off-beat


def test_the_level_follows_our_bar_length_and_stays_on_the_patterns_grid():
    t = _module()
    bars = np.asarray(t["downbeats"])
    # Bars twice as long (we read half the tempo): every other bar line from each pattern's
    # start is right, the other phase is half a bar off.
    assert accuracy.bar_f_pattern_grid(t, bars[::2]) == 1.0
    assert accuracy.bar_f_pattern_grid(t, bars[1::2]) == 0.0
    # Bars half as long (we read twice the tempo): the half-bar beats join the bar lines.
    halves = np.sort(np.r_[bars, bars + 2 * BEAT])
    assert accuracy.bar_f_pattern_grid(t, halves) == 1.0


def test_patterns_of_three_bars_keep_the_doubled_level_on_each_patterns_start():
    """Every other bar line counts from each pattern's start, not from the first bar line:
    after a 3-bar pattern the doubled grid starts again on the next pattern."""
    t = _module(patterns=6, bars_per_pattern=3)
    variants = accuracy.pattern_bar_variants(t)
    starts = {u["start"] for u in t["sections"]["units"]}
    assert starts <= set(np.round(variants[1], 6))
    assert len(variants[1]) == 6 * 2  # bars 0 and 2 of each 3-bar pattern


def test_no_pattern_starts_no_score():
    t = _module()
    t["sections"] = None
    assert accuracy.pattern_bar_variants(t) == []
    assert accuracy.bar_f_pattern_grid(t, np.asarray(t["downbeats"])) is None


def test_moduleset_reads_only_packages_no_other_set_reads_and_none_reserved():
    others = set(realset.TRACKER_PACKAGES) | set(stemset.TRACKER_PACKAGES)
    others |= set(realset.AUDIO_SOURCES) | set(realset.FOF_PACKAGES)
    for package in moduleset.PACKAGES:
        assert package not in others
        assert not any(r in package for r in realset.RESERVED)
