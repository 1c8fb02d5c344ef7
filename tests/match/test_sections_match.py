"""Section roles in matching (issue 14): a drop pairs with a drop, a break with a break.

The songs are synthesized with a known form (intro, drop, break, drop, outro) and analysed by
the real pipeline; the library test ingests one and matches the other through the CLI, so the
section labels travel analysis -> database -> index -> scorer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.records import TrackAnalysis
from cratedig.cli import app
from cratedig.match.batch import SegmentBatch
from cratedig.match.scoring import SECTION_WEIGHT, explain, score_candidates
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
FORM = [("intro", 4), ("drop", 8), ("break", 8), ("drop", 8), ("outro", 4)]


def _song(seed: int):
    return synthesize_song(
        tempo=126.0, key=Key.parse("A minor"), bars=32, seed=seed, sr=SR, sections=FORM
    )


@pytest.fixture(scope="module")
def analysed() -> tuple[TrackAnalysis, TrackAnalysis]:
    query, partner = _song(51), _song(52)
    return analyze_signal(query.audio, sr=SR), analyze_signal(partner.audio, sr=SR)


def _phrase(a: TrackAnalysis, label: str):
    return next(s for s in a.segments if s.label == label)


def _twins(segment, labels: list[str]) -> SegmentBatch:
    """Copies of one analysed phrase that differ only in their section label (and id)."""
    return SegmentBatch.from_segments(
        [replace(segment, id=f"{segment.id}_{lab or 'unknown'}", label=lab) for lab in labels]
    )


@pytest.mark.parametrize(("query_label", "other"), [("drop", "break"), ("break", "drop")])
def test_the_same_role_ranks_first_among_otherwise_equal_candidates(analysed, query_label, other):
    q_song, c_song = analysed
    assert {s.label for s in q_song.sections} >= {"drop", "break"}, q_song.sections
    query = SegmentBatch.from_segments([_phrase(q_song, query_label)])
    # Both orders: the winner must not be the first row by accident.
    for labels in ([other, query_label], [query_label, other]):
        cands = _twins(_phrase(c_song, "drop"), labels)
        scores = score_candidates(query, cands)
        best = int(scores.ranking(1)[0])
        assert labels[best] == query_label, (labels, scores.score)
        reasons = explain(query, cands, scores, [0, 1])
        plural = "drops" if query_label == "drop" else "breaks"
        assert f"both {plural}" in reasons[best]
        assert f"{other} under a {query_label}" in reasons[1 - best]


def test_section_roles_are_neutral_when_unknown(analysed):
    q_song, c_song = analysed
    drop = _phrase(c_song, "drop")
    unknown = _twins(drop, ["", "", ""])
    labelled = _twins(drop, ["drop", "break", "verse"])
    query = SegmentBatch.from_segments([_phrase(q_song, "drop")])
    plain = score_candidates(query, unknown)
    # Unknown labels leave the score exactly as the terms make it: equal candidates tie.
    assert np.ptp(plain.score) == 0.0 and np.all(plain.section == 0.0)
    assert not any("under" in r or "both" in r for r in explain(query, unknown, plain, [0, 1, 2]))
    roled = score_candidates(query, labelled)
    base = float(plain.score[0])
    assert 0.0 < base < 1.0 / (1.0 + SECTION_WEIGHT)
    np.testing.assert_allclose(
        roled.score, base * np.array([1 + SECTION_WEIGHT, 1 - SECTION_WEIGHT, 1.0]), rtol=1e-9
    )
    # A query of unknown section: every candidate keeps its plain score.
    blind = SegmentBatch.from_segments([replace(_phrase(q_song, "drop"), label="")])
    np.testing.assert_array_equal(score_candidates(blind, labelled).score, plain.score)


def test_the_library_match_carries_section_labels(tmp_path: Path):
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "partner.wav", _song(52).audio, SR)
    sf.write(tmp_path / "query.wav", _song(51).audio, SR)
    db = f"sqlite:///{tmp_path / 'library.db'}"
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(lib), "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        # Every phrase of the one partner track, not its best two.
        ["match", str(tmp_path / "query.wav"), "--db", db, "--json", "--top", "20",
         "--per-track", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    labels = {s["id"]: s["label"] for s in out["query"]["segments"]}
    seen = set()
    for m in out["matches"]:
        q_label = labels[m["query_segment"]]
        for c in m["candidates"]:
            fit = c["section_fit"]
            if q_label == c["label"] == "drop":
                assert fit == 1 and "both drops" in c["reason"], c
                seen.add("same")
            elif {q_label, c["label"]} == {"drop", "break"}:
                assert fit == -1 and f"{c['label']} under a {q_label}" in c["reason"], c
                seen.add("clash")
    assert seen == {"same", "clash"}, seen
    # Roles are a modest factor: the partner's outro (pads, little low end) may layer best
    # under a drop, but its drops still rank above its break.
    for m in out["matches"]:
        if labels[m["query_segment"]] == "drop":
            by_label = [c["label"] for c in m["candidates"]]
            assert by_label.index("drop") < by_label.index("break"), by_label
