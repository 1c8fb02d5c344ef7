"""Each mashability term on hand-made cases with a known musical answer."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.match.scoring import (
    TERMS,
    candidate_records,
    explain,
    score_candidates,
    tempo_fit,
)
from cratedig.theory import shift_score, stretch_score

from .features import FOUR_ON_FLOOR, make_batch, pattern, progression, random_batch

POP = [1, 5, 6, 4, 1, 5, 4, 1]


def query(**kw):
    row = {"tempo": 128.0, "key": "C", "chroma": progression("C", POP)}
    row.update(kw)
    return make_batch([row])


# -- tempo ------------------------------------------------------------------------------------
def test_double_tempo_is_a_2_to_1_match():
    scores = score_candidates(query(tempo=128.0), make_batch([{**_row(), "tempo": 64.0}]))
    assert scores.valid[0]
    assert scores.tempo_ratio[0] == 2.0
    assert abs(scores.stretch[0]) < 1e-9
    assert scores.terms["tempo"][0] > 0.85


def test_half_tempo_is_a_1_to_2_match():
    ratio, stretch, _, ok = tempo_fit(64.0, np.array([129.0]))
    assert ok[0] and ratio[0] == 2  # TEMPO_RATIOS[2] == 0.5
    assert stretch[0] == pytest.approx(64.0 / 64.5 - 1.0)


def test_a_15_percent_stretch_is_rejected():
    cand = make_batch([{**_row(), "tempo": 128.0 / 1.15}])
    scores = score_candidates(query(), cand)
    assert not scores.valid[0]
    assert scores.score[0] == 0.0
    assert scores.terms["tempo"][0] == 0.0
    assert "beyond" in explain(query(), cand, scores, [0])[0]


def test_max_stretch_is_the_limit():
    cand = make_batch([{**_row(), "tempo": 128.0 / 1.12}])
    assert not score_candidates(query(), cand).valid[0]
    scores = score_candidates(query(), cand, max_stretch=0.15)
    assert scores.valid[0]
    assert scores.stretch[0] == pytest.approx(0.12, abs=1e-9)
    assert scores.terms["tempo"][0] < 0.2


def test_stretch_and_shift_curves_follow_dj_practice():
    assert stretch_score(0.01) > 0.95
    assert 0.7 < stretch_score(0.03) < 0.9
    assert 0.4 < stretch_score(-0.05) < 0.6
    assert stretch_score(0.095) < 0.2
    assert np.all(np.diff(stretch_score(np.linspace(0, 0.2, 50))) <= 0)
    assert shift_score(0) == 1.0 and shift_score(1) >= 0.9 and shift_score(-3) <= 0.7


def test_tempo_term_decreases_with_stretch():
    cands = make_batch([{**_row(), "tempo": 128.0 * (1 + s)} for s in (0.0, 0.02, 0.04, 0.07)])
    t = score_candidates(query(), cands).terms["tempo"]
    assert np.all(np.diff(t) < 0)


# -- key and harmony -----------------------------------------------------------------------------
def _row(key="C", shift=0, **kw):
    row = {"tempo": 128.0, "key": key, "chroma": progression("C", POP, shift=shift)}
    row.update(kw)
    return row


def test_a_fifth_apart_scores_above_a_tritone():
    cands = make_batch([_row("G", 7), _row("F#", 6)])
    scores = score_candidates(query(), cands, max_shift=0)
    assert scores.relation_name(0) == "fifth"
    assert scores.relation_name(1) == "tritone"
    assert scores.terms["key"][0] > scores.terms["key"][1]
    assert scores.terms["harmonic"][0] > scores.terms["harmonic"][1]
    assert scores.score[0] > scores.score[1]


def test_relative_key_is_compatible_without_shift():
    cands = make_batch([_row("Am", 0)])
    scores = score_candidates(query(), cands, max_shift=0)
    assert scores.relation_name(0) == "relative"
    assert scores.terms["key"][0] == pytest.approx(0.9)


@pytest.mark.parametrize("k", [-3, -2, -1, 1, 2, 3])
def test_the_suggested_shift_undoes_a_transposition(k):
    from cratedig.theory import Key

    key = Key.parse("C").transpose(k)
    cands = make_batch([_row(key.camelot, k)])
    scores = score_candidates(query(), cands)
    assert scores.semitones[0] == -k
    assert scores.relation_name(0) == "same"
    assert scores.terms["harmonic"][0] > 0.95
    assert scores.terms["key"][0] == 1.0
    assert scores.terms["shift"][0] == pytest.approx(float(shift_score(k)))


def test_a_shift_beyond_max_shift_is_not_suggested():
    from cratedig.theory import Key

    cands = make_batch([_row(Key.parse("C").transpose(5).camelot, 5)])
    scores = score_candidates(query(), cands, max_shift=3)
    assert abs(scores.semitones[0]) <= 3
    assert scores.terms["harmonic"][0] < 0.9


def test_untransposed_partner_beats_its_shifted_copy():
    cands = make_batch([_row("C", 0), _row("C#", 1)])
    scores = score_candidates(query(), cands)
    assert list(scores.ranking()) == [0, 1]
    assert scores.semitones[1] == -1


def test_harmonic_term_is_bar_by_bar():
    rolled = np.roll(progression("C", POP), 1, axis=0)  # the same chords, one bar late
    cands = make_batch([_row(), _row(chroma=rolled)])
    h = score_candidates(query(), cands).terms["harmonic"]
    assert h[0] > 0.95 and h[1] < h[0] - 0.3


def test_half_time_candidate_bars_map_onto_two_query_bars():
    # Query holds each chord two bars; a half-tempo candidate plays one chord per (long) bar.
    held = progression("C", [1, 1, 5, 5, 6, 6, 4, 4])
    cands = make_batch(
        [_row(tempo=64.0, chroma=progression("C", [1, 5, 6, 4])), _row(tempo=64.0, chroma=held)]
    )
    scores = score_candidates(query(chroma=held), cands)
    assert scores.tempo_ratio[0] == 2.0
    assert scores.terms["harmonic"][0] > 0.95
    assert scores.terms["harmonic"][0] > scores.terms["harmonic"][1]


def test_a_fragment_ranks_below_the_whole_phrase():
    """A 3-bar tail with the right chords leaves an 8-bar phrase bare for five bars."""
    whole = progression("C", POP)
    cands = make_batch([_row(chroma=whole[:3]), _row(chroma=whole)])
    scores = score_candidates(query(), cands)
    assert scores.terms["harmonic"][0] > 0.95 and scores.terms["harmonic"][1] > 0.95
    assert list(scores.coverage) == [3 / 8, 1.0]
    assert list(scores.ranking()) == [1, 0]
    assert scores.score[0] == pytest.approx(scores.score[1] * (0.7 + 0.3 * 3 / 8), rel=0.02)
    rec = candidate_records(query(), cands, scores, [0, 1])
    assert rec[0]["coverage"] == 0.375 and "covers 3 of 8 bars" in rec[0]["reason"]
    assert rec[1]["coverage"] == 1.0 and "covers" not in rec[1]["reason"]


def test_half_time_bars_cover_two_query_bars_each():
    held = progression("C", [1, 1, 5, 5, 6, 6, 4, 4])
    half = make_batch([_row(tempo=64.0, chroma=progression("C", [1, 5, 6, 4]))])
    scores = score_candidates(query(chroma=held), half)
    assert scores.tempo_ratio[0] == 2.0 and scores.coverage[0] == 1.0
    # Double time: 8 candidate bars last 4 query bars.
    double = make_batch([_row(tempo=256.0)])
    scores = score_candidates(query(), double)
    assert scores.tempo_ratio[0] == 0.5 and scores.coverage[0] == 0.5


def test_silent_bars_do_not_count():
    chroma = progression("C", POP)
    chroma[4:] = 0.0
    scores = score_candidates(query(), make_batch([_row(chroma=chroma)]))
    assert scores.terms["harmonic"][0] > 0.95


# -- rhythm, spectral balance, energy -------------------------------------------------------------
def test_rhythm_same_grid_beats_offbeats():
    cands = make_batch([_row(rhythm=pattern(FOUR_ON_FLOOR)), _row(rhythm=pattern([2, 6, 10, 14]))])
    r = score_candidates(query(), cands).terms["rhythm"]
    assert r[0] == pytest.approx(1.0)
    assert r[1] == pytest.approx(0.0)


def test_rhythm_maps_through_half_time():
    # Eighth notes of a half-tempo candidate fall on the query's quarter notes.
    cand = make_batch([_row(tempo=64.0, rhythm=pattern(range(0, 16, 2)))])
    r = score_candidates(query(rhythm=pattern(FOUR_ON_FLOOR)), cand).terms["rhythm"]
    assert r[0] == pytest.approx(1.0)


def test_rhythm_across_meters_is_zero():
    cand = make_batch([_row(rhythm=pattern([0, 4, 8], steps=12), steps=12)])
    assert score_candidates(query(), cand).terms["rhythm"][0] == 0.0


def test_two_bass_heavy_layers_clash():
    q = query(balance=(0.8, 0.15, 0.05))
    cands = make_batch([_row(balance=(0.8, 0.15, 0.05)), _row(balance=(0.1, 0.7, 0.2))])
    scores = score_candidates(q, cands)
    sp = scores.terms["spectral"]
    assert sp[0] < 0.3 < 0.6 < sp[1]
    assert "two bass-heavy layers" in explain(q, cands, scores, [0])[0]


def test_two_mid_heavy_layers_clash_more_than_mid_over_bass():
    q = query(balance=(0.1, 0.8, 0.1))
    cands = make_batch([_row(balance=(0.1, 0.8, 0.1)), _row(balance=(0.7, 0.25, 0.05))])
    sp = score_candidates(q, cands).terms["spectral"]
    assert sp[0] < sp[1]


def test_energy_continuity():
    cands = make_batch([_row(energy=0.8), _row(energy=0.2)])
    e = score_candidates(query(energy=0.8), cands).terms["energy"]
    assert e[0] == pytest.approx(1.0) and e[1] == pytest.approx(0.4)


# -- the combined score ---------------------------------------------------------------------------
def test_every_term_and_the_score_lie_in_unit_interval(rng):
    batch = random_batch(rng, 300)
    for q in range(5):
        scores = score_candidates(batch.take([q]), batch, max_shift=6, max_stretch=0.2)
        assert set(scores.terms) == set(TERMS)
        for name, v in scores.terms.items():
            assert v.shape == (300,), name
            assert np.all((v >= 0) & (v <= 1)), name
        assert np.all((scores.score >= 0) & (scores.score <= 1))
        # A segment matched with itself is a perfect harmonic, key and tempo fit.
        assert scores.terms["harmonic"][q] > 0.99
        assert scores.semitones[q] == 0 and scores.relation_name(q) == "same"


def test_weights_change_the_ranking():
    # Candidate 1 grooves against the query (off-beats) but keeps its energy. (Not a
    # transposed copy: a copy off its harmonic peak is held down by the transposition term,
    # which multiplies whatever the weights.)
    cands = make_batch([_row(energy=0.1), _row(rhythm=pattern([2, 6, 10, 14]), energy=0.8)])
    default = score_candidates(query(energy=0.8), cands, max_shift=0)
    energy_only = score_candidates(query(energy=0.8), cands, max_shift=0, weights={"energy": 1.0})
    assert default.ranking()[0] == 0
    assert energy_only.ranking()[0] == 1


def test_bad_arguments_raise_parameter_error():
    with pytest.raises(ParameterError):
        score_candidates(make_batch([_row(), _row()]), make_batch([_row()]))
    with pytest.raises(ParameterError):
        score_candidates(query(), make_batch([_row()]), weights={"loudness": 1.0})
    with pytest.raises(ParameterError):
        score_candidates(query(), make_batch([_row()]), max_shift=7)


def test_records_follow_the_match_json_contract():
    from cratedig.theory import Key

    cands = make_batch([_row(Key.parse("C").transpose(2).camelot, 2, tempo=126.0)])
    scores = score_candidates(query(), cands)
    (rec,) = candidate_records(query(), cands, scores, [0])
    assert rec["semitones"] == -2 and rec["key_relation"] == "same"
    assert rec["tempo_ratio"] == 1.0 and rec["stretch"] == pytest.approx(128 / 126 - 1, abs=1e-4)
    assert set(rec["terms"]) == set(TERMS)
    assert "after -2 st" in rec["reason"] and "126→128 BPM (+1.6%)" in rec["reason"]


def test_unclear_key_labels_weigh_less():
    cands = make_batch([_row("F#", 0, key_clarity=1.0), _row("F#", 0, key_clarity=0.2)])
    key = score_candidates(query(), cands, max_shift=0).terms["key"]
    assert key[0] == pytest.approx(0.0)  # a confident tritone
    assert key[1] == pytest.approx(0.8)  # 1 - 0.2 * (1 - 0)


def test_beat_rows_see_a_half_bar_misalignment():
    from cratedig.match.batch import SegmentBatch

    # Four beats per bar; each bar's chord sounds on its four beats.
    beats = np.repeat(progression("C", POP), 4, axis=0)
    late = np.roll(beats, 2, axis=0)  # half a bar late
    q, c = query(chroma=beats), make_batch([_row(chroma=beats), _row(chroma=late)])
    q.units_per_bar = c.units_per_bar = 4
    h = score_candidates(q, c).terms["harmonic"]
    assert h[0] > 0.95 and h[1] < 0.7
    # Averaged per bar the two are the same chords, half mixed.
    bar_q = SegmentBatch(**{**vars(q), "units_per_bar": 4})
    mean, mask = bar_q.bar_chroma()
    assert mean.shape == (1, 8, 12) and mask.all()
    np.testing.assert_allclose(mean[0], progression("C", POP), atol=1e-6)


def test_mixed_chroma_units_are_refused():
    q = query()
    q.units_per_bar = 4
    with pytest.raises(ParameterError):
        score_candidates(q, make_batch([_row()]))


def test_fit_labels_have_a_floor():
    from cratedig.match.query import SegmentMatches
    from cratedig.match.scoring import FIT_FLOOR, FIT_GOOD, fit_of

    assert 0.0 < FIT_FLOOR < FIT_GOOD < 1.0
    assert fit_of(FIT_GOOD) == "good" and fit_of(FIT_FLOOR) == "fair"
    assert fit_of(FIT_FLOOR - 1e-3) == "poor"
    seg = type("Seg", (), {"id": "q_0"})()
    poor = SegmentMatches(query=seg, candidates=[{"fit": "poor"}, {"fit": "poor"}]).to_json()
    assert poor["fit"] == "none" and poor["no_good_partner"] is True
    empty = SegmentMatches(query=seg).to_json()
    assert empty["fit"] == "none" and empty["no_good_partner"] is True
    fair = SegmentMatches(query=seg, candidates=[{"fit": "poor"}, {"fit": "fair"}]).to_json()
    assert fair["fit"] == "fair" and fair["no_good_partner"] is False


def test_a_pair_its_reasons_call_poor_is_labelled_poor():
    """Issue 10: "chords disagree; two bass-heavy layers" sat at the top as a fair fit.

    Same key label, same groove, same energy: those terms carry the score over the floor
    although the chords disagree bar by bar and both layers are bass-heavy. The fit label is
    taken from the same terms as the reasons and must not contradict them.
    """
    from cratedig.match.scoring import FIT_FLOOR, FIT_GOOD, fit_of

    bassy = (0.7, 0.2, 0.1)
    q = query(balance=bassy)
    # Another progression in the same key: one chord tone in common most bars, and no other
    # rotation fits better (the transposition term stays 1).
    other = progression("C", [6, 2, 6, 5, 6, 2, 5, 6])
    clash = _row("C", chroma=other, balance=bassy)
    apart = _row("C", chroma=other)
    cands = make_batch([clash, apart])
    scores = score_candidates(q, cands, max_shift=0)
    reasons = explain(q, cands, scores, [0, 1], max_stretch=0.08)
    assert "chords disagree" in reasons[0] and "two bass-heavy layers" in reasons[0]
    assert "chords disagree" in reasons[1] and "bass-heavy" not in reasons[1]
    assert scores.score[0] >= FIT_FLOOR  # the weighted score alone would call it fair
    labels = [
        fit_of(float(scores.score[i]), harmonic=float(scores.terms["harmonic"][i]),
               spectral=float(scores.terms["spectral"][i]))
        for i in range(2)
    ]  # fmt: skip
    assert labels[0] == "poor"
    # Chords that disagree are never a good fit, whatever the rest adds up to.
    assert fit_of(FIT_GOOD + 0.1, harmonic=0.2, spectral=0.9) == "fair"
    assert labels[1] in ("fair", "poor")


def test_a_key_relation_waived_by_an_unclear_label_says_so():
    """A phrase whose key label is unclear has its relation's cost waived by the key term; the
    reason must not read "distant keys" as a verdict then. A clear pair keeps the plain words."""
    clear = make_batch([_row("F#", 6)])
    unclear = make_batch([_row("F#", 6, key_clarity=0.05)])
    for cands, waived in ((clear, False), (unclear, True)):
        scores = score_candidates(query(), cands, max_shift=0)
        reason = explain(query(), cands, scores, [0])[0]
        assert reason.startswith("tritone clash (8B/2B)"), reason
        assert ("the partner's key is unclear: the chords decide" in reason) is waived, reason
        assert bool(scores.terms["key"][0] > 0.9) is waived
    both = explain(
        query(key_clarity=0.1),
        unclear,
        score_candidates(query(key_clarity=0.1), unclear, max_shift=0),
        [0],
    )[0]
    assert "but both keys are unclear" in both, both
    same = make_batch([_row("C", key_clarity=0.05)])
    assert "unclear" not in explain(query(), same, score_candidates(query(), same), [0])[0]
