"""Analysis on synthesized songs with known truth: thresholds, not copied floats."""

import mir_eval
import numpy as np

from cratedig.theory import mirex_key_score


def test_tempo_accuracy1(songs, analyses):
    hits = [abs(a.tempo / s.tempo - 1) <= 0.04 for s, a in zip(songs, analyses, strict=True)]
    assert np.mean(hits) >= 7 / 8, [
        (s.tempo, round(a.tempo, 2)) for s, a in zip(songs, analyses, strict=False)
    ]


def test_tempo_precise_on_steady_grid(songs, analyses):
    # A whole track on a fixed grid measures its tempo far better than 4 %: within 0.5 %.
    errs = [abs(a.tempo / s.tempo - 1) for s, a in zip(songs, analyses, strict=True)]
    assert np.median(errs) < 0.005


def test_key_mirex(songs, analyses):
    scores = [mirex_key_score(s.key, a.key) for s, a in zip(songs, analyses, strict=True)]
    assert np.mean(scores) >= 0.85, [
        (str(s.key), str(a.key)) for s, a in zip(songs, analyses, strict=False)
    ]


def test_beats_f_measure(songs, analyses):
    f = [mir_eval.beat.f_measure(s.beats, a.beats) for s, a in zip(songs, analyses, strict=True)]
    assert np.mean(f) >= 0.9, np.round(f, 2)


def test_downbeats_and_meter(songs, analyses):
    f = [
        mir_eval.beat.f_measure(s.downbeats, a.downbeats)
        for s, a in zip(songs, analyses, strict=True)
    ]
    assert np.mean(f) >= 0.85, np.round(f, 2)
    meters = [a.time_signature[0] == s.meter for s, a in zip(songs, analyses, strict=True)]
    assert np.mean(meters) >= 7 / 8


def test_no_beats_in_lead_in_silence(songs, analyses):
    for s, a in zip(songs, analyses, strict=True):
        if s.lead_in > 0.5:
            assert a.beats[0] > s.lead_in - 0.07


def test_downbeats_are_beats_and_segments_on_downbeats(analyses):
    for a in analyses:
        assert np.all(np.isin(np.round(a.downbeats, 6), np.round(a.beats, 6)))
        starts = np.array([seg.start for seg in a.segments])
        assert np.all(np.min(np.abs(starts[:, None] - a.downbeats[None, :]), axis=1) < 1e-6)
        assert all(seg.bars in (2, 3, 4, 5, 6, 8, 9, 10, 16) for seg in a.segments)
        # Segments tile the bar grid without gaps or overlaps.
        for x, y in zip(a.segments, a.segments[1:], strict=False):
            assert abs(x.end - y.start) < 1e-6 and y.bar == x.bar + x.bars


def test_section_boundaries(songs, analyses):
    hits = []
    for s, a in zip(songs, analyses, strict=True):
        ref = np.array([[st, en] for st, en, _ in s.sections])
        est = np.array([[x.start, x.end] for x in a.sections])
        if len(est) < 2:
            hits.append(0.0)
            continue
        _, _, f = mir_eval.segment.detection(ref, est, window=3.0, trim=True)
        hits.append(f)
    assert np.mean(hits) >= 0.6, np.round(hits, 2)
