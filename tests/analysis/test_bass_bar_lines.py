"""Bar lines of a chordless groove come from its bass line, not from its kick drums (analysis v23).

The kick of the most common rock beat falls on 1, 3 and the "and" of 3. Two kicks half a beat
apart sound as long as a held bass note, so the bar-line cue of bass changes heard a change on
beat 3 and, with no chords to say otherwise, put the bar lines there: ``bench/grooves.py`` had
23 of 384 grooves with their bar lines half a bar off, all of them this kick without chords.
The cue now counts bass pitches held for ``BASS_HOLD_FRAMES`` tonal frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import BASS_HOLD_FRAMES, _held

from .test_backbeat import SR, _groove


@pytest.mark.parametrize(
    ("bpm", "hats"),
    [(108.0, "16"), (108.0, "off"), (118.0, "8"), (132.0, "none"), (140.0, "8")],
)
def test_bar_lines_follow_the_bass_line_not_two_kicks(bpm, hats):
    a = analyze_signal(_groove(bpm, (0.0, 2.0, 2.5), hats), sr=SR)
    assert a.tempo == pytest.approx(bpm, rel=0.04)
    assert a.time_signature == (4, 4)
    bar = 4 * 60.0 / bpm
    # every bar line on a bar of the groove (the bass note's onset), none on its beat 3
    off = np.abs((np.asarray(a.downbeats) / bar + 0.5) % 1.0 - 0.5)
    assert np.median(off) < 0.03


def test_held_keeps_what_lasts_and_drops_hits():
    x = np.zeros((40, 12))
    x[5:7, 0] = 1.0  # two frames: a pair of kicks
    x[10:30, 4] = 1.0  # a held bass note
    h = _held(x, BASS_HOLD_FRAMES)
    assert h.shape == x.shape
    assert h[:, 0].max() == 0.0
    assert h[12:28, 4].min() == 1.0 and h[:8, 4].max() == 0.0
    assert np.array_equal(_held(x[:3], BASS_HOLD_FRAMES), x[:3])  # shorter than the window
