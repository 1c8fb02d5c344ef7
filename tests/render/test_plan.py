"""The mashup planner on hand-made candidate lists with a known best plan."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.render.plan import MashupPlan, plan_mashup


def segments(n: int, bars: int = 8, seconds: float = 15.48) -> list[dict]:
    return [
        {"id": f"q_{i}", "start": i * seconds, "end": (i + 1) * seconds, "bars": bars}
        for i in range(n)
    ]


def cand(track: str, index: int, score: float, **kw) -> dict:
    rec = {
        "segment": f"{track}_{index}",
        "track_id": track,
        "path": f"/music/{track}.flac",
        "start": 15.0 * index,
        "end": 15.0 * (index + 1),
        "score": score,
        "tempo_ratio": 1.0,
        "stretch": 0.016,
        "semitones": -2,
        "key_relation": "same",
        "terms": {"harmonic": 0.9},
        "reason": "same key after -2 st",
    }
    rec.update(kw)
    return rec


def partners(plan: MashupPlan) -> list[str | None]:
    return [None if c.partner is None else c.partner["segment"] for c in plan.cues]


def test_stays_with_one_partner_track_when_scores_are_close():
    # Greedy hops a -> b -> a -> b, gaining 0.02 or 0.03 a phrase; the stay bonus is 0.1.
    cands = [
        [cand("a", 0, 0.80), cand("b", 0, 0.77)],
        [cand("b", 1, 0.80), cand("a", 1, 0.78)],
        [cand("a", 2, 0.80), cand("b", 2, 0.77)],
        [cand("b", 3, 0.80), cand("a", 3, 0.78)],
    ]
    plan = plan_mashup(segments(4), cands)
    assert partners(plan) == ["a_0", "a_1", "a_2", "a_3"]
    assert plan.totals["stays"] == 3 and plan.totals["partner_tracks"] == 1
    # Without the bonus the best score per phrase wins.
    plan = plan_mashup(segments(4), cands, stay_bonus=0.0, flow_bonus=0.0)
    assert partners(plan) == ["a_0", "b_1", "a_2", "b_3"]


def test_a_partner_track_that_plays_on_keeps_its_pitch_shift():
    # The song's phrases read I and V, so the matcher's best shift for the same partner track
    # alternates (-2, 0, -2): a DJ keeps a playing track's key. A slightly weaker segment of the
    # same track at the same shift wins over the key jump.
    cands = [
        [cand("a", 0, 0.80, semitones=-2)],
        [cand("a", 1, 0.80, semitones=0), cand("a", 2, 0.75, semitones=-2)],
        [cand("a", 3, 0.80, semitones=-2)],
    ]
    plan = plan_mashup(segments(3), cands)
    assert partners(plan) == ["a_0", "a_2", "a_3"]
    assert plan.totals["stays"] == 2 and plan.totals["retunes"] == 0
    # A much better segment at another shift still plays (the jump costs the stay and flow
    # bonus and the penalty, twice here: 0.5 in all).
    cands[1][0]["score"], cands[1][1]["score"] = 1.0, 0.4
    jumpy = plan_mashup(segments(3), cands)
    assert partners(jumpy) == ["a_0", "a_1", "a_3"] and jumpy.totals["retunes"] == 2
    # A half-time reading of the same track (tempo ratio 2) is another transform too.
    half = [[cand("a", 0, 0.8)], [cand("a", 1, 0.8, tempo_ratio=2.0), cand("a", 2, 0.75)]]
    assert partners(plan_mashup(segments(2), half)) == ["a_0", "a_2"]


def test_a_clearly_better_candidate_beats_the_stay_bonus():
    cands = [[cand("a", 0, 0.8)], [cand("b", 4, 0.95), cand("a", 1, 0.6)]]
    assert partners(plan_mashup(segments(2), cands)) == ["a_0", "b_4"]


def test_never_repeats_a_segment_in_consecutive_cues():
    same = cand("a", 0, 0.9)
    cands = [[same, cand("b", 0, 0.5)] for _ in range(5)]
    plan = plan_mashup(segments(5), cands)
    chosen = partners(plan)
    assert all(x != y for x, y in itertools.pairwise(chosen))
    # Without the reuse penalty it comes back every other phrase.
    assert partners(plan_mashup(segments(5), cands, reuse_penalty=0.0)).count("a_0") == 3
    # A finite penalty smaller than the gain allows the back-to-back repeat.
    plan = plan_mashup(segments(5), cands, repeat_penalty=0.1, reuse_penalty=0.0)
    assert partners(plan) == ["a_0"] * 5


def test_plays_the_partner_forward_and_avoids_reusing_segments():
    # Greedy (and the stay bonus alone) alternate a_1, a_0, a_1, a_0: same track, but hopping
    # back and forth and reusing both segments.
    cands = [
        [cand("a", 1, 0.80), cand("a", 0, 0.79), cand("a", 2, 0.70), cand("a", 3, 0.69)],
        [cand("a", 0, 0.80), cand("a", 1, 0.79), cand("a", 2, 0.75), cand("a", 3, 0.70)],
        [cand("a", 1, 0.80), cand("a", 0, 0.79), cand("a", 2, 0.78), cand("a", 3, 0.74)],
        [cand("a", 0, 0.80), cand("a", 1, 0.79), cand("a", 3, 0.78), cand("a", 2, 0.77)],
    ]
    old = plan_mashup(segments(4), cands, flow_bonus=0.0, reuse_penalty=0.0)
    assert old.totals["reused"] == 2
    plan = plan_mashup(segments(4), cands)
    assert partners(plan) == ["a_0", "a_1", "a_2", "a_3"]
    assert plan.totals["reused"] == 0 and plan.totals["distinct_segments"] == 4
    assert plan.objective == pytest.approx(0.79 + 0.79 + 0.78 + 0.78 + 3 * (0.1 + 0.05))
    # A segment far better than every alternative still comes back: the penalty is bounded.
    cands = [[cand("a", 0, 0.9), cand("b", 0, 0.3)], [], [cand("a", 0, 0.9), cand("b", 1, 0.3)]]
    assert partners(plan_mashup(segments(3), cands)) == ["a_0", None, "a_0"]
    cands[2][1] = cand("b", 1, 0.85)
    assert partners(plan_mashup(segments(3), cands)) == ["a_0", None, "b_1"]


def test_only_candidate_repeated_leaves_a_phrase_alone():
    cands = [[cand("a", 0, 0.9)], [cand("a", 0, 0.9)]]
    assert partners(plan_mashup(segments(2), cands)) == ["a_0", None]


def test_no_candidates_means_no_partner():
    cands = [[cand("a", 0, 0.7)], [], [cand("a", 2, 0.7)]]
    plan = plan_mashup(segments(3), cands)
    assert partners(plan) == ["a_0", None, "a_2"]
    assert plan.cues[1].score == 0.0
    assert plan.totals["with_partner"] == 2
    empty = plan_mashup(segments(2), [[], []])
    assert partners(empty) == [None, None] and empty.totals["score"] == 0.0
    assert plan_mashup([], []).cues == []


def test_energy_term_prefers_smooth_energy():
    cands = [
        [cand("a", 0, 0.8, energy=0.3)],
        [cand("b", 0, 0.8, energy=0.9), cand("c", 0, 0.78, energy=0.35)],
        [cand("d", 0, 0.8, energy=0.3)],
    ]
    assert partners(plan_mashup(segments(3), cands))[1] == "c_0"
    assert partners(plan_mashup(segments(3), cands, energy_weight=0.0))[1] == "b_0"


def test_cue_sheet_json_round_trip():
    cands = [[cand("a", 0, 0.8, energy=0.4)], [], [cand("a", 1, 0.7), cand("b", 2, 0.75)]]
    plan = plan_mashup(segments(3), cands, query={"track_id": "q", "path": "/x.wav"})
    d = json.loads(json.dumps(plan.to_json()))
    assert set(d) >= {"query", "cues", "totals"}
    cue = d["cues"][0]
    assert set(cue) == {
        "index", "query_segment", "start", "end", "partner", "score", "section", "partner_section"
    }  # fmt: skip
    assert cue["partner"]["transform"] == {
        "semitones": -2, "cents": 0.0, "tempo_ratio": 1.0, "stretch": 0.016
    }  # fmt: skip
    assert cue["partner"]["path"] == "/music/a.flac"
    assert d["settings"]["repeat_penalty"] == "inf"
    back = MashupPlan.from_json(d)
    assert back == plan
    assert back.totals == plan.totals
    with pytest.raises(ParameterError, match="not a mashup plan"):
        MashupPlan.from_json({"cues": []})


def test_a_drop_takes_a_drop_partner_and_a_break_a_break():
    # Two equally good partners per phrase; the section roles decide, and the sheet names them.
    query = segments(2)
    query[0]["label"], query[1]["label"] = "drop", "break"
    cands = [
        [cand("a", 3, 0.7, label="break"), cand("b", 1, 0.7, label="chorus")],
        [cand("c", 2, 0.7, label="drop"), cand("d", 5, 0.69, label="break")],
    ]
    plan = plan_mashup(query, cands, stay_bonus=0.0, flow_bonus=0.0)
    assert partners(plan) == ["b_1", "d_5"]
    assert [(c.section, c.partner_section) for c in plan.cues] == [
        ("drop", "chorus"),
        ("break", "break"),
    ]
    sheet = plan.to_json()["cues"]
    assert [(c["section"], c["partner_section"]) for c in sheet] == [
        ("drop", "chorus"),
        ("break", "break"),
    ]
    assert MashupPlan.from_json(plan.to_json()) == plan
    # A clearly better harmonic fit still wins over the section preference.
    cands[1][0]["score"] = 0.95
    assert partners(plan_mashup(query, cands, stay_bonus=0.0, flow_bonus=0.0))[1] == "c_2"
    # Without labels, or with section_weight=0, nothing changes: the better-ranked wins.
    assert partners(plan_mashup(segments(2), cands, stay_bonus=0.0, flow_bonus=0.0)) == [
        "a_3",
        "c_2",
    ]
    assert partners(plan_mashup(query, cands, section_weight=0.0, stay_bonus=0.0)) == [
        "a_3",
        "c_2",
    ]


def test_plan_is_the_exhaustive_optimum(rng):
    """Viterbi equals brute force on small random instances (ties aside, same objective)."""
    bonus, flow, penalty, weight, retune = 0.1, 0.05, 0.3, 0.2, 0.07
    for _ in range(40):
        n = int(rng.integers(1, 5))
        cands = []
        for _ in range(n):
            m = int(rng.integers(0, 4))
            cands.append(
                [
                    cand(str(rng.integers(0, 2)), int(rng.integers(0, 3)), float(rng.random()),
                         energy=float(rng.random()), semitones=int(rng.choice([-2, 0])))
                    for _ in range(m)
                ]
            )  # fmt: skip
        plan = plan_mashup(
            segments(n), cands, stay_bonus=bonus, repeat_penalty=penalty, energy_weight=weight,
            flow_bonus=flow, reuse_penalty=0.0, retune_penalty=retune,
        )  # fmt: skip

        def value(choice, cands=cands):
            total, prev = 0.0, None
            for cs, k in zip(cands, choice, strict=True):
                cur = cs[k] if k < len(cs) else None
                total += 0.0 if cur is None else cur["score"]
                if prev is not None and cur is not None:
                    if prev["segment"] == cur["segment"]:
                        total -= penalty
                    elif prev["track_id"] == cur["track_id"]:
                        if prev["semitones"] != cur["semitones"]:
                            total -= retune
                        else:
                            total += bonus + (flow if cur["start"] > prev["start"] else 0.0)
                    total -= weight * abs(prev["energy"] - cur["energy"])
                prev = cur
            return total

        best = max(value(c) for c in itertools.product(*[range(len(cs) + 1) for cs in cands]))
        assert plan.objective == pytest.approx(best, abs=1e-9)
        chosen = [
            len(cs) if c.partner is None else next(
                k for k, x in enumerate(cs) if x["segment"] == c.partner["segment"]
                and x["score"] == c.score
            )
            for cs, c in zip(cands, plan.cues, strict=True)
        ]  # fmt: skip
        assert value(chosen) == pytest.approx(best, abs=1e-9)


def test_deterministic_and_ties_go_to_the_better_ranked():
    cands = [[cand("a", 0, 0.8), cand("b", 0, 0.8)], [cand("c", 0, 0.5), cand("d", 0, 0.5)]]
    first = plan_mashup(segments(2), cands)
    assert partners(first) == ["a_0", "c_0"]
    assert plan_mashup(segments(2), cands).to_json() == first.to_json()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"stay_bonus": -0.1}, r"stay_bonus=-0\.1 must be a finite number >= 0"),
        ({"energy_weight": math.nan}, r"energy_weight=nan must be"),
        ({"energy_weight": math.inf}, r"energy_weight=inf must be"),
    ],
)
def test_bad_weights_raise(kw, message):
    with pytest.raises(ParameterError, match=message):
        plan_mashup(segments(1), [[cand("a", 0, 0.5)]], **kw)


def test_malformed_input_raises():
    with pytest.raises(ParameterError, match="2 query segments but 1 candidate lists"):
        plan_mashup(segments(2), [[]])
    with pytest.raises(ParameterError, match=r"query segment 0 lacks \['end'\]"):
        plan_mashup([{"id": "q_0", "start": 0.0}], [[]])
    with pytest.raises(ParameterError, match=r"candidate 0 of query segment 0 lacks \['score'\]"):
        plan_mashup(segments(1), [[{"segment": "a_0", "track_id": "a"}]])
    with pytest.raises(ParameterError, match="has score nan"):
        plan_mashup(segments(1), [[cand("a", 0, np.nan)]])
