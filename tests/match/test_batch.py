"""SegmentBatch from analysed segments: beat rows, bar rows, 3/4 padding."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.match.batch import BEAT_UNITS, SegmentBatch


def test_beat_rows_come_from_the_segments_beat_chroma(analyses):
    a = next(a for a in analyses if a.time_signature[0] == 4)
    batch = SegmentBatch.from_segments(a.segments)
    assert batch.units_per_bar == BEAT_UNITS
    longest = max(s.bars for s in a.segments)
    assert batch.chroma.shape == (len(a.segments), longest * BEAT_UNITS, 12)
    for i, s in enumerate(a.segments):
        np.testing.assert_allclose(batch.chroma[i, : s.bars * 4], s.features.beat_chroma, atol=1e-6)
        assert not batch.chroma_mask[i, s.bars * 4 :].any()
    bars = SegmentBatch.from_segments(a.segments, unit="bar")
    assert bars.units_per_bar == 1 and bars.chroma.shape[1] == longest


def test_bar_mask_marks_the_bars_that_sound(analyses):
    a = next(a for a in analyses if a.time_signature[0] == 4)
    batch = SegmentBatch.from_segments(a.segments)
    mask = batch.bar_mask()
    np.testing.assert_array_equal(mask, batch.bar_chroma()[1])
    for i, s in enumerate(a.segments):
        assert mask[i, : s.bars].any() and not mask[i, s.bars :].any()
    bars = SegmentBatch.from_segments(a.segments, unit="bar")
    np.testing.assert_array_equal(bars.bar_mask(), bars.chroma_mask)


def test_three_four_bars_leave_the_fourth_slot_empty(analyses):
    a = next(a for a in analyses if a.time_signature[0] == 3)
    batch = SegmentBatch.from_segments(a.segments)
    rows = batch.chroma.reshape(len(a.segments), -1, BEAT_UNITS, 12)
    assert not rows[:, :, 3].any()
    s = a.segments[0]
    np.testing.assert_allclose(
        rows[0, : s.bars, :3].reshape(-1, 12), s.features.beat_chroma, atol=1e-6
    )
    # A 3/4 batch and a 4/4 batch concatenate (same rows per bar).
    four = next(a for a in analyses if a.time_signature[0] == 4)
    both = SegmentBatch.concat([batch, SegmentBatch.from_segments(four.segments)])
    assert len(both) == len(a.segments) + len(four.segments)


def test_unknown_unit_is_refused(analyses):
    with pytest.raises(ParameterError, match="unit"):
        SegmentBatch.from_segments(analyses[0].segments, unit="tatum")
