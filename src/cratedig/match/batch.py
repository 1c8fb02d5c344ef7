"""Feature arrays of many segments at once: what the scorer and the index read.

A :class:`SegmentBatch` is the columnar form of a list of
:class:`~cratedig.analysis.records.Segment`: one array per feature, one row per segment, chroma
padded to a common number of bars with a mask. Every matching function takes batches so that
thousands of candidates are scored with a few numpy calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from cratedig.analysis.records import Segment, SegmentFeatures
from cratedig.errors import ParameterError

#: Steps of the rhythm grid the batch stores (16ths of a 4/4 bar); 3/4 patterns use 12.
RHYTHM_STEPS = 16
#: Chroma rows per bar of a beat-level batch (the beats of a 4/4 bar).
BEAT_UNITS = 4


@dataclass
class SegmentBatch:
    """Features of ``n`` segments as arrays.

    Attributes
    ----------
    ids : np.ndarray [shape=(n,), dtype=object]
        Segment ids (``<trackid>_<n>``).
    track_ids : np.ndarray [shape=(n,), dtype=object]
    tempo : np.ndarray [shape=(n,), dtype=float64]
        BPM.
    key_index : np.ndarray [shape=(n,), dtype=int64]
        :attr:`cratedig.theory.Key.index`: 0..11 major by tonic, 12..23 minor by tonic.
    key_clarity : np.ndarray [shape=(n,), dtype=float32]
        Confidence of the key label in [0, 1] (``SegmentFeatures.key_clarity``).
    chroma : np.ndarray [shape=(n, rows, 12), dtype=float32]
        Beat-synchronous chroma, ``units_per_bar`` rows per bar (1: one row per bar, as
        ``SegmentFeatures.chroma``; 4: one per beat in 4/4), rows L1-normalised, zero-padded
        after each segment's end.
    chroma_mask : np.ndarray [shape=(n, rows), dtype=bool]
        True where ``chroma`` holds a real, non-silent row.
    rhythm : np.ndarray [shape=(n, 16), dtype=float32]
        Onset pattern on the 16th grid, max-scaled; 3/4 patterns fill the first 12 steps.
    steps : np.ndarray [shape=(n,), dtype=int64]
        Steps per bar of ``rhythm`` (16 in 4/4, 12 in 3/4).
    balance : np.ndarray [shape=(n, 3), dtype=float32]
        Low / mid / high energy fractions.
    energy : np.ndarray [shape=(n,), dtype=float32]
        Relative energy in [0, 1].
    labels : np.ndarray [shape=(n,), dtype=object]
        Section label of each segment (``Segment.label``: ``"drop"``, ``"break"``...), ``""``
        when unknown; the scorer's section-role factor reads it. Defaults to all unknown.
    units_per_bar : int
        Chroma rows per bar, the same for every segment of the batch.
    """

    ids: np.ndarray
    track_ids: np.ndarray
    tempo: np.ndarray
    key_index: np.ndarray
    key_clarity: np.ndarray
    chroma: np.ndarray
    chroma_mask: np.ndarray
    rhythm: np.ndarray
    steps: np.ndarray
    balance: np.ndarray
    energy: np.ndarray
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    units_per_bar: int = 1

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.labels) == 0 and n:
            self.labels = np.full(n, "", dtype=object)
        if self.units_per_bar < 1:
            raise ParameterError(f"units_per_bar={self.units_per_bar} must be >= 1")
        for f in _array_fields():
            v = getattr(self, f)
            if len(v) != n:
                raise ParameterError(f"SegmentBatch.{f} has {len(v)} rows, ids has {n}")
        if self.chroma.ndim != 3 or self.chroma.shape[2] != 12:
            raise ParameterError(f"chroma must have shape (n, bars, 12), got {self.chroma.shape}")
        if self.chroma_mask.shape != self.chroma.shape[:2]:
            raise ParameterError(
                f"chroma_mask shape {self.chroma_mask.shape} != chroma rows {self.chroma.shape[:2]}"
            )
        if self.rhythm.shape[1:] != (RHYTHM_STEPS,):
            raise ParameterError(f"rhythm must have shape (n, 16), got {self.rhythm.shape}")
        if n and (self.key_index.min() < 0 or self.key_index.max() > 23):
            raise ParameterError("key_index must be in 0..23")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def rows(self) -> int:
        """Padded number of chroma rows."""
        return int(self.chroma.shape[1])

    def bar_chroma(self) -> tuple[np.ndarray, np.ndarray]:
        """Chroma averaged per bar and its mask -> (n, bars, 12), (n, bars)."""
        if self.units_per_bar == 1:
            return self.chroma, self.chroma_mask
        u = self.units_per_bar
        bars = -(-self.rows // u)
        pad = bars * u - self.rows
        c = np.pad(self.chroma, ((0, 0), (0, pad), (0, 0))).reshape(len(self), bars, u, 12)
        m = np.pad(self.chroma_mask, ((0, 0), (0, pad))).reshape(len(self), bars, u)
        count = m.sum(axis=2)
        mean = (c * m[..., None]).sum(axis=2) / np.maximum(count, 1)[..., None]
        return mean.astype(np.float32), count > 0

    def bar_mask(self) -> np.ndarray:
        """Bars in which any row sounds -> (n, bars): :meth:`bar_chroma`'s mask, without the means."""
        if self.units_per_bar == 1:
            return self.chroma_mask
        u = self.units_per_bar
        bars = -(-self.rows // u)
        m = np.pad(self.chroma_mask, ((0, 0), (0, bars * u - self.rows)))
        return np.asarray(m.reshape(len(self), bars, u).any(axis=2), dtype=bool)

    @classmethod
    def from_segments(
        cls, segments: Sequence[Segment], *, bars: int | None = None, unit: str = "beat"
    ) -> SegmentBatch:
        """Stack segments' features.

        Parameters
        ----------
        segments : sequence of Segment
        bars : int, optional
            Pad or truncate chroma to this many bars (default: the longest segment).
        unit : {"beat", "bar"}
            Chroma rows: ``"beat"`` stores ``SegmentFeatures.beat_chroma`` with
            :data:`BEAT_UNITS` rows per bar (3/4 bars leave their fourth row empty; longer bars
            fold their beats onto four slots); ``"bar"`` stores one averaged row per bar.

        Examples
        --------
        >>> batch = SegmentBatch.from_segments(analysis.segments)  # doctest: +SKIP
        >>> batch.chroma.shape, batch.units_per_bar  # doctest: +SKIP
        ((12, 32, 12), 4)
        """
        if unit not in ("beat", "bar"):
            raise ParameterError(f"unit={unit!r} must be 'beat' or 'bar'")
        n = len(segments)
        nb = (
            bars if bars is not None else max((len(s.features.chroma) for s in segments), default=1)
        )
        units = BEAT_UNITS if unit == "beat" else 1
        chroma = np.zeros((n, nb * units, 12), np.float32)
        rhythm = np.zeros((n, RHYTHM_STEPS), np.float32)
        steps = np.zeros(n, np.int64)
        for i, s in enumerate(segments):
            if unit == "bar":
                c = np.asarray(s.features.chroma, np.float32).reshape(-1, 12)[:nb]
                chroma[i, : len(c)] = c
            else:
                _put_beats(chroma[i], s.features, nb)
            r = np.asarray(s.features.rhythm, np.float32).reshape(-1)
            if len(r) > RHYTHM_STEPS:
                raise ParameterError(f"segment {s.id}: {len(r)} rhythm steps, at most 16")
            rhythm[i, : len(r)] = r
            steps[i] = len(r)
        return cls(
            ids=np.array([s.id for s in segments], dtype=object),
            track_ids=np.array([s.track_id for s in segments], dtype=object),
            tempo=np.array([s.tempo for s in segments], np.float64),
            key_index=np.array([s.key.index for s in segments], np.int64),
            key_clarity=np.array([s.features.key_clarity for s in segments], np.float32),
            chroma=chroma,
            chroma_mask=chroma.sum(axis=2) > 1e-6,
            rhythm=rhythm,
            steps=steps,
            balance=np.array(
                [np.asarray(s.features.spectral_balance).reshape(3) for s in segments], np.float32
            ).reshape(n, 3),
            energy=np.array([s.features.energy for s in segments], np.float32),
            labels=np.array([s.label or "" for s in segments], dtype=object),
            units_per_bar=units,
        )

    def take(self, rows: np.ndarray | Sequence[int] | slice) -> SegmentBatch:
        """The sub-batch of ``rows`` (indices, a boolean mask or a slice)."""
        idx = rows if isinstance(rows, slice) else np.asarray(rows)
        return SegmentBatch(
            **{f: getattr(self, f)[idx] for f in _array_fields()}, units_per_bar=self.units_per_bar
        )

    @classmethod
    def concat(cls, batches: Sequence[SegmentBatch]) -> SegmentBatch:
        """Rows of several batches, chroma padded to the longest."""
        if not batches:
            raise ParameterError("concat needs at least one batch")
        units = {b.units_per_bar for b in batches}
        if len(units) > 1:
            raise ParameterError(f"cannot concat batches with units_per_bar {sorted(units)}")
        nr = max(b.rows for b in batches)
        padded = [_pad_rows(b, nr) for b in batches]
        return cls(
            **{f: np.concatenate([getattr(b, f) for b in padded]) for f in _array_fields()},
            units_per_bar=units.pop(),
        )


def _put_beats(out: np.ndarray, f: SegmentFeatures, bars: int) -> None:
    """Write ``f.beat_chroma`` into ``out`` (bars * BEAT_UNITS, 12), BEAT_UNITS slots per bar."""
    bpb = f.beats_per_bar
    if bpb == 0:
        return
    beats = np.asarray(f.beat_chroma, np.float32).reshape(-1, 12)[: bars * bpb]
    j = np.arange(len(beats))
    bar, beat = j // bpb, j % bpb
    if bpb <= BEAT_UNITS:
        out[bar * BEAT_UNITS + beat] = beats
        return
    # Bars of more than four beats: fold beat k onto slot floor(k * 4 / bpb), averaged.
    slot = bar * BEAT_UNITS + beat * BEAT_UNITS // bpb
    np.add.at(out, slot, beats)
    total = out.sum(axis=1, keepdims=True)
    out[:] = np.where(total > 1e-9, out / np.maximum(total, 1e-12), 0.0)


def _array_fields() -> list[str]:
    return [f.name for f in fields(SegmentBatch) if f.name != "units_per_bar"]


def _pad_rows(b: SegmentBatch, rows: int) -> SegmentBatch:
    if b.rows == rows:
        return b
    extra = rows - b.rows
    return SegmentBatch(
        **{
            **{f: getattr(b, f) for f in _array_fields()},
            "chroma": np.pad(b.chroma, ((0, 0), (0, extra), (0, 0))),
            "chroma_mask": np.pad(b.chroma_mask, ((0, 0), (0, extra))),
        },
        units_per_bar=b.units_per_bar,
    )
