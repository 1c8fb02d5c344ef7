"""Plan a whole mashup: one partner (or none) per phrase of the query song. Pure.

The input is what ``cratedig match --json`` returns: the query's segments and, per segment, a
ranked list of candidate records (DESIGN.md "match --json contract"). The plan picks one
candidate per phrase by dynamic programming (Viterbi) over the phrase sequence, maximising

    sum of the chosen candidates' match scores
    + ``stay_bonus``       for each pair of consecutive phrases whose partners come from the
                           same track (different segments: the partner track plays on) under
                           the same transform (pitch shift and tempo ratio)
    + ``flow_bonus``       on top, when that partner moves forward in its track (the next
                           segment starts later than the previous one: the partner plays on
                           in order instead of hopping back and forth)
    - ``retune_penalty``   instead of both, where the partner track plays on under another
                           pitch shift or tempo ratio: its key would jump under the same
                           song, which no DJ does to a track that keeps playing (the phrases'
                           own keys ask for it: a song's phrases read I and V, and the partner
                           is shifted to each in turn)
    - ``repeat_penalty``   for each pair of consecutive phrases with the very same partner
                           segment (``inf``, the default, forbids it: a loop, not a mashup)
    - ``energy_weight`` x  |energy jump| between consecutive partners (candidate ``energy``,
                           relative energy in [0, 1]; ignored where missing)
    + ``section_weight`` x the section fit of each phrase and its partner (query segment
                           ``label`` against candidate ``label``): +1 for the same role (a drop
                           under a drop or a chorus, a break under a break), -1 for a peak
                           against a break, 0 otherwise (:func:`~cratedig.analysis.structure.
                           section_fit`); the match scores already carry a small factor for
                           the same fit (:func:`~cratedig.match.scoring.section_factor`), this
                           term is the planner's own, larger say

Each phrase may also take no partner (score 0), which the search chooses only where every
candidate costs more in penalties than it brings. Ties resolve to the better-ranked candidate,
earliest phrase first, so the plan is deterministic.

Repeats further apart (the same partner segment under phrases 2 and 6) are beyond a
first-order search, which sees one transition at a time. They are discouraged by re-planning:
after each search, every segment used more than once keeps its best-scoring use and has
``reuse_penalty`` taken off its score at its other phrases; the search runs again, until no
segment is reused, the plan stops changing, or ``MAX_REPLANS`` rounds. A segment whose
advantage exceeds the penalty may still come back (a chorus partner for a returning chorus).

The result is a cue sheet: for each phrase its query times and section, the partner's source
and section, the
transform to apply (semitones, the tuning correction in cents, tempo ratio, stretch) and its score; :meth:`MashupPlan.to_json`
and :meth:`MashupPlan.from_json` round-trip it.

References
----------
Viterbi, A. J. (1967) Error bounds for convolutional codes and an asymptotically optimum
decoding algorithm. IEEE Trans. Inf. Theory 13(2). Davies, M. E. P. et al. (2014)
AutoMashUpper (one partner per phrase, chosen by mashability).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.analysis.structure import section_fit
from cratedig.errors import ParameterError

__all__ = ["Cue", "MashupPlan", "plan_mashup"]

#: Default bonus for keeping the partner track across a phrase boundary: about the score gap
#: between neighbouring candidates in a typical top-5, so a close second from the same track
#: wins over hopping to another track.
DEFAULT_STAY_BONUS = 0.1
#: Default penalty for the same partner segment in two consecutive phrases: forbidden.
DEFAULT_REPEAT_PENALTY = math.inf
#: Default weight of the energy jump between consecutive partners (energies in [0, 1]).
DEFAULT_ENERGY_WEIGHT = 0.2
#: Default extra bonus when the partner track plays forward (A1 -> A2, not A2 -> A1).
DEFAULT_FLOW_BONUS = 0.05
#: Default penalty where the partner track plays on under another transform (its pitch shift or
#: tempo ratio changes between two phrases). It comes on top of the stay and flow bonuses the
#: jump forgoes, so a key jump of a playing track costs more than a change of track (which
#: forgoes only the bonuses): about a rank's gap more.
DEFAULT_RETUNE_PENALTY = 0.1
#: Default penalty on a segment's second and later uses anywhere in the song.
DEFAULT_REUSE_PENALTY = 0.15
#: Default weight of the section fit (drop with drop, break with break): about a rank's gap in a
#: typical top-5, so it decides between close candidates but never overrules a clearly better
#: harmonic fit.
DEFAULT_SECTION_WEIGHT = 0.08
#: Re-planning rounds for ``reuse_penalty`` at most.
MAX_REPLANS = 8

_QUERY_FIELDS = ("id", "start", "end")
_CANDIDATE_FIELDS = ("segment", "track_id", "score")


@dataclass(frozen=True)
class Cue:
    """One phrase of the mashup.

    Attributes
    ----------
    index : int
        Position in the query song, from 0.
    query_segment : str
        Id of the query segment.
    start, end : float
        Seconds in the query track.
    partner : dict or None
        The chosen candidate record, with a ``transform`` dict (``semitones``,
        ``tempo_ratio``, ``stretch``); None when the phrase plays alone.
    score : float
        The partner's match score (0 without a partner).
    section : str or None
        The query phrase's section label (intro, build, drop, break...), when known.
    """

    index: int
    query_segment: str
    start: float
    end: float
    partner: dict[str, Any] | None
    score: float
    section: str | None = None

    @property
    def partner_section(self) -> str | None:
        """The partner phrase's section label, when known."""
        return None if self.partner is None else self.partner.get("label")

    def to_json(self) -> dict[str, Any]:
        """The cue's JSON object."""
        return {
            "index": self.index,
            "query_segment": self.query_segment,
            "start": self.start,
            "end": self.end,
            "partner": None if self.partner is None else dict(self.partner),
            "score": self.score,
            "section": self.section,
            "partner_section": self.partner_section,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cue:
        """Inverse of :meth:`to_json`."""
        try:
            partner = d["partner"]
            return cls(
                index=int(d["index"]),
                query_segment=str(d["query_segment"]),
                start=float(d["start"]),
                end=float(d["end"]),
                partner=None if partner is None else dict(partner),
                score=float(d["score"]),
                section=None if d.get("section") is None else str(d["section"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"cue {dict(d)!r} is not a cue object: {exc}") from exc


@dataclass
class MashupPlan:
    """A cue sheet: one cue per query phrase, and the settings and objective that chose it.

    Attributes
    ----------
    query : dict
        What the caller said about the query track (``track_id``, ``path``, ``tempo``...).
    cues : list of Cue
    settings : dict of str to float
        ``stay_bonus``, ``flow_bonus``, ``repeat_penalty``, ``reuse_penalty``,
        ``energy_weight`` used.
    objective : float
        The maximised total (scores + bonuses - penalties, reuse penalties included).
    """

    query: dict[str, Any]
    cues: list[Cue]
    settings: dict[str, float] = field(default_factory=dict)
    objective: float = 0.0

    @property
    def totals(self) -> dict[str, Any]:
        """Summary: cues, cues with a partner, summed and mean score, partner tracks, stays
        (and ``retunes``: stays whose partner changes its pitch shift or tempo ratio)."""
        chosen = [c for c in self.cues if c.partner is not None]
        tracks = {c.partner["track_id"] for c in chosen if c.partner is not None}
        stays = jumps = retunes = 0
        energy_jump = 0.0
        for a, b in zip(self.cues, self.cues[1:], strict=False):
            if a.partner is None or b.partner is None:
                continue
            if a.partner["track_id"] == b.partner["track_id"]:
                stays += 1
                ta, tb = a.partner.get("transform", {}), b.partner.get("transform", {})
                if any(ta.get(k) != tb.get(k) for k in ("semitones", "tempo_ratio")):
                    retunes += 1
            else:
                jumps += 1
            ea, eb = a.partner.get("energy"), b.partner.get("energy")
            if ea is not None and eb is not None:
                energy_jump += abs(float(ea) - float(eb))
        score = float(sum(c.score for c in chosen))
        uses: dict[str, int] = {}
        for c in chosen:
            if c.partner is not None:
                uses[c.partner["segment"]] = uses.get(c.partner["segment"], 0) + 1
        return {
            "cues": len(self.cues),
            "with_partner": len(chosen),
            "score": score,
            "mean_score": score / len(chosen) if chosen else 0.0,
            "partner_tracks": len(tracks),
            "distinct_segments": len(uses),
            "reused": sum(n - 1 for n in uses.values()),
            "stays": stays,
            "retunes": retunes,
            "track_changes": jumps,
            "energy_jump": energy_jump,
            "objective": self.objective,
        }

    def to_json(self) -> dict[str, Any]:
        """``{"query": {...}, "cues": [...], "totals": {...}, "settings": {...}}``.

        ``inf`` settings are written as the string ``"inf"`` (JSON has no infinity).
        """
        return {
            "query": dict(self.query),
            "cues": [c.to_json() for c in self.cues],
            "totals": self.totals,
            "settings": {k: (v if math.isfinite(v) else "inf") for k, v in self.settings.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MashupPlan:
        """Inverse of :meth:`to_json` (``totals`` are recomputed, not read)."""
        try:
            return cls(
                query=dict(d["query"]),
                cues=[Cue.from_json(c) for c in d["cues"]],
                settings={k: float(v) for k, v in d.get("settings", {}).items()},
                objective=float(d.get("totals", {}).get("objective", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"not a mashup plan object: {exc}") from exc


def _check_weight(name: str, value: float, *, allow_inf: bool = False) -> float:
    v = float(value)
    if math.isnan(v) or v < 0 or (math.isinf(v) and not allow_inf):
        raise ParameterError(f"{name}={value!r} must be a finite number >= 0")
    return v


def _number(value: Any) -> float:
    """A float, or NaN for a missing value."""
    return np.nan if value is None else float(value)


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise ``a[i] != b[j]`` where both are known (NaN: missing, never a difference)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(a)[:, None] & np.isfinite(b)[None, :] & (a[:, None] != b[None, :])


def _partner(candidate: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(candidate)
    out["transform"] = {
        "semitones": candidate.get("semitones", 0),
        "cents": candidate.get("cents", 0.0),
        "tempo_ratio": candidate.get("tempo_ratio", 1.0),
        "stretch": candidate.get("stretch", 0.0),
    }
    return out


def plan_mashup(
    query_segments: Sequence[Mapping[str, Any]],
    candidates_per_segment: Sequence[Sequence[Mapping[str, Any]]],
    *,
    query: Mapping[str, Any] | None = None,
    stay_bonus: float = DEFAULT_STAY_BONUS,
    repeat_penalty: float = DEFAULT_REPEAT_PENALTY,
    energy_weight: float = DEFAULT_ENERGY_WEIGHT,
    flow_bonus: float = DEFAULT_FLOW_BONUS,
    reuse_penalty: float = DEFAULT_REUSE_PENALTY,
    section_weight: float = DEFAULT_SECTION_WEIGHT,
    retune_penalty: float = DEFAULT_RETUNE_PENALTY,
) -> MashupPlan:
    """Choose one partner per query phrase maximising score, continuity and smooth energy.

    Parameters
    ----------
    query_segments : sequence of dict
        The query's phrases in song order, each with ``id``, ``start``, ``end`` (seconds) and
        optionally ``bars``, ``energy``, ``tempo``, ``key``...
    candidates_per_segment : sequence of sequence of dict
        For each query phrase, its ranked candidate records (the ``match --json`` shape): each
        with ``segment``, ``track_id`` and ``score``, and usually ``path``, ``start``, ``end``,
        ``tempo_ratio``, ``stretch``, ``semitones``, ``key_relation``, ``terms``, ``reason``
        and ``energy`` (relative energy in [0, 1]). An empty list: that phrase plays alone.
    query : dict, optional
        Carried into the plan's ``query`` (``track_id``, ``path``, ``tempo``...).
    stay_bonus : float >= 0
        Added when consecutive partners are different segments of the same track under the
        same transform (``semitones`` and ``tempo_ratio``; a missing one counts as the same).
    repeat_penalty : float >= 0 or inf
        Subtracted when consecutive partners are the same segment; ``inf`` forbids it.
    energy_weight : float >= 0
        Times the absolute energy difference of consecutive partners, subtracted.
    flow_bonus : float >= 0
        Added on top of ``stay_bonus`` when the partner's segment starts later in its track
        than the previous phrase's partner (needs ``start`` on the candidates).
    reuse_penalty : float >= 0
        Taken off a segment's score at every phrase but its best one when the plan uses it
        more than once (see the module notes; 0 turns re-planning off).
    section_weight : float >= 0
        Times the section fit of phrase and partner (query ``label`` against candidate
        ``label``), added: a drop prefers a drop-energy partner, a break a break.
    retune_penalty : float >= 0
        Subtracted (with no stay or flow bonus) when consecutive partners are different
        segments of the same track under different transforms.

    Returns
    -------
    MashupPlan

    Raises
    ------
    ParameterError
        Mismatched lengths, a record missing a required field, a negative or NaN weight.

    Examples
    --------
    >>> segs = [{"id": "q_0", "start": 0.0, "end": 15.0}, {"id": "q_1", "start": 15.0, "end": 30.0}]
    >>> cands = [[{"segment": "a_0", "track_id": "a", "score": 0.8}],
    ...          [{"segment": "b_3", "track_id": "b", "score": 0.75},
    ...           {"segment": "a_1", "track_id": "a", "score": 0.7}]]
    >>> [c.partner["segment"] for c in plan_mashup(segs, cands).cues]
    ['a_0', 'a_1']
    """
    if len(query_segments) != len(candidates_per_segment):
        raise ParameterError(
            f"{len(query_segments)} query segments but {len(candidates_per_segment)} candidate "
            "lists: need one list (possibly empty) per segment"
        )
    settings = {
        "stay_bonus": _check_weight("stay_bonus", stay_bonus),
        "repeat_penalty": _check_weight("repeat_penalty", repeat_penalty, allow_inf=True),
        "energy_weight": _check_weight("energy_weight", energy_weight),
        "flow_bonus": _check_weight("flow_bonus", flow_bonus),
        "reuse_penalty": _check_weight("reuse_penalty", reuse_penalty),
        "section_weight": _check_weight("section_weight", section_weight),
        "retune_penalty": _check_weight("retune_penalty", retune_penalty),
    }
    for i, seg in enumerate(query_segments):
        missing = [f for f in _QUERY_FIELDS if f not in seg]
        if missing:
            raise ParameterError(f"query segment {i} lacks {missing}")
    for i, cands in enumerate(candidates_per_segment):
        for j, cand in enumerate(cands):
            missing = [f for f in _CANDIDATE_FIELDS if f not in cand]
            if missing:
                raise ParameterError(f"candidate {j} of query segment {i} lacks {missing}")
            if not math.isfinite(float(cand["score"])):
                raise ParameterError(
                    f"candidate {j} of query segment {i} has score {cand['score']}"
                )

    n = len(query_segments)
    if n == 0:
        return MashupPlan(query=dict(query or {}), cues=[], settings=settings, objective=0.0)

    # Per phrase: states 0..m-1 are its candidates (ranked order), state m is "no partner".
    def states(
        query_label: str | None, cands: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, ...]:
        seg = np.array([str(c["segment"]) for c in cands] + [""], dtype=object)
        track = np.array([str(c["track_id"]) for c in cands] + [""], dtype=object)
        energy = np.array([_number(c.get("energy")) for c in cands] + [np.nan])
        start = np.array([_number(c.get("start")) for c in cands] + [np.nan])
        shift = np.array([_number(c.get("semitones")) for c in cands] + [np.nan])
        ratio = np.array([_number(c.get("tempo_ratio")) for c in cands] + [np.nan])
        fit = [section_fit(query_label, c.get("label")) for c in cands]
        emit = np.array(
            [
                float(c["score"]) + settings["section_weight"] * f
                for c, f in zip(cands, fit, strict=True)
            ]
            + [0.0]
        )
        real = np.arange(len(cands) + 1) < len(cands)
        return seg, track, energy, start, emit, real, shift, ratio

    def transition(prev: tuple[np.ndarray, ...], cur: tuple[np.ndarray, ...]) -> np.ndarray:
        s0, t0, e0, st0, _, r0, k0, q0 = prev
        s1, t1, e1, st1, _, r1, k1, q1 = cur
        both = r0[:, None] & r1[None, :]
        same_seg = both & (s0[:, None] == s1[None, :])
        same_track = both & (t0[:, None] == t1[None, :]) & ~same_seg
        retuned = same_track & (_differ(k0, k1) | _differ(q0, q1))
        stay = same_track & ~retuned
        with np.errstate(invalid="ignore"):
            forward = stay & (st1[None, :] > st0[:, None])
        jump = np.abs(e0[:, None] - e1[None, :])
        out = (
            settings["stay_bonus"] * stay
            + settings["flow_bonus"] * forward
            - settings["retune_penalty"] * retuned
            - settings["energy_weight"] * np.where(both & np.isfinite(jump), jump, 0.0)
        )
        if math.isinf(settings["repeat_penalty"]):
            return np.where(same_seg, -np.inf, out)
        return out - settings["repeat_penalty"] * same_seg

    layers = [
        states(q.get("label"), c)
        for q, c in zip(query_segments, candidates_per_segment, strict=True)
    ]
    steps = [transition(a, b) for a, b in itertools.pairwise(layers)]

    def search(emits: list[np.ndarray]) -> tuple[list[int], float]:
        # Backward pass (value of the best continuation from each state), then a forward
        # walk: ties go to the better-ranked candidate of the earliest phrase where they arise.
        values = [emits[-1].copy()]
        for t in range(n - 2, -1, -1):
            values.insert(0, emits[t] + (steps[t] + values[0][None, :]).max(axis=1))
        path = [int(np.argmax(values[0]))]  # first maximum: the better-ranked candidate
        for t in range(1, n):
            path.append(int(np.argmax(steps[t - 1][path[-1]] + values[t])))
        return path, float(values[0][path[0]])

    def reuses(path: list[int]) -> dict[str, list[int]]:
        uses: dict[str, list[int]] = {}
        for t, k in enumerate(path):
            if k < len(candidates_per_segment[t]):
                uses.setdefault(str(layers[t][0][k]), []).append(t)
        return {s: ts for s, ts in uses.items() if len(ts) > 1}

    def value(path: list[int]) -> float:
        """The objective of a plan: scores, transitions, and reuse penalties."""
        total = float(sum(base[t][k] for t, k in enumerate(path)))
        total += float(sum(steps[t][path[t], path[t + 1]] for t in range(n - 1)))
        extra = sum(len(ts) - 1 for ts in reuses(path).values())
        return total - settings["reuse_penalty"] * extra if extra else total

    base = [layer[4] for layer in layers]
    emits = [e.copy() for e in base]
    path, _ = search(emits)
    best, objective = path, value(path)
    penalised: set[tuple[int, str]] = set()
    for _ in range(MAX_REPLANS if settings["reuse_penalty"] > 0 else 0):
        # Penalties accumulate: each round can only add some, so the rounds end.
        new = set()
        for segment, ts in reuses(path).items():
            scores = [float(base[t][layers[t][0] == segment].max()) for t in ts]
            keep = ts[int(np.argmax(scores))]  # its best use; the earliest among equals
            new |= {(t, segment) for t in ts if t != keep} - penalised
        if not new:
            break
        for t, segment in new:
            emits[t][layers[t][0] == segment] -= settings["reuse_penalty"]
        penalised |= new
        path, _ = search(emits)
        if (v := value(path)) > objective + 1e-12:
            best, objective = path, v
    path = best

    cues = []
    for i, (seg, cands, state) in enumerate(
        zip(query_segments, candidates_per_segment, path, strict=True)
    ):
        chosen = cands[state] if state < len(cands) else None
        cues.append(
            Cue(
                index=i,
                query_segment=str(seg["id"]),
                start=float(seg["start"]),
                end=float(seg["end"]),
                partner=None if chosen is None else _partner(chosen),
                score=0.0 if chosen is None else float(chosen["score"]),
                section=None if seg.get("label") is None else str(seg["label"]),
            )
        )
    return MashupPlan(query=dict(query or {}), cues=cues, settings=settings, objective=objective)
