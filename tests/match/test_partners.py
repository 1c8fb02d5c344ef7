"""Synthesized stems with known truth: a lead + drums phrase must find its own accompaniment.

The library holds the song's accompaniment (drums, bass, chords) and two copies of it
transposed by Rubber Band: by a fourth (its key is then a fifth from the query's, which the key
rule calls fine) and by a semitone. The untransposed accompaniment at the same bars is the
right partner (issue 10).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.match import SegmentBatch, score_candidates
from cratedig.match.scoring import harmonic_fit
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def stems_library():
    from pedalboard import time_stretch

    song = synthesize_song(tempo=122.0, key=Key.parse("D major"), bars=16, seed=41, sr=SR)
    s = song.stems
    query = (s["lead"] + s["drums"]).astype(np.float32)
    acc = (s["drums"] + s["bass"] + s["chords"]).astype(np.float32)

    def shifted(semitones: float) -> np.ndarray:
        return time_stretch(acc[None], SR, stretch_factor=1.0, pitch_shift_in_semitones=semitones)[
            0
        ].astype(np.float32)

    signals = {"query": query, "own": acc, "fourth": shifted(5.0), "semitone": shifted(1.0)}
    lib = {name: analyze_signal(y, sr=SR, track_id=name) for name, y in signals.items()}
    # Query phrases where the lead plays (the intro is drums only: nothing harmonic to match).
    lead = s["lead"]
    lib["lead_phrases"] = [
        seg
        for seg in lib["query"].segments
        if np.sqrt(np.mean(lead[int(seg.start * SR) : int(seg.end * SR)] ** 2)) > 0.01
    ]
    return lib


def _nearest(segments, start: float):
    return min(segments, key=lambda c: abs(c.start - start))


def test_own_accompaniment_beats_its_copies_a_fourth_and_a_semitone_away(stems_library):
    lib = stems_library
    cands = [c for name in ("own", "fourth", "semitone") for c in lib[name].segments]
    batch = SegmentBatch.from_segments(cands, unit="beat")
    checked = 0
    for seg in lib["lead_phrases"]:
        q = SegmentBatch.from_segments([seg], unit="beat")
        sc = score_candidates(q, batch)
        ids = list(batch.ids)
        rank = {ids[i]: r for r, i in enumerate(sc.ranking())}
        own = _nearest(lib["own"].segments, seg.start)
        for copy in ("fourth", "semitone"):
            other = _nearest(lib[copy].segments, seg.start)
            assert rank[own.id] < rank[other.id], (seg.id, copy, sc.terms)
        # The first suggestion is never a transposed copy.
        assert not ids[int(sc.ranking(1)[0])].startswith(("fourth", "semitone"))
        checked += 1
    assert checked >= 2


def test_transposition_term_is_one_at_the_harmonic_peak(stems_library):
    lib = stems_library
    seg = lib["lead_phrases"][0]
    q = SegmentBatch.from_segments([seg], unit="beat")
    own = _nearest(lib["own"].segments, seg.start)
    fourth = _nearest(lib["fourth"].segments, seg.start)
    sc = score_candidates(q, SegmentBatch.from_segments([own, fourth], unit="beat"))
    assert sc.terms["transposition"][0] == pytest.approx(1.0, abs=0.02)
    # The copy a fourth up peaks at -5 semitones, beyond the default 3-semitone limit.
    assert sc.terms["transposition"][1] < sc.terms["transposition"][0] - 0.05
    c = SegmentBatch.from_segments([fourth], unit="beat")
    rotations = np.arange(-5, 7)
    harm = harmonic_fit(q.chroma[0], q.chroma_mask[0], c.chroma, c.chroma_mask,
                        np.zeros(1, np.int64), rotations)  # fmt: skip
    assert int(rotations[np.argmax(harm[0])]) == -5


def _labelled(seg, key: str, clarity: float):
    """``seg`` with its key label replaced (the notes, and so the harmonic term, unchanged)."""
    feats = replace(seg.features, key_clarity=clarity)
    return replace(seg, key=Key.parse(key), features=feats)


def test_clear_harmony_outvotes_noisy_key_labels(stems_library):
    """Labels of short lead phrases are noisy; where both layers sound, the notes decide.

    The accompaniment at the lead's bars carries a label a whole tone off the query's ("energy
    boost") and its copy a fourth up one the same as the query's: measured on real stems
    (``bench/retrieval.py --set real``), such labels put the copy first although its chords
    agree less with the lead (issue 10).
    """
    lib = stems_library
    checked = 0
    for seg in lib["lead_phrases"]:
        q = _labelled(seg, "D major", 0.9)
        own = _labelled(_nearest(lib["own"].segments, seg.start), "E major", 0.9)
        fourth = _labelled(_nearest(lib["fourth"].segments, seg.start), "D major", 0.9)
        batch = SegmentBatch.from_segments([own, fourth], unit="beat")
        sc = score_candidates(SegmentBatch.from_segments([q], unit="beat"), batch)
        # The accompaniment's own chords agree with the lead better than the copy's do ...
        assert sc.terms["harmonic"][0] > sc.terms["harmonic"][1]
        # ... and that, not the labels, ranks it first.
        assert sc.score[0] > sc.score[1], sc.terms
        checked += 1
    assert checked >= 2
