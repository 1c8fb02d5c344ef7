"""Drift: does the music arriving since the model was trained look like what it was trained on?

Conventions
-----------
A :class:`DriftTable` holds one row per segment (tempo, key, meter, energy, low/mid/high
balance, dominant pitch class of the mean chroma, key clarity) and, given the cluster model,
its nearest cluster and its distance to that centroid in the model's PCA space. At training
time :func:`build_reference` summarises the training table as JSON (decile bin edges and counts,
101 quantiles per numeric feature; category counts; the distance beyond which a segment is
"far from every centroid", the training set's 99th percentile) and the cluster model stores it
in its ``models`` row (``parameters["reference"]``): no pickle, no raw rows.

Metrics
-------
PSI
    Population stability index, sum over bins of ``(p_new - p_ref) * ln(p_new / p_ref)``
    (Siddiqi, *Credit Risk Scorecards*, 2006; Yurdakul, "Statistical properties of the
    population stability index", 2018), bins = reference deciles for numeric features,
    categories otherwise, half a count added to every bin. Rule of thumb: < 0.1 stable,
    0.1-0.25 moderate, > 0.25 shifted.
KS
    Two-sample Kolmogorov-Smirnov statistic of a numeric feature against the reference
    quantiles (Massey, 1951), p-value from the Kolmogorov distribution. Categorical features
    use a chi-square test of homogeneity instead.
Both tests count *tracks*, not segments, as the sample size: the phrases of one song share
its tempo and key, so treating them as independent would call every new album a drift.
A feature drifts when PSI >= :data:`PSI_DRIFT` and p < :data:`ALPHA`; the verdict needs at
least :data:`MIN_TRACKS` new tracks.

Also reported: the ingest failure rate since, the ratings made since against those before
training, and the groups (meter, tempo band, key clarity, cluster, source folder) whose
segments the model represents worst (far from every centroid).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import special, stats

from cratedig.errors import ParameterError

log = logging.getLogger(__name__)

#: PSI at or above which a feature has shifted (with p < ALPHA).
PSI_DRIFT = 0.25
#: Significance of the KS / chi-square test for a drifted feature (per feature).
ALPHA = 1e-3
#: Fewer new tracks than this: no verdict.
MIN_TRACKS = 5
#: Quantile of the training distances beyond which a segment is far from every centroid.
FAR_QUANTILE = 0.99
#: Drifted features, or this many times the reference share of far segments, mean retrain.
FAR_RATIO_RETRAIN = 3.0

NUMERIC = ("tempo", "energy", "balance_low", "balance_mid", "balance_high", "key_clarity")
CATEGORICAL = ("key", "meter", "chroma", "cluster", "far")
#: What each feature is, for people.
DESCRIPTIONS = {
    "tempo": "segment tempo (BPM)",
    "key": "key (24 major/minor keys)",
    "meter": "meter (beats per bar)",
    "energy": "energy relative to the track's loudest phrase",
    "balance_low": "spectral balance: share below 200 Hz",
    "balance_mid": "spectral balance: share 200-2000 Hz",
    "balance_high": "spectral balance: share above 2 kHz",
    "chroma": "chroma profile (dominant pitch class)",
    "key_clarity": "key clarity",
    "cluster": "cluster occupancy",
    "far": "share of segments far from every centroid",
}
TEMPO_BANDS = ((0, 90), (90, 110), (110, 130), (130, 150), (150, 1000))


@dataclass
class DriftTable:
    """Per-segment drift features (one row per segment).

    Attributes
    ----------
    track_ids : np.ndarray [shape=(n,), dtype=object]
    tempo, energy, key_clarity : np.ndarray [shape=(n,)]
    key : np.ndarray [shape=(n,), dtype=int]
        :attr:`cratedig.theory.Key.index` (0..23).
    meter : np.ndarray [shape=(n,), dtype=int]
        Beats per bar.
    balance : np.ndarray [shape=(n, 3)]
        Low/mid/high shares.
    chroma : np.ndarray [shape=(n,), dtype=int]
        Dominant pitch class of the segment's mean chroma (0 = C).
    cluster : np.ndarray [shape=(n,), dtype=int]
        Nearest centroid (-1 without a model).
    distance : np.ndarray [shape=(n,)]
        Euclidean distance to it in the model's PCA space (NaN without a model).
    folders : dict
        ``track id -> source folder`` (for naming what the model does worse on).
    """

    track_ids: np.ndarray
    tempo: np.ndarray
    key: np.ndarray
    meter: np.ndarray
    energy: np.ndarray
    balance: np.ndarray
    chroma: np.ndarray
    key_clarity: np.ndarray
    cluster: np.ndarray
    distance: np.ndarray
    folders: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def tracks(self) -> int:
        return len(set(self.track_ids.tolist()))

    def column(self, name: str) -> np.ndarray:
        """A feature by its drift name (``balance_low``... split the balance columns)."""
        if name.startswith("balance_"):
            return self.balance[:, ("low", "mid", "high").index(name[8:])]
        return np.asarray(getattr(self, name))

    def take(self, rows: np.ndarray) -> DriftTable:
        """The rows ``rows`` (boolean mask or indices)."""
        tids = self.track_ids[rows]
        kept = set(tids.tolist())
        return DriftTable(
            track_ids=tids,
            tempo=self.tempo[rows],
            key=self.key[rows],
            meter=self.meter[rows],
            energy=self.energy[rows],
            balance=self.balance[rows],
            chroma=self.chroma[rows],
            key_clarity=self.key_clarity[rows],
            cluster=self.cluster[rows],
            distance=self.distance[rows],
            folders={t: f for t, f in self.folders.items() if t in kept},
        )

    @classmethod
    def concat(cls, tables: Sequence[DriftTable]) -> DriftTable:
        folders: dict[str, str] = {}
        for t in tables:
            folders.update(t.folders)
        return cls(
            track_ids=np.concatenate([t.track_ids for t in tables]),
            tempo=np.concatenate([t.tempo for t in tables]),
            key=np.concatenate([t.key for t in tables]),
            meter=np.concatenate([t.meter for t in tables]),
            energy=np.concatenate([t.energy for t in tables]),
            balance=np.concatenate([t.balance for t in tables]),
            chroma=np.concatenate([t.chroma for t in tables]),
            key_clarity=np.concatenate([t.key_clarity for t in tables]),
            cluster=np.concatenate([t.cluster for t in tables]),
            distance=np.concatenate([t.distance for t in tables]),
            folders=folders,
        )


def table_from_columns(
    *,
    track_ids: Sequence[str],
    tempo: np.ndarray,
    key: np.ndarray,
    energy: np.ndarray,
    balance: np.ndarray,
    mean_chroma: np.ndarray,
    rhythm: np.ndarray,
    steps: np.ndarray,
    key_clarity: np.ndarray,
    model: Any | None = None,
) -> DriftTable:
    """A drift table from per-segment columns (``mean_chroma`` (n, 12): the mean of the
    segment's per-bar chroma; ``rhythm`` (n, 16) zero-padded, ``steps`` its used length).
    ``model`` (a :class:`~cratedig.learn.clusters.ClusterModel`) adds the nearest cluster and
    the distance to it."""
    from cratedig.learn.clusters import features_from_columns

    n = len(track_ids)
    if model is not None and n:
        x = features_from_columns(
            mean_chroma=mean_chroma,
            rhythm=rhythm,
            balance=balance,
            energy=energy,
            tempo=tempo,
            key_clarity=key_clarity,
        )
        cluster, distance = model.nearest(x)
    else:
        cluster, distance = np.full(n, -1, np.int64), np.full(n, np.nan)
    return DriftTable(
        track_ids=np.asarray(list(track_ids), dtype=object),
        tempo=np.asarray(tempo, dtype=np.float64),
        key=np.asarray(key, dtype=np.int64),
        meter=np.maximum(np.asarray(steps, dtype=np.int64) // 4, 1),
        energy=np.asarray(energy, dtype=np.float64),
        balance=np.asarray(balance, dtype=np.float64).reshape(n, 3),
        chroma=np.argmax(mean_chroma, axis=1).astype(np.int64) if n else np.zeros(0, np.int64),
        key_clarity=np.asarray(key_clarity, dtype=np.float64),
        cluster=cluster,
        distance=distance,
    )


def table_from_segments(segments: Sequence[Any], model: Any | None = None) -> DriftTable:
    """Drift features of :class:`~cratedig.analysis.records.Segment` records (what the
    training reference is built from; :func:`load_table` reads the same columns from the
    database)."""
    from cratedig.library.repository import mean_bar_chroma
    from cratedig.match.batch import RHYTHM_STEPS

    n = len(segments)
    rhythm = np.zeros((n, RHYTHM_STEPS))
    steps = np.zeros(n, np.int64)
    for i, s in enumerate(segments):
        r = np.asarray(s.features.rhythm).reshape(-1)[:RHYTHM_STEPS]
        rhythm[i, : len(r)] = r
        steps[i] = len(r)
    return table_from_columns(
        track_ids=[s.track_id for s in segments],
        tempo=np.array([s.tempo for s in segments], dtype=np.float64),
        key=np.array([s.key.index for s in segments], dtype=np.int64),
        energy=np.array([s.features.energy for s in segments], dtype=np.float64),
        balance=np.array([np.asarray(s.features.spectral_balance) for s in segments]).reshape(n, 3),
        mean_chroma=np.array([mean_bar_chroma(s.features.chroma) for s in segments]).reshape(n, 12),
        rhythm=rhythm,
        steps=steps,
        key_clarity=np.array([s.features.key_clarity for s in segments], dtype=np.float64),
        model=model,
    )


# ---------------------------------------------------------------------------------------------
# The training reference


def _categories(name: str, k: int) -> list[int]:
    return {
        "key": list(range(24)),
        "meter": list(range(1, 13)),
        "chroma": list(range(12)),
        "cluster": list(range(max(k, 1))),
        "far": [0, 1],
    }[name]


def _far(table: DriftTable, threshold: float) -> np.ndarray:
    d = np.nan_to_num(table.distance, nan=-np.inf)
    return (d > threshold).astype(np.int64)


def build_reference(table: DriftTable, *, k: int) -> dict[str, Any]:
    """JSON summary of a training table that :func:`compare` tests new data against.

    Parameters
    ----------
    table : DriftTable
        The segments the model was trained on (after the gate).
    k : int
        Number of clusters of the model.
    """
    if len(table) == 0:
        raise ParameterError("cannot build a drift reference from an empty table")
    d = table.distance[np.isfinite(table.distance)]
    far_at = float(np.quantile(d, FAR_QUANTILE)) if len(d) else float("inf")
    ref: dict[str, Any] = {
        "segments": len(table),
        "tracks": table.tracks,
        "k": k,
        "far_distance": far_at,
        "numeric": {},
        "categorical": {},
    }
    for name in NUMERIC:
        x = table.column(name).astype(np.float64)
        x = x[np.isfinite(x)]
        edges = np.unique(np.quantile(x, np.linspace(0.1, 0.9, 9))) if len(x) else np.zeros(0)
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        ref["numeric"][name] = {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "quantiles": [float(q) for q in np.quantile(x, np.linspace(0, 1, 101))]
            if len(x)
            else [],
        }
    for name in CATEGORICAL:
        values = _far(table, far_at) if name == "far" else table.column(name)
        cats = _categories(name, k)
        ref["categorical"][name] = {
            "categories": cats,
            "counts": [int(np.count_nonzero(values == c)) for c in cats],
        }
    # Groups to compare "far" shares by (what the model represents worse).
    ref["key_clarity_terciles"] = [float(q) for q in np.quantile(table.key_clarity, [1 / 3, 2 / 3])]
    return ref


# ---------------------------------------------------------------------------------------------
# Tests


def psi(ref_counts: np.ndarray, new_counts: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins (0.5 added to every
    bin so that an empty bin is finite)."""
    r = np.asarray(ref_counts, dtype=np.float64) + 0.5
    n = np.asarray(new_counts, dtype=np.float64) + 0.5
    p, q = r / r.sum(), n / n.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def ks_against_quantiles(quantiles: np.ndarray, x: np.ndarray) -> float:
    """KS statistic of sample ``x`` against the distribution given by its evenly spaced
    quantiles (101 of them in a reference), linear between distinct quantile values; tied
    quantiles (a feature often exactly 1.0) make a jump, as they do in the data."""
    q = np.asarray(quantiles, dtype=np.float64)
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    if n == 0 or len(q) == 0:
        return 0.0
    levels = np.linspace(0.0, 1.0, len(q))
    values, last = np.unique(q[::-1], return_index=True)
    top = levels[len(q) - 1 - last]  # P(X <= v): the highest level at each distinct value
    first = np.searchsorted(q, values, side="left")
    bottom = np.where(first > 0, levels[np.maximum(first - 1, 0)], 0.0)  # P(X < v)

    def cdf(z: np.ndarray) -> np.ndarray:
        # Linear from P(X < v_i)'s right end at v_{i-1} to P(X < v_i) at v_i, jump to P(X <= v_i).
        inside = np.interp(z, values, top, left=0.0, right=1.0)
        k = np.searchsorted(values, z, side="left")
        exact = (k < len(values)) & (values[np.minimum(k, len(values) - 1)] == z)
        return np.where(exact, top[np.minimum(k, len(values) - 1)], inside)

    def cdf_left(z: np.ndarray) -> np.ndarray:
        k = np.searchsorted(values, z, side="left")
        exact = (k < len(values)) & (values[np.minimum(k, len(values) - 1)] == z)
        return np.where(
            exact, bottom[np.minimum(k, len(values) - 1)], np.interp(z, values, top, 0.0, 1.0)
        )

    points = np.union1d(x, values)
    new_right = np.searchsorted(x, points, side="right") / n
    new_left = np.searchsorted(x, points, side="left") / n
    return float(
        max(
            np.max(np.abs(new_right - cdf(points))),
            np.max(np.abs(new_left - cdf_left(points))),
        )
    )


def ks_pvalue(d: float, n_ref: int, n_new: int) -> float:
    """Asymptotic two-sample KS p-value (Kolmogorov distribution) for sample sizes n_ref, n_new."""
    if n_ref <= 0 or n_new <= 0:
        return 1.0
    en = np.sqrt(n_ref * n_new / (n_ref + n_new))
    return float(special.kolmogorov((en + 0.12 + 0.11 / en) * d))


def chi2_pvalue(ref_counts: np.ndarray, new_counts: np.ndarray, n_ref: int, n_new: int) -> float:
    """Chi-square test of homogeneity, counts rescaled to ``n_ref`` and ``n_new`` observations."""
    r = np.asarray(ref_counts, dtype=np.float64)
    n = np.asarray(new_counts, dtype=np.float64)
    if r.sum() == 0 or n.sum() == 0:
        return 1.0
    table = np.stack([r / r.sum() * n_ref, n / n.sum() * n_new])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.pvalue)


@dataclass
class FeatureDrift:
    """One feature's comparison."""

    feature: str
    psi: float
    statistic: float | None  # KS D, or None for categorical features
    p_value: float
    test: str  # "ks" | "chi2"
    drifted: bool
    moderate: bool
    reference: list[float]  # bin shares of the reference
    new: list[float]  # bin shares of the new data
    bins: list[str]  # bin labels

    @property
    def grew(self) -> list[str]:
        """The bins that gained most (at least 10 points), e.g. ``"3/4 (0 % -> 100 %)"``: what
        kind of music arrived."""
        gain = [
            (n - r, b, r, n) for b, r, n in zip(self.bins, self.reference, self.new, strict=True)
        ]
        return [
            f"{b} ({100 * r:.0f} % -> {100 * n:.0f} %)"
            for g, b, r, n in sorted(gain, reverse=True)[:2]
            if g >= 0.1
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "description": DESCRIPTIONS[self.feature],
            "psi": round(self.psi, 4),
            "statistic": None if self.statistic is None else round(self.statistic, 4),
            "p_value": float(f"{self.p_value:.3g}"),
            "test": self.test,
            "drifted": self.drifted,
            "moderate": self.moderate,
            "grew": self.grew,
            "bins": self.bins,
            "reference": [round(x, 4) for x in self.reference],
            "new": [round(x, 4) for x in self.new],
        }


def _bin_labels(edges: list[float]) -> list[str]:
    e = [f"{x:.3g}" for x in edges]
    if not e:
        return ["all"]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in zip(e[:-1], e[1:], strict=True)] + [f">={e[-1]}"]


def _shares(c: np.ndarray) -> list[float]:
    c = np.asarray(c, dtype=np.float64)
    return (c / c.sum()).tolist() if c.sum() else [0.0] * len(c)


def compare(reference: dict[str, Any], table: DriftTable) -> list[FeatureDrift]:
    """Every feature of ``table`` against the training ``reference``
    (:func:`build_reference`): PSI and KS / chi-square, and whether it drifted."""
    out = []
    t_ref, t_new = int(reference["tracks"]), table.tracks
    for name in NUMERIC:
        r = reference["numeric"][name]
        x = table.column(name).astype(np.float64)
        x = x[np.isfinite(x)]
        edges = np.asarray(r["edges"], dtype=np.float64)
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        value = psi(np.asarray(r["counts"]), counts)
        d = ks_against_quantiles(np.asarray(r["quantiles"]), x)
        p = ks_pvalue(d, t_ref, t_new)
        out.append(
            FeatureDrift(
                feature=name,
                psi=value,
                statistic=d,
                p_value=p,
                test="ks",
                drifted=value >= PSI_DRIFT and p < ALPHA,
                moderate=value >= 0.1 and p < 0.01,
                reference=_shares(np.asarray(r["counts"])),
                new=_shares(counts),
                bins=_bin_labels(r["edges"]),
            )
        )
    far_at = float(reference["far_distance"])
    for name in CATEGORICAL:
        r = reference["categorical"][name]
        values = _far(table, far_at) if name == "far" else table.column(name)
        cats = list(r["categories"])
        counts = np.array([np.count_nonzero(values == c) for c in cats])
        ref_counts = np.asarray(r["counts"])
        if name == "cluster" and (table.cluster < 0).all():
            continue
        value = psi(ref_counts, counts)
        p = chi2_pvalue(ref_counts, counts, t_ref, t_new)
        keep = (ref_counts + counts) > 0  # show only categories that occur
        labels = [_category_label(name, c) for c in cats]
        out.append(
            FeatureDrift(
                feature=name,
                psi=value,
                statistic=None,
                p_value=p,
                test="chi2",
                drifted=value >= PSI_DRIFT and p < ALPHA,
                moderate=value >= 0.1 and p < 0.01,
                reference=[s for s, k in zip(_shares(ref_counts), keep, strict=True) if k],
                new=[s for s, k in zip(_shares(counts), keep, strict=True) if k],
                bins=[lb for lb, k in zip(labels, keep, strict=True) if k],
            )
        )
    return out


def _category_label(name: str, c: int) -> str:
    from cratedig.theory import Key

    if name == "key":
        return Key.from_index(c).camelot
    if name == "meter":
        return f"{c}/4"
    if name == "chroma":
        return ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")[c]
    if name == "far":
        return ("near", "far")[c]
    return f"#{c}"


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class DriftReport:
    """What ``cratedig drift`` prints and writes."""

    model_version: int | None
    trained_at: str | None
    selection: str  # what "new" means: since a date, a batch, or since training
    new_tracks: int
    new_segments: int
    reference_tracks: int
    reference_segments: int
    features: list[FeatureDrift]
    failures: dict[str, Any]
    ratings: dict[str, Any]
    worse: list[dict[str, Any]]
    drift: bool
    retrain: bool
    verdict: str
    seconds: float = 0.0

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "trained_at": self.trained_at,
            "selection": self.selection,
            "new_tracks": self.new_tracks,
            "new_segments": self.new_segments,
            "reference_tracks": self.reference_tracks,
            "reference_segments": self.reference_segments,
            "drift": self.drift,
            "retrain": self.retrain,
            "drifted": self.drifted,
            "verdict": self.verdict,
            "features": [f.to_json() for f in self.features],
            "failures": self.failures,
            "ratings": self.ratings,
            "worse": self.worse,
            "seconds": round(self.seconds, 3),
        }


def worse_groups(
    reference: dict[str, Any], table: DriftTable, *, min_segments: int = 8
) -> list[dict[str, Any]]:
    """Groups of new segments (meter, tempo band, key clarity, cluster, source folder) that the
    model represents worse than its training data: at least ``min_segments`` segments of two
    tracks, of which a share at least three times the reference share and 15 % lie far from
    every centroid."""
    if len(table) == 0 or not np.isfinite(table.distance).any():
        return []
    far = _far(table, float(reference["far_distance"])).astype(bool)
    ref_far = reference["categorical"]["far"]["counts"]
    base = ref_far[1] / max(sum(ref_far), 1)
    lo, hi = reference.get("key_clarity_terciles", [0.0, 0.0])
    groups: dict[tuple[str, str], np.ndarray] = {}
    for m in np.unique(table.meter):
        groups[("meter", f"{int(m)}/4")] = table.meter == m
    for a, b in TEMPO_BANDS:
        groups[("tempo band", f"{a}-{b} BPM" if b < 1000 else f">= {a} BPM")] = (
            table.tempo >= a
        ) & (table.tempo < b)
    groups[("key clarity", "low")] = table.key_clarity < lo
    groups[("key clarity", "medium")] = (table.key_clarity >= lo) & (table.key_clarity < hi)
    groups[("key clarity", "high")] = table.key_clarity >= hi
    for c in np.unique(table.cluster):
        if c >= 0:
            groups[("cluster", f"#{int(c)}")] = table.cluster == c
    if table.folders:
        folder = np.array([table.folders.get(t, "") for t in table.track_ids.tolist()], object)
        for f in sorted(set(table.folders.values())):
            groups[("source folder", f)] = folder == f
    out = []
    for (kind, name), mask in groups.items():
        n = int(mask.sum())
        if n < min_segments or len(set(table.track_ids[mask].tolist())) < 2:
            continue
        share = float(far[mask].mean())
        if share >= max(3 * base, 0.15):
            out.append(
                {
                    "by": kind,
                    "group": name,
                    "segments": n,
                    "far_share": round(share, 3),
                    "reference_far_share": round(float(base), 3),
                    "mean_distance": round(float(np.nanmean(table.distance[mask])), 3),
                }
            )
    return sorted(out, key=lambda g: (-g["far_share"], -g["segments"]))


def evaluate_drift(
    reference: dict[str, Any],
    table: DriftTable,
    *,
    failures: dict[str, Any] | None = None,
    ratings: dict[str, Any] | None = None,
    model_version: int | None = None,
    trained_at: datetime | None = None,
    selection: str = "",
    failure_threshold: float = 0.2,
) -> DriftReport:
    """The full drift report of ``table`` (new segments) against the training ``reference``.

    Examples
    --------
    >>> report = evaluate_drift(reference, table)  # doctest: +SKIP
    >>> report.drift, report.drifted  # doctest: +SKIP
    (True, ['meter', 'cluster'])
    """
    import time

    t0 = time.perf_counter()
    failures = failures or {}
    ratings = ratings or {}
    enough = table.tracks >= MIN_TRACKS
    features = compare(reference, table) if len(table) else []
    if not enough:
        for f in features:
            f.drifted = False
    drifted = [f.feature for f in features if f.drifted]
    far = next((f for f in features if f.feature == "far"), None)
    far_ratio = 0.0
    if far is not None and len(far.reference) == 2 and far.reference[1] > 0:
        far_ratio = far.new[1] / far.reference[1]
    failing = float(failures.get("rate") or 0.0) >= failure_threshold
    worse_rated = bool(ratings.get("worse"))
    drift = bool(drifted) or failing
    far_grew = far is not None and far_ratio >= FAR_RATIO_RETRAIN and far.p_value < 0.01
    retrain = enough and (bool(drifted) or far_grew or worse_rated)
    worse = worse_groups(reference, table) if enough else []
    if not enough:
        verdict = f"{table.tracks} new tracks: too few to judge (at least {MIN_TRACKS} are needed)"
    elif drift:
        parts = [
            DESCRIPTIONS[f.feature] + (f": {', '.join(f.grew)}" if f.grew else "")
            for f in features
            if f.drifted
        ]
        if failing:
            parts.append(f"ingest failure rate {100 * failures['rate']:.0f} %")
        verdict = "drift in " + "; ".join(parts)
    else:
        moderate = [
            DESCRIPTIONS[f.feature] + (f": {', '.join(f.grew)}" if f.grew else "")
            for f in features
            if f.moderate
        ]
        verdict = (
            "no feature shifted beyond the threshold"
            if retrain
            else "no drift: the new music looks like the training data"
        )
        if moderate:
            verdict += "; moderate shift in " + "; ".join(moderate)
    if retrain:
        verdict += (
            ". Retrain (cratedig clusters --refit): the model fits the new music worse, its "
            "segments are assigned to clusters fitted without music like them"
        )
        if far_ratio:
            verdict += f" ({far_ratio:.1f}x the training share lies far from every centroid)"
    elif enough:
        verdict += ". No need to retrain."
    return DriftReport(
        model_version=model_version,
        trained_at=trained_at.isoformat() if trained_at else None,
        selection=selection,
        new_tracks=table.tracks,
        new_segments=len(table),
        reference_tracks=int(reference["tracks"]),
        reference_segments=int(reference["segments"]),
        features=features,
        failures=failures,
        ratings=ratings,
        worse=worse,
        drift=drift and enough,
        retrain=retrain,
        verdict=verdict,
        seconds=time.perf_counter() - t0,
    )


def parse_since(text: str) -> datetime:
    """``2026-11-20`` or an ISO time -> an aware UTC datetime."""
    from datetime import UTC

    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ParameterError(f"since={text!r} must be a date like 2026-11-20") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# On a library


def _utc(t: datetime) -> datetime:
    from datetime import UTC

    return t if t.tzinfo else t.replace(tzinfo=UTC)


def load_table(library: Any, track_ids: Sequence[str], model: Any | None) -> DriftTable:
    """Drift features of the segments of ``track_ids``, read column by column from the
    database (no Segment records: 100 k segments load in seconds)."""
    from cratedig.library import repository as repo

    ids = list(track_ids)
    with library.reader() as s:
        cols = repo.drift_columns(s, ids)
        paths = repo.first_paths(s, ids)
    if not len(cols["track_ids"]):
        return table_from_batch_empty()
    table = table_from_columns(**cols, model=model)
    table.folders = {tid: os.path.dirname(p) for tid, p in paths.items()}
    return table


def table_from_batch_empty() -> DriftTable:
    """A table with no rows."""
    z = np.zeros(0)
    zi = np.zeros(0, np.int64)
    return DriftTable(
        track_ids=np.zeros(0, object),
        tempo=z,
        key=zi,
        meter=zi,
        energy=z,
        balance=np.zeros((0, 3)),
        chroma=zi,
        key_clarity=z,
        cluster=zi,
        distance=z,
    )


def rating_quality(
    facts: Sequence[Any], trained_at: datetime, cluster_of: dict[str, int]
) -> dict[str, Any]:
    """Mean rating score of the suggestions rated since training against those before, overall
    and by the query segment's cluster; ``worse`` names what got worse (half a point, >= 5
    ratings on each side)."""
    t0 = _utc(trained_at)
    before = [f.score for f in facts if _utc(f.created_at) < t0]
    since = [f for f in facts if _utc(f.created_at) >= t0]
    out: dict[str, Any] = {
        "before": len(before),
        "since": len(since),
        "mean_before": round(float(np.mean(before)), 3) if before else None,
        "mean_since": round(float(np.mean([f.score for f in since])), 3) if since else None,
        "worse": [],
    }
    if len(before) >= 5 and len(since) >= 5 and out["mean_since"] < out["mean_before"] - 0.5:
        out["worse"].append("all suggestions")
    by_cluster: dict[int, list[int]] = {}
    for f in since:
        c = cluster_of.get(f.query_segment_id)
        if c is not None:
            by_cluster.setdefault(c, []).append(f.score)
    out["by_cluster"] = {
        f"#{c}": {"ratings": len(v), "mean": round(float(np.mean(v)), 3)}
        for c, v in sorted(by_cluster.items())
    }
    if out["mean_before"] is not None:
        for c, v in sorted(by_cluster.items()):
            if len(v) >= 5 and np.mean(v) < out["mean_before"] - 0.5:
                out["worse"].append(f"cluster #{c}")
    return out


def library_drift(
    library: Any,
    *,
    since: datetime | None = None,
    batch: str | None = None,
) -> DriftReport:
    """Drift of the tracks that arrived since the cluster model was trained (or ``since`` a
    date, or in ingest ``batch``) against the model's training reference.

    Raises
    ------
    ParameterError
        No cluster model yet, or one trained before references were stored.
    """
    import time

    from cratedig.learn.clusters import KIND, current_model
    from cratedig.library import repository as repo

    t0 = time.perf_counter()
    with library.reader() as s:
        info = repo.latest_model(s, KIND)
    if info is None:
        raise ParameterError("no cluster model yet: ingest some music first (or clusters --refit)")
    reference = info.parameters.get("reference")
    if not reference:
        raise ParameterError(
            f"cluster model v{info.version} has no training reference (trained before drift "
            "existed): run cratedig clusters --refit"
        )
    have = current_model(library)
    model = have[0] if have is not None and have[1] == info.version else None
    start = since if since is not None else (None if batch else info.trained_at)
    with library.reader() as s:
        track_ids = repo.tracks_since(s, since=start, ingest_id=batch)
        span = repo.analysed_span(s, track_ids)
        if batch and span is not None:
            errors = repo.errors_between(s, span[0], span[1])
        else:
            errors = repo.errors_between(s, start) if start is not None else 0
        facts = repo.rating_facts(s)
        cluster_of = repo.segment_clusters(s)
    table = load_table(library, track_ids, model)
    attempts = len(track_ids) + errors
    failures = {
        "failed": errors,
        "analysed": len(track_ids),
        "rate": round(errors / attempts, 4) if attempts else 0.0,
    }
    ratings = rating_quality(facts, info.trained_at, cluster_of)
    if batch:
        selection = f"ingest batch {batch}"
    elif since is not None:
        selection = f"tracks analysed since {since.isoformat()}"
    else:
        selection = f"tracks analysed since model v{info.version} was trained"
    report = evaluate_drift(
        reference,
        table,
        failures=failures,
        ratings=ratings,
        model_version=info.version,
        trained_at=info.trained_at,
        selection=selection,
    )
    report.seconds = time.perf_counter() - t0
    return report
