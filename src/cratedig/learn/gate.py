"""The training gate: which tracks may teach a model.

A model trained on fake-lossless transcodes, clipped masters or tracks whose beat grid is a
guess learns the artefacts. The gate reads each track's input-quality record
(:func:`cratedig.analysis.quality.assess_quality`, stored in ``tracks.quality``) and keeps a
track out of training, and every segment of it out of self-supervised pairs, when it carries a
flag the rules exclude or its analysis confidence is under the rules' floors.

Rules are data (:class:`GateRules`), with defaults chosen so that the gate only removes what
would mislead a model: fake lossless and transcoded audio, clipping, mostly silent tracks, no
stable beat, no clear key. Fake stereo and DC offset do not change what the analysis measures
and pass. Tracks never assessed (analysed before quality existed) pass unless
``require_assessed``.

Today :mod:`cratedig.learn.clusters` trains through it; the learned ranker will call
:func:`gate_tracks` / :func:`gate_pairs` the same way.

Examples
--------
>>> report = gate_tracks({"a": {"flags": ["fake_lossless"]}, "b": {"flags": []}})
>>> sorted(report.kept), report.summary()
(['b'], '1 track kept out: 1 fake lossless')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

from cratedig.errors import ParameterError

#: Flags excluded by default, in the order a track's one reason is chosen.
DEFAULT_EXCLUDE = (
    "fake_lossless",
    "transcoded",
    "clipping",
    "silence",
    "no_stable_beat",
    "unclear_key",
)

_WORDS = {
    "fake_lossless": "fake lossless",
    "transcoded": "transcoded",
    "clipping": "clipped",
    "silence": "mostly silent",
    "no_stable_beat": "no stable beat",
    "unclear_key": "no clear key",
    "fake_stereo": "fake stereo",
    "dc_offset": "DC offset",
    "unassessed": "not assessed",
    "low_beat_strength": "weak beat",
    "low_key_clarity": "unclear key",
}


@dataclass(frozen=True)
class GateRules:
    """What keeps a track out of training.

    Attributes
    ----------
    exclude : tuple of str
        Quality flags that exclude a track (:data:`DEFAULT_EXCLUDE`).
    min_beat_strength, min_key_clarity : float
        Confidence floors on top of the flags (0: off).
    require_assessed : bool
        Keep out tracks with no quality record.
    """

    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    min_beat_strength: float = 0.0
    min_key_clarity: float = 0.0
    require_assessed: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GateRules:
        """Rules from a dict (a config file's section); unknown names raise ParameterError."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ParameterError(f"unknown gate rule(s) {bad}; known: {sorted(known)}")
        v = dict(values)
        if "exclude" in v:
            v["exclude"] = tuple(v["exclude"])
        return cls(**v)

    def to_json(self) -> dict[str, Any]:
        return {
            "exclude": list(self.exclude),
            "min_beat_strength": self.min_beat_strength,
            "min_key_clarity": self.min_key_clarity,
            "require_assessed": self.require_assessed,
        }


#: Rules that let everything through.
OPEN = GateRules(exclude=(), require_assessed=False)


@dataclass
class GateReport:
    """Which tracks the gate kept, which it kept out and why (one reason per track)."""

    kept: set[str] = field(default_factory=set)
    excluded: dict[str, str] = field(default_factory=dict)  # track id -> reason

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.excluded.values()).most_common())

    def summary(self) -> str:
        """E.g. ``"12 tracks kept out: 8 fake lossless, 4 no stable beat"``."""
        n = len(self.excluded)
        if n == 0:
            return "no track kept out"
        parts = ", ".join(f"{k} {_WORDS.get(r, r)}" for r, k in self.counts.items())
        return f"{n} track{'s' if n != 1 else ''} kept out: {parts}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": len(self.kept),
            "excluded": len(self.excluded),
            "reasons": self.counts,
            "summary": self.summary(),
        }


def exclusion_reason(quality: Mapping[str, Any] | None, rules: GateRules) -> str | None:
    """Why ``rules`` keep a track with this quality record out (None: it may train)."""
    if not quality:
        return "unassessed" if rules.require_assessed else None
    flags = set(quality.get("flags") or [])
    for flag in rules.exclude:
        if flag in flags:
            return flag
    conf = quality.get("confidence") or {}
    if rules.min_beat_strength and conf.get("beat_strength", 1.0) < rules.min_beat_strength:
        return "low_beat_strength"
    if rules.min_key_clarity and conf.get("key_clarity", 1.0) < rules.min_key_clarity:
        return "low_key_clarity"
    return None


def gate_tracks(
    qualities: Mapping[str, Mapping[str, Any] | None],
    rules: GateRules | None = None,
    *,
    track_ids: Iterable[str] | None = None,
) -> GateReport:
    """Split tracks into those that may train and those kept out.

    Parameters
    ----------
    qualities : mapping
        ``track id -> quality record`` (None or missing: not assessed).
    rules : GateRules, optional
        Default :class:`GateRules`.
    track_ids : iterable of str, optional
        The tracks to judge (default: the keys of ``qualities``).
    """
    rules = rules or GateRules()
    report = GateReport()
    for tid in track_ids if track_ids is not None else qualities:
        reason = exclusion_reason(qualities.get(tid), rules)
        if reason is None:
            report.kept.add(tid)
        else:
            report.excluded[tid] = reason
    return report


class _HasTrack(Protocol):
    @property
    def track_id(self) -> str: ...


T = TypeVar("T", bound=_HasTrack)


def gate_segments(
    segments: Sequence[T],
    qualities: Mapping[str, Mapping[str, Any] | None],
    rules: GateRules | None = None,
) -> tuple[list[T], GateReport]:
    """The segments (anything with a ``track_id``) of tracks the gate keeps, and its report."""
    report = gate_tracks(qualities, rules, track_ids=dict.fromkeys(s.track_id for s in segments))
    return [s for s in segments if s.track_id in report.kept], report


def gate_pairs(pairs: Iterable[tuple[str, str]], report: GateReport) -> list[tuple[str, str]]:
    """Self-supervised pairs of segment ids (``<trackid>_<n>``) whose two tracks both pass."""
    return [
        (a, b)
        for a, b in pairs
        if a.rsplit("_", 1)[0] in report.kept and b.rsplit("_", 1)[0] in report.kept
    ]
