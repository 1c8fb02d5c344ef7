"""The training gate: rules, counts, segments and pairs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cratedig.errors import ParameterError
from cratedig.learn.gate import OPEN, GateRules, gate_pairs, gate_segments, gate_tracks

QUALITIES = {
    **{f"fake{i}": {"flags": ["fake_lossless"], "confidence": {}} for i in range(8)},
    **{f"nobeat{i}": {"flags": ["no_stable_beat"], "confidence": {}} for i in range(4)},
    "both": {"flags": ["no_stable_beat", "fake_lossless"]},
    "stereo": {"flags": ["fake_stereo"], "confidence": {"beat_strength": 0.5}},
    "good": {"flags": [], "confidence": {"beat_strength": 0.05, "key_clarity": 0.9}},
    "old": None,
}


def test_default_rules_keep_out_what_misleads_and_say_how_many():
    r = gate_tracks(QUALITIES)
    assert r.kept == {"stereo", "good", "old"}
    assert r.excluded["both"] == "fake_lossless"  # one reason per track, by rule order
    assert r.counts == {"fake_lossless": 9, "no_stable_beat": 4}
    assert r.summary() == "13 tracks kept out: 9 fake lossless, 4 no stable beat"


def test_rules_are_configurable():
    strict = GateRules.from_mapping({"min_beat_strength": 0.1, "require_assessed": True})
    r = gate_tracks(QUALITIES, strict)
    assert r.excluded["good"] == "low_beat_strength"
    assert r.excluded["old"] == "unassessed"
    assert gate_tracks(QUALITIES, OPEN).excluded == {}
    with pytest.raises(ParameterError, match="unknown gate rule"):
        GateRules.from_mapping({"min_tempo": 3})


@dataclass
class _Seg:
    id: str
    track_id: str


def test_segments_and_self_supervised_pairs_follow_their_tracks():
    segs = [_Seg("good_0", "good"), _Seg("fake1_0", "fake1"), _Seg("good_1", "good")]
    kept, report = gate_segments(segs, QUALITIES)
    assert [s.id for s in kept] == ["good_0", "good_1"]
    assert report.summary() == "1 track kept out: 1 fake lossless"
    pairs = [("good_0", "good_1"), ("good_0", "fake1_0")]
    assert gate_pairs(pairs, report) == [("good_0", "good_1")]
