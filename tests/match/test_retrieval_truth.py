"""The real-stems retrieval bench's truth: which accompaniment phrases carry the query's chords.

``bench/retrieval.py --set real`` counts as right partners of a lead phrase the accompaniment
phrase at the same bars and every phrase of that accompaniment under the same chords (a repeat
of the progression). Diagnosed on the dev split (issue 10): the rule's first suggestion was
often a repeat of the right progression whose figuration differs (or whose beat grid is off by
half a beat), correlating 0.89-0.98 bar by bar with the accompaniment on the query's bars but
0.79-0.88 beat by beat, and the beat-level criterion called it a miss. Here a synthesized
accompaniment plays a progression in block chords, then the same progression arpeggiated (one
chord tone per beat), then another progression: the arpeggiated repeat has the same chords,
the other progression does not, whatever the figuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cratedig.analysis.pipeline import analyze_signal

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import retrieval  # noqa: E402

SR = 22050
BEAT = 0.5  # 120 BPM, 4/4
A_MINOR = [(57, 60, 64), (53, 57, 60), (50, 53, 57), (52, 55, 59)]  # Am F Dm Em
FAR = [(61, 66, 70), (63, 66, 70), (56, 61, 64), (54, 58, 61)]  # a progression far away


def _tone(midi: int, dur: float) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    f = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3, 4))
    return np.asarray(y * np.exp(-t * 1.5) * np.minimum(1.0, t / 0.01))


def _kick() -> np.ndarray:
    t = np.arange(int(0.15 * SR)) / SR
    return np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 25)


def _render(bars: list[tuple[tuple[int, int, int], str]]) -> np.ndarray:
    """Kick on every beat; per bar a chord played as ``"block"``, ``"arp"`` or ``"lead"``
    (the chord's root an octave up on every beat: the query's melody)."""
    y = np.zeros(int(len(bars) * 4 * BEAT * SR) + SR)
    k = _kick()
    for b, (chord, how) in enumerate(bars):
        t0 = b * 4 * BEAT
        for beat in range(4):
            s = int((t0 + beat * BEAT) * SR)
            y[s : s + len(k)] += 0.8 * k
            if how != "block":
                note = chord[beat % 3] + 12 * (beat == 3) if how == "arp" else chord[0] + 12
                n = _tone(note, BEAT)
                y[s : s + len(n)] += 0.3 * n
        if how == "block":
            s = int(t0 * SR)
            for m in chord:
                n = _tone(m, 4 * BEAT)
                y[s : s + len(n)] += 0.2 * n
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    acc = _render(
        [(c, "block") for c in A_MINOR * 2]
        + [(c, "arp") for c in A_MINOR * 2]
        + [(c, "block") for c in FAR * 2]
    )
    query = _render([(c, "lead") for c in (A_MINOR * 4 + FAR * 2)])
    path = tmp_path_factory.mktemp("stems") / "partner.wav"
    sf.write(path, acc, SR)
    return {
        "partner_path": str(path),
        "query": analyze_signal(query, sr=SR, track_id="q"),
        "partner": analyze_signal(acc, sr=SR, track_id="p"),
    }


def _phrase_at(segments, start: float):
    return min(segments, key=lambda s: abs(s.start - start))


def test_an_arpeggiated_repeat_of_the_progression_counts_as_the_same_chords(song):
    qa, pa = song["query"], song["partner"]
    assert abs(qa.tempo - 120) < 2 and abs(pa.tempo - 120) < 2
    ideals = retrieval._ideal_partners(song, qa, pa)
    assert ideals is not None
    bar = 4 * BEAT
    qi = qa.segments.index(_phrase_at(qa.segments, 0.0))
    block, arp, far = (_phrase_at(pa.segments, b * bar) for b in (0, 8, 16))
    assert (block.bar, arp.bar, far.bar) == (0, 8, 16)
    strict, rel = retrieval._relevant(qa.segments[qi], ideals[qi], pa.segments, BEAT)
    assert strict == [block.id]
    assert arp.id in rel  # the same chords, arpeggiated: a right partner
    assert far.id not in rel
    # Beat by beat the arpeggio reads as other harmony: the old criterion missed it.
    assert not retrieval.same_chords_as(ideals[qi], arp, unit="beat")
    assert retrieval.same_chords_as(ideals[qi], arp, unit="bar")


def test_same_chords_rejects_an_unknown_unit(song):
    seg = song["partner"].segments[0]
    with pytest.raises(ValueError, match="unit"):
        retrieval.same_chords_as(seg, seg, unit="bars")
