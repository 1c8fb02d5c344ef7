"""Analysis records: what analysing one track produces (pure data, no I/O).

The JSON forms follow the ``analyze --json`` contract in DESIGN.md. Feature arrays stay numpy
arrays here; :meth:`TrackAnalysis.to_json` rounds times to milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.theory import Key

#: Estimates under this confidence are reported as doubtful (``analyze``, ``match``).
LOW_CONFIDENCE = 0.5


@dataclass
class SegmentFeatures:
    """Per-segment feature vectors.

    Attributes
    ----------
    chroma : np.ndarray [shape=(bars, 12)]
        Beat-synchronous chroma averaged per bar, each row L1-normalised (zeros for silent bars).
    beat_chroma : np.ndarray [shape=(bars * beats_per_bar, 12)]
        The same chroma one row per beat (each bar split into its beats), L1-normalised: what
        the harmonic match term compares, since a bar average blurs a half-bar misalignment.
    rhythm : np.ndarray [shape=(steps,)]
        Onset strength on a 16th-note grid of one bar (16 steps in 4/4, 12 in 3/4), averaged over
        the segment's bars and scaled to max 1.
    spectral_balance : np.ndarray [shape=(3,)]
        Fractions of spectral energy in low (< 200 Hz), mid (200-2000 Hz), high (> 2 kHz) bands.
    energy : float
        RMS energy relative to the track's loudest segment, in [0, 1].
    rms_db : float
        RMS level in dBFS (of the analysis signal: the mix below 5.5 kHz).
    loudness : float
        Integrated loudness in LUFS (ITU-R BS.1770-4), -70.0 for silence.
    key_clarity : float
        Correlation margin of the best key over the runner-up, in [0, 1]: 0 = ambiguous.
    """

    chroma: np.ndarray
    beat_chroma: np.ndarray
    rhythm: np.ndarray
    spectral_balance: np.ndarray
    energy: float
    rms_db: float
    loudness: float
    key_clarity: float

    @property
    def beats_per_bar(self) -> int:
        """Rows of ``beat_chroma`` per bar (0 when there are no bars)."""
        bars = len(self.chroma)
        return len(self.beat_chroma) // bars if bars else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "chroma": np.round(self.chroma, 4).tolist(),
            "beat_chroma": np.round(self.beat_chroma, 4).tolist(),
            "rhythm": np.round(self.rhythm, 4).tolist(),
            "spectral_balance": np.round(self.spectral_balance, 4).tolist(),
            "energy": round(float(self.energy), 4),
            "rms_db": round(float(self.rms_db), 2),
            "loudness": round(float(self.loudness), 2),
            "key_clarity": round(float(self.key_clarity), 4),
        }


@dataclass
class Segment:
    """A musically meaningful span of a track (phrase level unless ``level`` says otherwise).

    ``id`` is ``<trackid>_<n>``; ``bar`` is the index of its first bar, ``bars`` how many.
    """

    id: str
    track_id: str
    index: int
    level: str  # "bar" | "phrase" | "section"
    start: float  # seconds
    end: float  # seconds
    bar: int
    bars: int
    label: str
    tempo: float
    key: Key
    features: SegmentFeatures
    section: int = 0  # index of the section that contains it

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self, *, features: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "level": self.level,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "bar": self.bar,
            "bars": self.bars,
            "label": self.label,
            "section": self.section,
            "tempo": round(self.tempo, 2),
            "key": self.key.name,
            "mode": self.key.mode,
            "camelot": self.key.camelot,
            "energy": round(float(self.features.energy), 4),
            "loudness": round(float(self.features.loudness), 2),
            "key_clarity": round(float(self.features.key_clarity), 4),
        }
        if features:
            out["features"] = self.features.to_json()
        return out


@dataclass
class Section:
    """A structural section (intro, drop, break...): a run of whole phrases."""

    index: int
    start: float
    end: float
    bar: int
    bars: int
    label: str
    group: str  # repetition group: sections with the same letter sound alike
    # How sure the boundary that opens this section is, in [0, 1] (1 for the first section).
    confidence: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "bar": self.bar,
            "bars": self.bars,
            "label": self.label,
            "group": self.group,
            "confidence": round(self.confidence, 3),
        }


@dataclass
class TrackAnalysis:
    """Everything cratedig knows about one track after analysis."""

    path: str
    track_id: str
    format: str
    duration: float  # seconds
    sample_rate: int  # of the source file
    channels: int
    tempo: float  # BPM
    time_signature: tuple[int, int]
    key: Key
    tuning: float  # cents off A440, in [-50, 50)
    key_clarity: float
    loudness: float  # integrated LUFS of the whole track
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds
    segments: list[Segment]
    sections: list[Section]
    analysis_version: int
    timings: dict[str, float] = field(default_factory=dict)
    #: Confidence in [0, 1] and runner-up of each track-level estimate, by name ("tempo",
    #: "meter", "downbeat", "key"), e.g. ``{"tempo": {"value": 140.0, "confidence": 0.8,
    #: "alternative": 105.0, "relation": "3:4"}}``. Empty for analyses stored before v4.
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Input quality (:func:`cratedig.analysis.quality.assess_quality`): bandwidth, fake
    #: lossless, clipping, flags... Empty when not assessed (analyses stored before it existed).
    quality: dict[str, Any] = field(default_factory=dict)
    #: The audio fingerprint (:mod:`cratedig.analysis.fingerprint`, analysis v31): tells the
    #: same recording in another file, which is never the song's partner. Empty for analyses
    #: stored before it existed.
    fingerprint: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint16))

    @property
    def camelot(self) -> str:
        return self.key.camelot

    def doubts(self, *, below: float = LOW_CONFIDENCE) -> list[str]:
        """Plain-language notes on the estimates whose confidence is under ``below``.

        Examples: ``"tempo 140.0 BPM, or 105.0 (3:4)? confidence 0.31"``,
        ``"key A minor, or C major (relative)? confidence 0.12"``. Empty when all are sure (or
        for analyses stored before confidences existed).
        """
        notes = []
        t = self.estimates.get("tempo", {})
        if t and t.get("confidence", 1.0) < below and t.get("alternative"):
            notes.append(
                f"tempo {self.tempo:.1f} BPM, or {t['alternative']:.1f} ({t['relation']})? "
                f"confidence {t['confidence']:.2f}"
            )
        m = self.estimates.get("meter", {})
        if m and m.get("confidence", 1.0) < below:
            notes.append(
                f"meter {self.time_signature[0]}/4, or {m['alternative']}/4? "
                f"confidence {m['confidence']:.2f}"
            )
        d = self.estimates.get("downbeat", {})
        if d and d.get("confidence", 1.0) < below:
            # Most wrong bar lines sit on a wrong beat level or meter: name an unsure one under
            # them rather than leave two unrelated-looking doubts.
            why = next(
                (
                    f" (the {name} under them is unsure too)"
                    for name, e in (("tempo", t), ("meter", m))
                    if e and e.get("confidence", 1.0) < below
                ),
                "",
            )
            notes.append(f"bar lines (downbeats) uncertain: confidence {d['confidence']:.2f}{why}")
        k = self.estimates.get("key", {})
        if k and k.get("confidence", 1.0) < below and k.get("alternative"):
            notes.append(
                f"key {k['value']}, or {k['alternative']} ({k['relation']})? "
                f"confidence {k['confidence']:.2f}"
            )
        return notes

    def to_json(self, *, features: bool = False) -> dict[str, Any]:
        """The ``analyze --json`` contract of DESIGN.md (plus a few documented extras)."""
        return {
            "path": self.path,
            "track_id": self.track_id,
            "format": self.format,
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "tempo": round(self.tempo, 2),
            "time_signature": list(self.time_signature),
            "key": self.key.name,
            "mode": self.key.mode,
            "camelot": self.key.camelot,
            "tuning": round(self.tuning, 1),
            "key_clarity": round(self.key_clarity, 4),
            "loudness": round(self.loudness, 2),
            "beats": np.round(self.beats, 3).tolist(),
            "downbeats": np.round(self.downbeats, 3).tolist(),
            "segments": [s.to_json(features=features) for s in self.segments],
            "sections": [s.to_json() for s in self.sections],
            "estimates": self.estimates,
            "quality": self.quality,
            "analysis_version": self.analysis_version,
        }
