"""The feedback loop, tested with simulated listeners whose hidden taste differs from the rules.

A listener is a hidden taste over (query, candidate, transform) pairs plus rating noise. Each
round the matcher is asked for partners of random query phrases of a training set of tracks, the
listener rates the top ``per_query`` on the 1-5 scale of ``cratedig rate`` (taste plus noise),
and the ranker is retrained on every rating so far
(:func:`cratedig.learn.ranker.train_from_ratings`). After 0, 50, 100, 200, 400 ratings the
ranking is measured on **held-out queries of held-out tracks**: NDCG@10 toward the listener's
noiseless taste (graded relevance 0..4, :func:`cratedig.learn.metrics.ndcg_of_scores`) for the
rule score, the learned term alone and the blended score that ``match`` would show.

Candidates come from the matcher's own steps, computed once per query since they do not depend
on the model: the index (:class:`cratedig.match.index.SegmentIndex`, every allowed rotation,
tempo pre-filter, own track excluded), the same-meter rule, the exact scorer
(:func:`cratedig.match.scoring.score_candidates`), then :func:`cratedig.learn.ranker.
pair_features`. Only candidates the rules accept are kept: rejected ones stay rejected whatever
the listener likes. Ranking them by :func:`cratedig.learn.ranker.blend` is what
:func:`cratedig.match.query.match_analysis` does with the same model (``bench/listeners.py``
checks the two agree on a library).

The four listeners of issue 10 (:data:`LISTENERS`):

- ``keys``: prefers a fifth (or the diagonal neighbour) and the relative key over the same key;
- ``straight``: dislikes half-time and double-time pairings;
- ``contrast``: wants contrasting spectral balance (a bass-heavy phrase under a bright one);
- ``rules``: agrees with the rules (taste = rule score).

:func:`synthetic_segments` makes feature-level segments (keys, progressions, tempo bands with
half/double-time partners, bass-heavy and bright mixes) for tests and scale measurements that
need no audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cratedig.analysis.records import Segment, SegmentFeatures
from cratedig.errors import ParameterError
from cratedig.learn.metrics import ndcg_of_scores
from cratedig.learn.ranker import Ranker, RatedList, blend, pair_features, train_from_ratings
from cratedig.theory import RELATIONS, Key

#: Rating checkpoints of issue 10.
CHECKPOINTS: tuple[int, ...] = (0, 50, 100, 200, 400)
#: Candidates rated per query phrase (the top of the list the matcher shows).
PER_QUERY = 10
#: Query phrases rated between two retrainings (50 ratings at 10 per query).
QUERIES_PER_ROUND = 5
#: Standard deviation of a listener's rating noise, in stars.
RATING_NOISE = 0.6


@dataclass
class CandidateList:
    """The rule-valid candidates of one query phrase, with what the tastes and the ranker read.

    Attributes
    ----------
    query, track : str
        The query segment and its track.
    ids, tracks : np.ndarray [shape=(m,), dtype=object]
        Candidate segments and their tracks.
    rule : np.ndarray [shape=(m,)]
        Rule scores (all > 0: rejected candidates are not listed).
    X : np.ndarray [shape=(m, d)]
        :func:`cratedig.learn.ranker.pair_features`, columns ``names``.
    names : list of str
    relation : np.ndarray [shape=(m,), dtype=int]
        Key relation after the suggested shift (index into RELATIONS).
    tempo_ratio : np.ndarray [shape=(m,)]
        1, 2 (half-time) or 0.5 (double-time).
    query_balance : np.ndarray [shape=(3,)]
    balance : np.ndarray [shape=(m, 3)]
    """

    query: str
    track: str
    ids: np.ndarray
    tracks: np.ndarray
    rule: np.ndarray
    X: np.ndarray
    names: list[str]
    relation: np.ndarray
    tempo_ratio: np.ndarray
    query_balance: np.ndarray
    balance: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def candidate_lists(
    queries: Any,
    index: Any,
    library: Any,
    *,
    fetch: int = 200,
    max_shift: int | None = None,
    max_stretch: float | None = None,
) -> list[CandidateList]:
    """The matcher's rule-valid candidates for each query row, features computed once.

    Parameters
    ----------
    queries : cratedig.match.batch.SegmentBatch
        Query phrases (beat unit).
    index : cratedig.match.index.SegmentIndex or BruteForceIndex
        Holding ``library``'s segments.
    library : cratedig.match.batch.SegmentBatch
        Every library segment, rows in the index's order (ids are looked up).
    fetch : int
        Candidates asked from the index per query (``match``'s default 200).
    max_shift, max_stretch
        The rules (default: the match defaults).
    """
    from cratedig.match.scoring import DEFAULT_MAX_SHIFT, DEFAULT_MAX_STRETCH, score_candidates

    shift = DEFAULT_MAX_SHIFT if max_shift is None else max_shift
    stretch = DEFAULT_MAX_STRETCH if max_stretch is None else max_stretch
    row_of = {str(i): r for r, i in enumerate(library.ids)}
    hits = index.search(queries, k=fetch, max_shift=shift, max_stretch=stretch)
    out = []
    for qi, h in enumerate(hits):
        rows = np.array([row_of[str(i)] for i in h.ids], np.int64)
        q = queries.take([qi])
        # The meter rule of match: a 3/4 phrase never goes under a 4/4 one.
        rows = rows[library.steps[rows] == q.steps[0]] if len(rows) else rows
        if not len(rows):
            continue
        cands = library.take(rows)
        sc = score_candidates(q, cands, max_shift=shift, max_stretch=stretch)
        ok = sc.valid & (sc.score > 0)
        if not ok.any():
            continue
        X, names = pair_features(
            sc.terms, stretch=sc.stretch, semitones=sc.semitones, tempo_ratio=sc.tempo_ratio,
            query_balance=q.balance[0], balance=cands.balance, relation=sc.relation,
            rule_score=sc.score, coverage=sc.coverage,
        )  # fmt: skip
        out.append(
            CandidateList(
                query=str(q.ids[0]),
                track=str(q.track_ids[0]),
                ids=cands.ids[ok],
                tracks=cands.track_ids[ok],
                rule=sc.score[ok],
                X=X[ok],
                names=names,
                relation=sc.relation[ok].astype(np.int64),
                tempo_ratio=sc.tempo_ratio[ok],
                query_balance=q.balance[0].astype(np.float64),
                balance=cands.balance[ok].astype(np.float64),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Listeners

#: The ``keys`` listener's liking of each key relation after the shift.
KEY_LIKING: dict[str, float] = {
    "same": 0.2,
    "relative": 1.0,
    "fifth": 1.0,
    "diagonal": 0.8,
    "parallel": 0.3,
    "energy_boost": 0.4,
    "other": 0.1,
    "tritone": 0.0,
}


def taste_rules(c: CandidateList) -> np.ndarray:
    """Agrees with the rules."""
    return c.rule.astype(np.float64)


def taste_keys(c: CandidateList) -> np.ndarray:
    """Fifths and relative keys over the same key (:data:`KEY_LIKING`), and the rules a bit."""
    liking = np.array([KEY_LIKING[r] for r in RELATIONS])[c.relation]
    return 0.4 * c.rule + 0.6 * liking


def taste_straight(c: CandidateList) -> np.ndarray:
    """The rules, but a half-time or double-time pairing is worth a quarter."""
    return c.rule * np.where(c.tempo_ratio == 1.0, 1.0, 0.25)


def taste_contrast(c: CandidateList) -> np.ndarray:
    """Contrasting spectral balance (total-variation distance of low/mid/high), and the rules."""
    tv = 0.5 * np.abs(c.balance - c.query_balance[None, :]).sum(axis=1)
    return 0.4 * c.rule + 0.6 * tv


@dataclass(frozen=True)
class Listener:
    """A hidden taste (``taste(list) -> value per candidate``) and rating noise in stars."""

    name: str
    taste: Callable[[CandidateList], np.ndarray]
    noise: float = RATING_NOISE
    differs: bool = True


LISTENERS: tuple[Listener, ...] = (
    Listener("keys", taste_keys),
    Listener("straight", taste_straight),
    Listener("contrast", taste_contrast),
    Listener("rules", taste_rules, differs=False),
)


@dataclass
class Calibrated:
    """A listener with its taste mapped onto the star scale: 5th percentile -> 1, 95th -> 5."""

    listener: Listener
    lo: float
    hi: float

    def relevance(self, c: CandidateList) -> np.ndarray:
        """Noiseless stars minus one, in [0, 4]: the graded relevance of NDCG."""
        t = self.listener.taste(c)
        return 4.0 * np.clip((t - self.lo) / max(self.hi - self.lo, 1e-9), 0.0, 1.0)

    def rate(self, c: CandidateList, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Ratings 1..5 of ``rows`` (taste plus noise, rounded as a person would)."""
        stars = 1.0 + self.relevance(c)[rows] + rng.normal(0.0, self.listener.noise, len(rows))
        return np.clip(np.rint(stars), 1, 5)


def calibrate(listener: Listener, lists: Sequence[CandidateList]) -> Calibrated:
    """Fix the listener's star scale on the tastes of every candidate of ``lists``."""
    values = np.concatenate([listener.taste(c) for c in lists]) if lists else np.zeros(0)
    if not len(values):
        raise ParameterError("no candidates to calibrate a listener on")
    lo, hi = np.percentile(values, [5, 95])
    return Calibrated(listener, float(lo), float(hi))


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class Checkpoint:
    """Held-out NDCG@k after ``ratings`` ratings (learned: nan before the first model)."""

    ratings: int
    rule: float
    learned: float
    blend: float
    weight: float

    def to_json(self) -> dict[str, Any]:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 4)

        return {
            "ratings": self.ratings,
            "ndcg_rule": r(self.rule),
            "ndcg_learned": r(self.learned),
            "ndcg_blend": r(self.blend),
            "blend_weight": round(self.weight, 3),
        }


@dataclass
class LoopResult:
    """Learning curve of one listener."""

    listener: str
    checkpoints: list[Checkpoint] = field(default_factory=list)
    #: The model in use at each checkpoint (None before the first one).
    models: list[Ranker | None] = field(default_factory=list)
    calibrated: Calibrated | None = None

    @property
    def model(self) -> Ranker | None:
        """The last model."""
        return self.models[-1] if self.models else None

    def at(self, ratings: int) -> Checkpoint:
        return next(c for c in self.checkpoints if c.ratings == ratings)


def evaluate(
    lists: Sequence[CandidateList], listener: Calibrated, model: Ranker | None, *, k: int = 10
) -> tuple[float, float, float]:
    """Mean NDCG@k of rule, learned and blend over ``lists`` (learned: nan without a model)."""
    out: list[tuple[float, float, float]] = []
    for c in lists:
        rel = listener.relevance(c)
        rule = ndcg_of_scores(c.rule, rel, k)
        if model is None:
            out.append((rule, math.nan, rule))
            continue
        learned = model.learned(c.X, c.names)
        out.append(
            (
                rule,
                ndcg_of_scores(learned, rel, k),
                ndcg_of_scores(blend(c.rule, learned, weight=model.blend), rel, k),
            )
        )
    arr = np.array(out, dtype=float).reshape(-1, 3)
    with np.errstate(all="ignore"):
        means = [float(np.nanmean(arr[:, j])) if np.isfinite(arr[:, j]).any() else math.nan
                 for j in range(3)]  # fmt: skip
    return means[0], means[1], means[2]


def shown(c: CandidateList, model: Ranker | None, top: int) -> np.ndarray:
    """Rows the matcher shows for ``c`` with ``model`` active: its top ``top`` by the score."""
    score = (
        c.rule if model is None else blend(c.rule, model.learned(c.X, c.names), weight=model.blend)
    )
    return np.argsort(-score, kind="stable")[:top]


def run_loop(
    train: Sequence[CandidateList],
    test: Sequence[CandidateList],
    listener: Listener,
    *,
    checkpoints: Sequence[int] = CHECKPOINTS,
    per_query: int = PER_QUERY,
    queries_per_round: int = QUERIES_PER_ROUND,
    pairs_X: np.ndarray | None = None,
    pairs_y: np.ndarray | None = None,
    learn: bool = True,
    seed: int = 0,
    k: int = 10,
) -> LoopResult:
    """Rate, retrain, repeat; measure on ``test`` at each checkpoint.

    Parameters
    ----------
    train, test : sequence of CandidateList
        Query phrases of training tracks (asked and rated) and of held-out tracks (measured).
    listener : Listener
        Calibrated on the training lists' candidates.
    checkpoints : sequence of int
        Numbers of ratings at which to measure (0: the rule score alone).
    per_query : int
        Candidates rated per query (the top of what the matcher shows).
    queries_per_round : int
        Queries rated between retrainings.
    pairs_X, pairs_y : np.ndarray, optional
        Self-supervised stem pairs trained with the ratings.
    learn : bool
        False: never train (the learned term disabled; the control of the tests).
    seed : int

    Returns
    -------
    LoopResult
    """
    if not train or not test:
        raise ParameterError("the loop needs training and held-out query lists")
    if any(c.track in {t.track for t in train} for c in test):
        raise ParameterError("held-out queries must come from tracks outside the training set")
    marks = sorted(set(int(x) for x in checkpoints))
    if marks and marks[0] < 0:
        raise ParameterError("checkpoints must be >= 0")
    rng = np.random.default_rng(seed)
    cal = calibrate(listener, train)
    result = LoopResult(listener.name, calibrated=cal)
    rated: list[RatedList] = []
    model: Ranker | None = None
    n = 0
    order: list[int] = []
    for mark in marks:
        while n < mark:
            for _ in range(queries_per_round):
                if n >= mark:
                    break
                if not order:
                    order = list(rng.permutation(len(train)))
                c = train[order.pop()]
                rows = shown(c, model, min(per_query, mark - n))
                scores = cal.rate(c, rows, rng)
                rated.append(RatedList(c.X[rows], c.rule[rows], scores, c.track))
                n += len(rows)
            if learn:
                try:
                    model = train_from_ratings(
                        rated, train[0].names, pairs_X=pairs_X, pairs_y=pairs_y, k=k
                    )
                except ParameterError:
                    model = None  # one kind of rating only so far: nothing to learn yet
        rule, learned, mixed = evaluate(test, cal, model, k=k)
        result.checkpoints.append(
            Checkpoint(mark, rule, learned, mixed, 0.0 if model is None else model.blend)
        )
        result.models.append(model)
    return result


# ---------------------------------------------------------------------------------------------
# Feature-level segments without audio


#: Tempo bands of :func:`synthetic_segments`: two with a half-time partner band (61 / 122,
#: 87 / 174) so half/double-time pairings occur among rule-valid candidates.
TEMPO_BANDS: tuple[float, ...] = (122.0, 61.0, 87.0, 174.0)
#: Spectral balances of the mixes: full, bass-heavy, bright.
MIXES: dict[str, tuple[float, float, float]] = {
    "full": (0.55, 0.35, 0.10),
    "bass": (0.80, 0.17, 0.03),
    "bright": (0.10, 0.55, 0.35),
}


def synthetic_segments(
    n_tracks: int,
    *,
    phrases: int = 6,
    bars: int = 4,
    seed: int = 0,
    meter: int = 4,
) -> list[Segment]:
    """Phrase segments with plausible features and no audio: ``n_tracks * phrases`` segments.

    Each track has a key (any of 24), a tempo near one of :data:`TEMPO_BANDS`, a mix
    (:data:`MIXES`, jittered), and one diatonic progression (a chord per bar, I-V-vi-IV style
    drawn from the key's degrees); beat chroma is the chord triad plus the bass note plus
    noise, rhythm a kick/hat pattern with jitter, energy per phrase. For tests and scale
    measurements: what the analysis would store, not what it would estimate from audio.
    """
    if n_tracks < 1 or phrases < 1 or bars < 1 or meter < 2:
        raise ParameterError("n_tracks, phrases, bars must be >= 1 and meter >= 2")
    rng = np.random.default_rng(seed)
    major = (0, 2, 4, 5, 7, 9, 11)
    minor = (0, 2, 3, 5, 7, 8, 10)
    out: list[Segment] = []
    for _ in range(n_tracks):
        key = Key(int(rng.integers(12)), "major" if rng.random() < 0.5 else "minor")
        scale = major if key.mode == "major" else minor
        tempo = float(TEMPO_BANDS[int(rng.integers(len(TEMPO_BANDS)))] * rng.uniform(0.97, 1.03))
        mix = np.array(MIXES[("full", "bass", "bright")[int(rng.integers(3))]])
        degrees = rng.choice([0, 3, 4, 5, 1], size=4, replace=True)
        degrees[0] = 0
        track_id = f"{rng.integers(1 << 62):016x}"
        pattern = np.zeros(meter * 4)
        pattern[::4] = 1.0  # beats
        pattern[2::4] = rng.uniform(0.2, 0.8)  # offbeats
        for p in range(phrases):
            beat_chroma = np.zeros((bars * meter, 12))
            for b in range(bars):
                d = int(degrees[(b + p) % len(degrees)])
                root = (key.tonic + scale[d]) % 12
                triad = [
                    root,
                    (key.tonic + scale[(d + 2) % 7]) % 12,
                    (key.tonic + scale[(d + 4) % 7]) % 12,
                ]
                for j in range(meter):
                    row = rng.uniform(0.0, 0.08, 12)
                    row[triad] += (1.0, 0.7, 0.8)
                    row[root] += 0.5
                    beat_chroma[b * meter + j] = row / row.sum()
            chroma = beat_chroma.reshape(bars, meter, 12).mean(axis=1)
            chroma /= chroma.sum(axis=1, keepdims=True)
            rhythm = np.clip(pattern + rng.uniform(0.0, 0.25, len(pattern)), 0.0, None)
            balance = np.clip(mix + rng.normal(0.0, 0.04, 3), 0.01, None)
            features = SegmentFeatures(
                chroma=chroma,
                beat_chroma=beat_chroma,
                rhythm=rhythm / rhythm.max(),
                spectral_balance=balance / balance.sum(),
                energy=float(rng.uniform(0.5, 1.0)),
                rms_db=-14.0,
                loudness=-14.0,
                key_clarity=float(rng.uniform(0.3, 0.9)),
            )
            seconds = bars * meter * 60.0 / tempo
            out.append(
                Segment(
                    id=f"{track_id}_{p}", track_id=track_id, index=p, level="phrase",
                    start=p * seconds, end=(p + 1) * seconds, bar=p * bars, bars=bars,
                    label="verse", tempo=tempo, key=key, features=features,
                )
            )  # fmt: skip
    return out


def split_tracks(
    track_ids: Sequence[str], held_out: float, *, seed: int = 0
) -> tuple[set[str], set[str]]:
    """(training tracks, held-out tracks): a random ``held_out`` share of the tracks."""
    tracks = sorted(set(track_ids))
    if len(tracks) < 2 or not 0.0 < held_out < 1.0:
        raise ParameterError("need at least two tracks and 0 < held_out < 1")
    perm = np.random.default_rng(seed).permutation(tracks)
    n_held = min(len(tracks) - 1, max(1, int(round(held_out * len(tracks)))))
    return set(perm[n_held:].tolist()), set(perm[:n_held].tolist())


def relation_counts(lists: Sequence[CandidateList]) -> dict[str, int]:
    """How many rule-valid candidates have each key relation, half/double time, contrast."""
    rel = np.concatenate([c.relation for c in lists]) if lists else np.zeros(0, np.int64)
    ratio = np.concatenate([c.tempo_ratio for c in lists]) if lists else np.zeros(0)
    tv = (
        np.concatenate([0.5 * np.abs(c.balance - c.query_balance).sum(axis=1) for c in lists])
        if lists
        else np.zeros(0)
    )
    out = {f"relation_{r}": int(np.sum(rel == i)) for i, r in enumerate(RELATIONS)}
    out["half_or_double_time"] = int(np.sum(ratio != 1.0))
    out["contrast_tv_over_0.3"] = int(np.sum(tv > 0.3))
    out["candidates"] = int(len(rel))
    out["queries"] = len(lists)
    return out
