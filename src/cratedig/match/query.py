"""Matching a whole song against the library: index search, exact scoring, records.

:func:`match_analysis` is what ``cratedig match`` (and later the web service) calls: for each
query segment it fetches candidates from the index (chroma similarity under every allowed
rotation, pre-filtered by tempo band, the query's own track excluded; every tempo-compatible
segment of a library up to ``EXACT_SEARCH_LIMIT`` segments), loads those candidates'
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

Uncertain readings on either side are matched on their **plausible readings** instead of being
rejected (issue 10: a lead + drums query read as 3/4 at half tempo got no suggestion at all):
a meter whose confidence is under ``LOW_CONFIDENCE`` may also be its runner-up, and a query or
candidate tempo whose confidence is low may also be its runner-up (3:4, 2:3...). Each candidate
keeps the reading that scores best; a reading other than the estimate is named in the
candidate's ``doubts`` and its score scaled by ``0.5 + 0.5 * confidence`` of the doubted
estimate, so a sure partner ranks above an equally good doubtful one.

Each query segment says how well its best partner fits (:func:`cratedig.match.scoring.fit_of`):
``"fit": "good" | "fair" | "none"`` and ``"no_good_partner": true`` when no candidate reaches
the floor; each candidate carries its own ``"fit"``, never better than its reasons say (chords
that disagree are at best "fair", and "poor" when the layers also clash).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.analysis.fingerprint import Overlap, same_recording
from cratedig.analysis.records import LOW_CONFIDENCE, Segment, TrackAnalysis
from cratedig.errors import ParameterError
from cratedig.learn.ranker import Ranker, blend, pair_features
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.batch import SegmentBatch
from cratedig.match.index import SegmentIndex
from cratedig.match.scoring import (
    DEFAULT_MAX_SHIFT,
    DEFAULT_MAX_STRETCH,
    MatchScores,
    candidate_records,
    fit_of,
    score_candidates,
)
from cratedig.theory import tuning_correction

#: Candidates fetched from the index per query segment before exact scoring. The index ranks
#: by chroma similarity only; rhythm, spectral balance and the transform costs reorder them.
DEFAULT_FETCH = 200
#: Libraries of at most this many segments are scored exactly in full: every tempo-compatible
#: segment is a candidate, whatever ``fetch`` says. The index ranks by chroma similarity alone,
#: and a partner whose rhythm, balance and energy fit while its chroma looks little like the
#: query's (a lead over its own accompaniment) can sit below the first ``fetch`` hits (issue
#: 10: measured on real lead / accompaniment stems, ``bench/retrieval.py --set real --split
#: dev``, 7 of 84 lead phrases lost a true partner that the index did not fetch although its
#: exact score beat the 100th suggestion's, in one case by 0.04 below the first). Scoring a
#: few thousand candidates costs milliseconds; loading their features from the database
#: dominates, so larger libraries keep the index's shortlist.
EXACT_SEARCH_LIMIT = 5000
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
    #: At most this many phrases of any one track per query segment (the best ones); None:
    #: no limit. Five phrases of one song under a segment are one suggestion five times.
    per_track: int | None = None
    #: Only these library tracks' segments are candidates (every one of them scored, no index
    #: search): "where does this track fit under mine, and how?". A named track is a candidate
    #: even when it is the query's own. None: the whole library.
    tracks: tuple[str, ...] | None = None

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
        if self.per_track is not None and self.per_track < 1:
            raise ParameterError(f"per_track={self.per_track}: must be at least 1 (or None)")
        if self.tracks is not None and not self.tracks:
            raise ParameterError("tracks: name at least one track (or None for the library)")


def capped_per_track(order: list[int], tracks: list[str], cap: int | None) -> list[int]:
    """``order`` (candidate indices, best first) keeping at most ``cap`` per track.

    >>> capped_per_track([3, 0, 1, 2], ["a", "a", "b", "a"], 2)
    [3, 0, 1]
    >>> capped_per_track([3, 0, 1, 2], ["a", "a", "b", "a"], None)
    [3, 0, 1, 2]
    """
    if cap is None:
        return list(order)
    seen: dict[str, int] = {}
    out = []
    for i in order:
        n = seen.get(tracks[i], 0)
        if n < cap:
            seen[tracks[i]] = n + 1
            out.append(i)
    return out


@dataclass
class SegmentMatches:
    """The ranked candidates of one query segment."""

    query: Segment
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fit(self) -> str:
        """How well the best candidate fits: "good", "fair" or "none" (nothing above the floor)."""
        return max(
            (str(c["fit"]) for c in self.candidates),
            key=("none", "poor", "fair", "good").index,
            default="none",
        ).replace("poor", "none")

    def to_json(self) -> dict[str, Any]:
        fit = self.fit
        return {
            "query_segment": self.query.id,
            "fit": fit,
            "no_good_partner": fit == "none",
            "candidates": self.candidates,
        }


@dataclass
class MatchResult:
    """Everything ``cratedig match`` shows."""

    analysis: TrackAnalysis
    matches: list[SegmentMatches]
    in_library: bool
    library_segments: int
    #: With chosen partner tracks (``match --with``): why each track the rules rule out whole
    #: cannot go under the query (empty when none is); None for a library-wide match.
    ruled_out: list[str] | None = None
    #: Library tracks analysed by an older cratedig: they match on that analysis until
    #: ``ingest`` analyses them again.
    stale_tracks: int = 0
    #: Library tracks left out as the query's own recording in another file (its MP3, a
    #: copy, an edit): track id -> where their fingerprints agree (:class:`Overlap`).
    same_recording: dict[str, Overlap] = field(default_factory=dict)
    #: The paths of those tracks (for the reports).
    same_recording_paths: dict[str, str] = field(default_factory=dict)

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
                # confidence and runner-up of tempo, meter, bar lines and key, and what the
                # file's tags or the user's grid did (an upload's view shows them)
                "estimates": a.estimates,
            },
            "matches": [m.to_json() for m in self.matches],
            "stale_tracks": self.stale_tracks,
            # left out: the query's own recording in another file
            "same_recording": [
                {
                    "track_id": t,
                    "path": self.same_recording_paths.get(t),
                    "ber": o.ber,
                    "offset": o.offset,
                    "seconds": o.seconds,
                    # > 1: an edit of it (a radio edit, an extended mix), found piece by piece
                    "pieces": o.pieces,
                }
                for t, o in self.same_recording.items()
            ],
            **({"ruled_out": self.ruled_out} if self.ruled_out is not None else {}),
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


def bar_line_doubt(estimates: dict[str, Any]) -> str | None:
    """A note when a partner's bar lines are doubtful: the render lines up bar 1 with bar 1,
    and bar lines half a bar off put its chord changes between the query's.

    Examples
    --------
    >>> bar_line_doubt({"downbeat": {"value": 0.5, "confidence": 0.3}})
    'partner bar lines uncertain (confidence 0.30): check where its bar 1 falls'
    >>> bar_line_doubt({"downbeat": {"value": 0.5, "confidence": 0.9}}) is None
    True
    """
    d = estimates.get("downbeat") or {}
    conf = d.get("confidence")
    if conf is None or conf >= LOW_CONFIDENCE:
        return None
    return f"partner bar lines uncertain (confidence {conf:.2f}): check where its bar 1 falls"


def plausible_meters(meter: int, estimates: dict[str, Any]) -> set[int] | None:
    """Beats per bar a segment may have: its own, plus the runner-up when the meter is doubtful.

    None when the meter is unknown (``meter`` 0): any meter may do.

    Examples
    --------
    >>> sorted(plausible_meters(3, {"meter": {"confidence": 0.2, "alternative": 4}}))
    [3, 4]
    >>> sorted(plausible_meters(3, {"meter": {"confidence": 0.9, "alternative": 4}}))
    [3]
    """
    if meter <= 0:
        return None
    out = {int(meter)}
    m = estimates.get("meter") or {}
    conf = m.get("confidence")
    if conf is not None and conf < LOW_CONFIDENCE and m.get("alternative"):
        out.add(int(m["alternative"]))
    return out


def tempo_readings(estimates: dict[str, Any]) -> list[tuple[float, float, str]]:
    """Plausible readings of a track's tempo: ``(factor on the estimate, weight, note)``.

    The estimate itself (factor 1, weight 1) and, when its confidence is low and the runner-up
    is not an octave away (octaves are matched by the 1:2 and 2:1 ratios anyway), the runner-up
    with weight ``0.5 + 0.5 * confidence``.
    """
    out = [(1.0, 1.0, "")]
    t = estimates.get("tempo") or {}
    conf, alt, value = t.get("confidence"), t.get("alternative"), t.get("value")
    if (
        conf is not None
        and conf < LOW_CONFIDENCE
        and alt
        and value
        and t.get("relation") not in (None, "1:1", "1:2", "2:1")
    ):
        out.append(
            (float(alt) / float(value), 0.5 + 0.5 * float(conf),
             f"read at {float(alt):.1f} BPM instead of {float(value):.1f} ({t['relation']})")
        )  # fmt: skip
    return out


def _best_reading(results: list[tuple[MatchScores, np.ndarray]]) -> tuple[MatchScores, np.ndarray]:
    """Per candidate, the reading with the best weighted valid score -> (scores, reading index).

    ``results`` holds one ``(scores, weight per candidate)`` per reading; the merged scores
    carry the weighted score.
    """
    eff = np.stack([np.where(s.valid, s.score * w, -1.0) for s, w in results])
    pick = np.argmax(eff, axis=0)
    rows = np.arange(eff.shape[1])

    def choose(get: Any) -> np.ndarray:
        return np.stack([get(s) for s, _ in results])[pick, rows]

    merged = MatchScores(
        score=np.maximum(eff[pick, rows], 0.0),
        valid=choose(lambda s: s.valid),
        tempo_ratio=choose(lambda s: s.tempo_ratio),
        stretch=choose(lambda s: s.stretch),
        semitones=choose(lambda s: s.semitones),
        relation=choose(lambda s: s.relation),
        terms={t: choose(lambda s, t=t: s.terms[t]) for t in results[0][0].terms},
        section=results[0][0].section,  # the section roles do not depend on the reading
        coverage=choose(lambda s: s.coverage),
        query_bars=results[0][0].query_bars,
    )
    return merged, pick


def _index_hits(
    index: Any, queries: SegmentBatch, analysis: TrackAnalysis, opt: MatchOptions
) -> list[list[Any]]:
    """Candidate segment ids per query segment from the match index (at the query's tempo and
    at its other plausible tempo)."""
    fetch = max(opt.fetch, len(index)) if len(index) <= EXACT_SEARCH_LIMIT else opt.fetch
    hits = (
        index.search(
            queries,
            k=fetch,
            max_shift=opt.max_shift,
            max_stretch=opt.max_stretch,
            include_own_track=opt.include_own_track,
        )
        if len(index)
        else [None] * len(queries)
    )
    hit_ids = [list(h.ids) if h is not None else [] for h in hits]
    for qf, _, _ in tempo_readings(analysis.estimates)[1:]:
        # The index pre-filters by tempo: ask it again at the query's other plausible tempo.
        alt_queries = queries.take(np.arange(len(queries)))
        alt_queries.tempo = alt_queries.tempo * qf
        more = index.search(
            alt_queries,
            k=fetch,
            max_shift=opt.max_shift,
            max_stretch=opt.max_stretch,
            include_own_track=opt.include_own_track,
        ) if len(index) else []  # fmt: skip
        for qi, h in enumerate(more):
            seen = set(map(str, hit_ids[qi]))
            hit_ids[qi] += [i for i in h.ids if str(i) not in seen]
    return hit_ids


class _Copies:
    """Which candidate tracks are the query's own recording in another file, judged lazily
    (a fingerprint comparison costs about a millisecond; only tracks that would be shown are
    judged) and remembered for the whole query."""

    def __init__(self, query: np.ndarray, prints: dict[str, np.ndarray], keep: set[str]):
        self.query, self.prints, self.keep = query, prints, keep
        self.judged: dict[str, Overlap | None] = {}

    def same(self, track_id: str) -> bool:
        if track_id in self.keep or not len(self.query) or track_id not in self.prints:
            return False
        if track_id not in self.judged:
            self.judged[track_id] = same_recording(self.query, self.prints[track_id])
        return self.judged[track_id] is not None

    def found(self) -> dict[str, Overlap]:
        return {t: o for t, o in self.judged.items() if o is not None}


def without_copies(ranked: list[int], tracks: list[str], copies: _Copies, top: int) -> list[int]:
    """``ranked`` (candidate indices, best first) without the query's own recording in other
    files, judged only until ``top`` candidates of ``top`` tracks are in hand (enough for any
    per-track cap); the rest follow unjudged, and are cut by the caller."""
    out: list[int] = []
    seen: set[str] = set()
    for n, i in enumerate(ranked):
        if len(out) >= top and len(seen) >= top:
            return out + ranked[n:]
        if not copies.same(tracks[i]):
            out.append(i)
            seen.add(tracks[i])
    return out


def _segments_of_tracks(library: Library, tracks: tuple[str, ...], n: int) -> list[list[Any]]:
    """Every segment of ``tracks`` as the candidates of each of ``n`` query segments."""
    with library.reader() as s:
        ids = [g.id for g in repo.load_segments(s, track_ids=tracks)]
    return [list(ids) for _ in range(n)]


def match_analysis(
    library: Library,
    index: SegmentIndex,
    analysis: TrackAnalysis,
    *,
    options: MatchOptions | None = None,
    in_library: bool = False,
    ranker: Ranker | None = None,
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
    ranker : cratedig.learn.ranker.Ranker, optional
        The learned ranker: fills the ``learned`` term and blends it into the score of the
        candidates the rules accept. Without one the score is exactly the rule score.

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
    if opt.tracks is not None:
        hit_ids = _segments_of_tracks(library, opt.tracks, len(segments))
    else:
        hit_ids = _index_hits(index, queries, analysis, opt)
    wanted = sorted({str(i) for ids in hit_ids for i in ids})
    with library.reader() as s:
        found = {c.id: c for c in repo.load_segments(s, segment_ids=wanted)}
        recorded = repo.paths_of(s, {c.track_id for c in found.values()})
        estimates = repo.track_estimates(s, {c.track_id for c in found.values()})
        tunings = repo.track_tunings(s, {c.track_id for c in found.values()})
        # The same recording in another file is the query's own track under another id: left
        # out as the own track is, unless that is asked for (or the track is named).
        prints = (
            repo.track_fingerprints(s, {c.track_id for c in found.values()})
            if len(analysis.fingerprint) and not opt.include_own_track
            else {}
        )
    copies = _Copies(analysis.fingerprint, prints, {analysis.track_id, *(opt.tracks or ())})
    # Suggest only tracks whose audio is still on disk: a deleted file's track (a "ghost",
    # until the next ingest removes it) is no partner anyone can play.
    paths = {t: next((p for p in ps if os.path.exists(p)), None) for t, ps in recorded.items()}
    paths = {t: p for t, p in paths.items() if p is not None}
    for qi, seg in enumerate(segments):
        # Never the query phrase itself (its own track may be asked for: --include-own-track,
        # or named with --with): a phrase layered on itself is no suggestion.
        cands = [
            found[str(i)]
            for i in hit_ids[qi]
            if str(i) in found and found[str(i)].track_id in paths and str(i) != seg.id
        ]
        meter = seg.features.beats_per_bar if seg.features is not None else 0
        q_meters = plausible_meters(meter, analysis.estimates)
        meter_notes: list[str] = []
        meter_weight: list[float] = []
        kept = []
        for c in cands:
            c_meter = c.features.beats_per_bar if c.features is not None else 0
            c_est = estimates.get(c.track_id, {})
            c_meters = plausible_meters(c_meter, c_est)
            if q_meters is None or c_meters is None or meter == c_meter:
                kept.append(c)
                meter_notes.append("")
                meter_weight.append(1.0)
            elif q_meters & c_meters:
                # Matched on a doubtful reading of one side's meter: say which, weigh it down.
                conf = min(
                    float((e.get("meter") or {}).get("confidence", 1.0))
                    for e in (analysis.estimates, c_est)
                )
                kept.append(c)
                meter_notes.append(
                    f"meter uncertain: {meter}/4 query, {c_meter}/4 partner, confidence {conf:.2f}"
                )
                meter_weight.append(0.5 + 0.5 * conf)
        cands = kept
        out = SegmentMatches(query=seg)
        result.matches.append(out)
        if not cands:
            continue
        batch = SegmentBatch.from_segments(cands)
        query_row = queries.take([qi])
        m_weight = np.array(meter_weight)
        readings: list[tuple[MatchScores, np.ndarray]] = []
        reading_notes: list[tuple[str, list[str]]] = []
        c_readings = [tempo_readings(estimates.get(c.track_id, {})) for c in cands]
        for qf, qw, q_note in tempo_readings(analysis.estimates):
            for alt in (False, True):
                if alt and all(len(r) == 1 for r in c_readings):
                    break
                cb = batch.take(np.arange(len(batch)))
                factor = np.array([r[-1][0] if alt else 1.0 for r in c_readings])
                cw = np.array([r[-1][1] if alt else 1.0 for r in c_readings])
                cb.tempo = cb.tempo * factor
                qb = query_row.take([0])
                qb.tempo = qb.tempo * qf
                readings.append(
                    (
                        score_candidates(
                            qb, cb, max_shift=opt.max_shift, max_stretch=opt.max_stretch
                        ),
                        m_weight * qw * cw,
                    )
                )
                reading_notes.append((q_note, [r[-1][2] if alt else "" for r in c_readings]))
        scores, pick = _best_reading(readings)
        # The fit label reads the rule score: it is calibrated (FIT_GOOD, FIT_FLOOR) and its
        # reasons explain it, while a learned term only reorders. A ranker trained on stem pairs
        # puts its term on the rule scale over those pairs, not over real match lists: labelled
        # by the blend, the real stems' held-out first suggestions were "no good" for 96 of 156
        # lead phrases at blend 1 (the rule: 7).
        rule_score = scores.score.copy()
        if ranker is not None:
            x, names = pair_features(
                scores.terms, stretch=scores.stretch, semitones=scores.semitones,
                tempo_ratio=scores.tempo_ratio, query_balance=query_row.balance[0],
                balance=batch.balance, relation=scores.relation, rule_score=scores.score,
                coverage=scores.coverage,
            )  # fmt: skip
            learned = ranker.learned(x, names)
            scores.terms["learned"] = learned
            scores.score = blend(scores.score, learned, weight=ranker.blend)
        # A partner matched on a doubtful tempo estimate (not on its other reading) is weighed
        # down before ranking, so that the first ``top`` are the best after the weight too.
        doubt_notes: list[str | None] = [None] * len(cands)
        doubt_weight = np.ones(len(cands))
        for i, c in enumerate(cands):
            doubt = tempo_doubt(estimates.get(c.track_id, {}))
            if doubt is not None and not reading_notes[int(pick[i])][1][i]:
                doubt_weight[i] = 0.5 + 0.5 * doubt[0]
                doubt_notes[i] = doubt[1]
        scores.score = scores.score * doubt_weight
        label_score = rule_score * doubt_weight
        ranked = [int(i) for i in scores.ranking() if scores.valid[i]]
        c_tracks = [c.track_id for c in cands]
        ranked = without_copies(ranked, c_tracks, copies, opt.top)
        order = capped_per_track(ranked, c_tracks, opt.per_track)[: opt.top]
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
                # The rest of the shift: cents that meet the two tunings (the render applies
                # semitones + cents / 100).
                cents=tuning_correction(analysis.tuning, tunings.get(c.track_id, 0.0)),
                # What the learned ranker reads as its ``rule`` feature: before the blend and
                # the tempo-doubt weight (training lists read it back: match.lists).
                rule_score=round(float(rule_score[i]), 4),
            )
            if rec["cents"]:
                rec["reason"] = f"{rec['reason']}; tuned {abs(rec['cents']):.0f} cents apart"
            notes = []
            q_note, c_notes = reading_notes[int(pick[i])]
            if q_note:
                notes.append(f"query tempo {q_note}")
            if c_notes[i]:
                notes.append(f"partner tempo {c_notes[i]}")
            if meter_notes[i]:
                notes.append(meter_notes[i])
            note = doubt_notes[i]
            if note is not None:
                notes.append(note)  # matched on its estimate, which may be wrong (weighed above)
            bars = bar_line_doubt(estimates.get(c.track_id, {}))
            if bars is not None:
                notes.append(bars)  # said, not scored: the chords may still meet
            if notes:
                rec["doubts"] = notes
                rec["reason"] = "; ".join([rec["reason"], *notes])
            rec["fit"] = fit_of(
                float(label_score[i]),
                harmonic=float(rec["terms"]["harmonic"]),
                spectral=float(rec["terms"]["spectral"]),
            )
        records.sort(key=lambda r: -float(r["score"]))
        out.candidates = records
    result.same_recording = copies.found()
    result.same_recording_paths = {t: paths.get(t) or "" for t in result.same_recording}
    return result
