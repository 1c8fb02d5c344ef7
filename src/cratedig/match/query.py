"""Matching a whole song against the library: index search, exact scoring, records.

:func:`match_analysis` is what ``cratedig match`` (and later the web service) calls: for each
query segment it fetches candidates from the index (chroma similarity under every allowed
rotation, pre-filtered by tempo band, the query's own track excluded), loads those candidates'
features from the database, scores them exactly with :func:`cratedig.match.scoring.
score_candidates` and keeps the best ``top``. The result follows the ``match --json`` contract
of DESIGN.md.

Uncertain readings are never silent: a track whose tempo confidence is low and whose runner-up
is not an octave away (140 or 105 BPM, 3:4: the octave readings are matched anyway, since the
tempo rule accepts 1:2 and 2:1) is matched on its estimate, flagged with a ``doubts`` note and
its score scaled by ``0.5 + 0.5 * confidence``; the query's own doubts are in ``query.doubts``.

Meters must agree: a 3/4 segment never goes under a 4/4 one (nor the reverse), whatever its
key and tempo. Beats align but bars do not (the downbeats meet once every 12 beats), so the
phrases drift apart and the layering sounds wrong to any dancer. Segments stored without beat
chroma (meter unknown) are let through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.analysis.records import LOW_CONFIDENCE, Segment, TrackAnalysis
from cratedig.errors import ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.batch import SegmentBatch
from cratedig.match.index import SegmentIndex
from cratedig.match.scoring import (
    DEFAULT_MAX_SHIFT,
    DEFAULT_MAX_STRETCH,
    candidate_records,
    score_candidates,
)

#: Candidates fetched from the index per query segment before exact scoring. The index ranks
#: by chroma similarity only; rhythm, spectral balance and the transform costs reorder them.
DEFAULT_FETCH = 200
#: Bounds of the options a user may ask for: a shift beyond a tritone is better reached the
#: other way round, and past 50 % stretch Rubber Band's artefacts dominate.
MAX_SHIFT_BOUND = 6
MAX_STRETCH_BOUND = 0.5


@dataclass
class MatchOptions:
    """How to match (the ``cratedig match`` flags)."""

    top: int = 5
    max_shift: int = DEFAULT_MAX_SHIFT
    max_stretch: float = DEFAULT_MAX_STRETCH
    segment: int | None = None
    fetch: int = DEFAULT_FETCH
    include_own_track: bool = False

    def check(self) -> None:
        """Raise :class:`ParameterError` on a value out of range."""
        if self.top < 1:
            raise ParameterError(f"top={self.top}: must be at least 1")
        if not 0 <= self.max_shift <= MAX_SHIFT_BOUND:
            raise ParameterError(
                f"max_shift={self.max_shift}: must be within 0..{MAX_SHIFT_BOUND} semitones"
            )
        if not 0.0 <= self.max_stretch <= MAX_STRETCH_BOUND:
            raise ParameterError(
                f"max_stretch={self.max_stretch}: must be within 0..{MAX_STRETCH_BOUND} "
                "(0.08 = 8 %)"
            )
        if self.fetch < self.top:
            raise ParameterError(f"fetch={self.fetch} must be >= top={self.top}")


@dataclass
class SegmentMatches:
    """The ranked candidates of one query segment."""

    query: Segment
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"query_segment": self.query.id, "candidates": self.candidates}


@dataclass
class MatchResult:
    """Everything ``cratedig match`` shows."""

    analysis: TrackAnalysis
    matches: list[SegmentMatches]
    in_library: bool
    library_segments: int

    def to_json(self) -> dict[str, Any]:
        a = self.analysis
        return {
            "query": {
                "track_id": a.track_id,
                "path": a.path,
                "in_library": self.in_library,
                "tempo": round(a.tempo, 2),
                "key": a.key.name,
                "mode": a.key.mode,
                "camelot": a.key.camelot,
                "segments": [s.to_json() for s in a.segments],
                "doubts": a.doubts(),
            },
            "matches": [m.to_json() for m in self.matches],
        }


def tempo_doubt(estimates: dict[str, Any]) -> tuple[float, str] | None:
    """(confidence, note) when a track's tempo is doubtful in a way stretching cannot absorb.

    Doubts between octave readings (1:2, 2:1) return None: both readings are matched anyway.
    """
    t = estimates.get("tempo") or {}
    conf = t.get("confidence")
    if conf is None or conf >= LOW_CONFIDENCE or t.get("relation") in (None, "1:2", "2:1", "1:1"):
        return None
    return float(conf), (
        f"partner tempo uncertain: {t['value']:.1f} or {t['alternative']:.1f} BPM "
        f"({t['relation']}), confidence {conf:.2f}"
    )


def match_analysis(
    library: Library,
    index: SegmentIndex,
    analysis: TrackAnalysis,
    *,
    options: MatchOptions | None = None,
    in_library: bool = False,
) -> MatchResult:
    """Rank library segments for each segment of ``analysis``.

    Parameters
    ----------
    library : Library
        Where candidates' features, paths and times are read.
    index : SegmentIndex
        The library's index (:func:`cratedig.match.store.sync_index`).
    analysis : TrackAnalysis
        The query song, from the library or analysed on the fly.
    options : MatchOptions, optional
    in_library : bool
        Reported in the result: whether the query is itself a library track.

    Returns
    -------
    MatchResult
        One :class:`SegmentMatches` per query segment (or only ``options.segment``).

    Raises
    ------
    ParameterError
        Bad options, or ``options.segment`` not a segment of the query.
    """
    opt = options or MatchOptions()
    opt.check()
    segments = analysis.segments
    if opt.segment is not None:
        if not 0 <= opt.segment < len(segments):
            raise ParameterError(
                f"segment {opt.segment}: the query has segments 0..{len(segments) - 1}"
            )
        segments = [segments[opt.segment]]
    result = MatchResult(
        analysis=analysis, matches=[], in_library=in_library, library_segments=len(index)
    )
    if not segments:
        return result
    queries = SegmentBatch.from_segments(segments)
    hits = (
        index.search(
            queries,
            k=opt.fetch,
            max_shift=opt.max_shift,
            max_stretch=opt.max_stretch,
            include_own_track=opt.include_own_track,
        )
        if len(index)
        else [None] * len(segments)
    )
    wanted = sorted({str(i) for h in hits if h is not None for i in h.ids})
    with library.reader() as s:
        found = {c.id: c for c in repo.load_segments(s, segment_ids=wanted)}
        recorded = repo.paths_of(s, {c.track_id for c in found.values()})
        estimates = repo.track_estimates(s, {c.track_id for c in found.values()})
    # Suggest only tracks whose audio is still on disk: a deleted file's track (a "ghost",
    # until the next ingest removes it) is no partner anyone can play.
    paths = {t: next((p for p in ps if os.path.exists(p)), None) for t, ps in recorded.items()}
    paths = {t: p for t, p in paths.items() if p is not None}
    for qi, seg in enumerate(segments):
        h = hits[qi]
        cands = [
            found[str(i)]
            for i in (h.ids if h is not None else [])
            if str(i) in found and found[str(i)].track_id in paths
        ]
        meter = seg.features.beats_per_bar if seg.features is not None else 0
        if meter:
            cands = [c for c in cands if c.features.beats_per_bar in (0, meter)]
        out = SegmentMatches(query=seg)
        result.matches.append(out)
        if not cands:
            continue
        batch = SegmentBatch.from_segments(cands)
        scores = score_candidates(
            queries.take([qi]), batch, max_shift=opt.max_shift, max_stretch=opt.max_stretch
        )
        order = [int(i) for i in scores.ranking() if scores.valid[i]][: opt.top]
        records = candidate_records(
            queries.take([qi]),
            batch,
            scores,
            np.array(order, np.int64),
            max_stretch=opt.max_stretch,
        )
        for rec, i in zip(records, order, strict=True):
            c = cands[i]
            rec.update(
                path=paths[c.track_id],
                start=round(c.start, 3),
                end=round(c.end, 3),
                label=c.label,
                bpm=round(c.tempo, 2),
                key=c.key.name,
                mode=c.key.mode,
                camelot=c.key.camelot,
                energy=round(float(c.features.energy), 4),
            )
            doubt = tempo_doubt(estimates.get(c.track_id, {}))
            if doubt is not None:
                confidence, note = doubt
                rec["score"] = round(float(rec["score"]) * (0.5 + 0.5 * confidence), 4)
                rec["doubts"] = [note]
                rec["reason"] = f"{rec['reason']}; {note}"
        records.sort(key=lambda r: -float(r["score"]))
        out.candidates = records
    return result
