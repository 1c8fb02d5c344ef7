"""Segment groups: PCA + k-means over segment features (scikit-learn).

Each segment is described by what a DJ browses by: its mean chroma (harmony, key-dependent on
purpose: a group is "these sound alike", transposition included), its 16th-grid onset
pattern, its low/mid/high balance, its energy, its tempo (log2, so 64 and 128 BPM are one
octave apart) and its key clarity. Features are standardised, reduced by PCA to the
components carrying 90 % of the variance (at most :data:`MAX_COMPONENTS`), then grouped by
k-means with ``k = clip(round(sqrt(n / 2)), 2, MAX_K)`` unless asked.

The fitted model is stored as plain arrays (``.npz``: scaler, PCA basis, centroids; no pickle,
so it loads across scikit-learn versions) in the library's artefact folder, with a row in the
``models`` table (kind ``"clusters"``). Segments ingested later are assigned to the nearest
centroid of the current model; ``cratedig clusters --refit`` trains a new one.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.analysis.records import Segment
from cratedig.errors import ParameterError
from cratedig.fileio import atomic_path
from cratedig.learn.drift import build_reference, table_from_segments
from cratedig.learn.gate import GateReport, GateRules, gate_segments
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.batch import RHYTHM_STEPS, SegmentBatch

log = logging.getLogger(__name__)

KIND = "clusters"
MAX_K = 32
MAX_COMPONENTS = 12
EXPLAINED = 0.90
#: Fewer segments than this: no clusters (nothing meaningful to group).
MIN_SEGMENTS = 8
BANDS = ("low", "mid", "high")
FEATURES = "mean chroma, rhythm pattern, low/mid/high balance, energy, log2 tempo, key clarity"


def segment_features(batch: SegmentBatch) -> np.ndarray:
    """Clustering features of every segment -> (n, 12 + 16 + 3 + 3) float64."""
    chroma, mask = batch.bar_chroma()
    m = mask[..., None].astype(np.float64)
    mean = (chroma * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    return features_from_columns(
        mean_chroma=mean,
        rhythm=batch.rhythm.astype(np.float64).reshape(len(batch), RHYTHM_STEPS),
        balance=batch.balance,
        energy=batch.energy,
        tempo=batch.tempo,
        key_clarity=batch.key_clarity,
    )


def features_from_columns(
    *,
    mean_chroma: np.ndarray,
    rhythm: np.ndarray,
    balance: np.ndarray,
    energy: np.ndarray,
    tempo: np.ndarray,
    key_clarity: np.ndarray,
) -> np.ndarray:
    """:func:`segment_features` from per-segment columns: mean chroma (n, 12, normalised here),
    rhythm (n, 16, zero-padded), balance (n, 3), energy, tempo (BPM), key clarity (n,)."""
    mean = np.asarray(mean_chroma, dtype=np.float64)
    total = mean.sum(axis=1, keepdims=True)
    mean = np.where(total > 1e-9, mean / np.maximum(total, 1e-12), 0.0)
    return np.hstack(
        [
            mean,
            np.asarray(rhythm, dtype=np.float64),
            np.asarray(balance, dtype=np.float64),
            np.asarray(energy, dtype=np.float64)[:, None],
            np.log2(np.maximum(np.asarray(tempo, dtype=np.float64), 1.0))[:, None],
            np.asarray(key_clarity, dtype=np.float64)[:, None],
        ]
    )


@dataclass
class ClusterModel:
    """A fitted scaler + PCA + k-means, as arrays."""

    mean: np.ndarray  # (d,) scaler
    scale: np.ndarray  # (d,)
    components: np.ndarray  # (c, d) PCA basis
    pca_mean: np.ndarray  # (d,)
    centroids: np.ndarray  # (k, c)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(len(self.centroids))

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Features -> PCA coordinates."""
        z = (x - self.mean) / self.scale
        return (z - self.pca_mean) @ self.components.T

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid of each row of features -> (n,) int."""
        return self.nearest(x)[0]

    def nearest(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row of features and the distance to it (PCA space)."""
        if len(x) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        e = self.embed(x)
        # |e - c|^2 = |e|^2 - 2 e.c + |c|^2: one matrix product, no (n, k, c) temporary.
        d = (
            (e**2).sum(axis=1)[:, None]
            - 2.0 * e @ self.centroids.T
            + (self.centroids**2).sum(axis=1)[None, :]
        )
        best = np.argmin(d, axis=1)
        dist = np.sqrt(np.maximum(d[np.arange(len(e)), best], 0.0))
        return best.astype(np.int64), dist

    def save(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        with atomic_path(p) as tmp:
            np.savez(
                tmp,
                mean=self.mean,
                scale=self.scale,
                components=self.components,
                pca_mean=self.pca_mean,
                centroids=self.centroids,
            )
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterModel:
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(
                **{k: z[k] for k in ("mean", "scale", "components", "pca_mean", "centroids")}
            )


def fit_clusters(x: np.ndarray, *, k: int | None = None, seed: int = 0) -> ClusterModel:
    """Fit scaler + PCA + k-means on feature rows ``x`` (n, d).

    Parameters
    ----------
    x : np.ndarray [shape=(n, d)]
    k : int, optional
        Number of clusters (default ``clip(round(sqrt(n / 2)), 2, MAX_K)``).
    seed : int
        k-means initialisation seed (results are deterministic for a seed).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    n = len(x)
    if n < MIN_SEGMENTS:
        raise ParameterError(f"{n} segments: need at least {MIN_SEGMENTS} to form clusters")
    k = k if k is not None else int(np.clip(round(np.sqrt(n / 2)), 2, MAX_K))
    if not 2 <= k <= n:
        raise ParameterError(f"k={k} must be within 2..{n} (the number of segments)")
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 1e-9, scaler.scale_, 1.0)
    z = (x - scaler.mean_) / scale
    full = PCA(n_components=min(MAX_COMPONENTS, x.shape[1], n - 1), random_state=seed).fit(z)
    keep = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), EXPLAINED) + 1)
    keep = min(max(keep, 2), len(full.components_))
    components = full.components_[:keep]
    e = (z - full.mean_) @ components.T
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(e)
    labels = km.labels_
    sil = float(silhouette_score(e, labels)) if len(set(labels.tolist())) > 1 else 0.0
    return ClusterModel(
        mean=scaler.mean_,
        scale=scale,
        components=components,
        pca_mean=full.mean_,
        centroids=km.cluster_centers_,
        metrics={
            "segments": n,
            "k": k,
            "components": keep,
            "explained_variance": round(float(full.explained_variance_ratio_[:keep].sum()), 4),
            "inertia": round(float(km.inertia_), 4),
            "silhouette": round(sil, 4),
        },
    )


@dataclass
class ClusterRefresh:
    """What :func:`refresh_clusters` did."""

    fitted: bool = False
    version: int | None = None
    assigned: int = 0
    k: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why nothing was done
    gate: GateReport | None = None  # which tracks the training gate kept out

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate.to_json() if self.gate is not None else None,
            "fitted": self.fitted,
            "version": self.version,
            "assigned": self.assigned,
            "k": self.k,
            "metrics": self.metrics,
            "skipped": self.skipped,
        }


def _artefact(library: Library, version: int) -> Path:
    return library.artefact_dir / f"clusters-v{version}.npz"


def current_model(library: Library) -> tuple[ClusterModel, int] | None:
    """The newest cluster model whose artefact is readable, with its version."""
    with library.reader() as s:
        info = repo.latest_model(s, KIND)
    if info is None or info.artefact is None:
        return None
    p = library.artefact_dir / info.artefact
    try:
        return ClusterModel.load(p), info.version
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("cluster model %s unreadable (%s): refitting", p, exc or type(exc).__name__)
        return None


def _load(library: Library, segment_ids: list[str] | None) -> list[Segment]:
    with library.reader() as s:
        if segment_ids is not None:
            return repo.load_segments(s, segment_ids=segment_ids)
        return repo.load_segments(s, track_ids=repo.current_track_ids(s))


def refresh_clusters(
    library: Library,
    *,
    refit: bool = False,
    k: int | None = None,
    seed: int = 0,
    gate: GateRules | None = None,
) -> ClusterRefresh:
    """Give every current segment a cluster id.

    With no model yet (or ``refit``, or a ``k`` different from the model's), fit one on the
    current segments that pass the training gate (``gate``, default :class:`GateRules`) and
    assign every segment; otherwise assign only segments without a cluster id to the nearest
    centroid of the current model. A fit stores the drift reference of its training segments
    (:func:`cratedig.learn.drift.build_reference`) in the model's parameters.
    """
    # One model per library: a concurrent refresh waits, then finds this one's model.
    with library.exclusive("clusters"):
        return _refresh(library, refit=refit, k=k, seed=seed, gate=gate)


def _refresh(
    library: Library, *, refit: bool, k: int | None, seed: int, gate: GateRules | None
) -> ClusterRefresh:
    report = ClusterRefresh()
    have = None if refit else current_model(library)
    if have is not None and k is not None and have[0].k != k:
        have = None
    if have is not None:
        model, version = have
        with library.reader() as s:
            todo = repo.segment_ids_without_cluster(s)
        segments = _load(library, todo) if todo else []
        if segments:
            labels = model.predict(segment_features(SegmentBatch.from_segments(segments)))
            with library.transaction() as s:
                repo.set_cluster_ids(
                    s, {g.id: int(c) for g, c in zip(segments, labels, strict=True)}
                )
        report.version, report.assigned, report.k = version, len(segments), model.k
        return report
    segments = _load(library, None)
    with library.reader() as s:
        qualities = repo.track_qualities(s)
    training, report.gate = gate_segments(segments, qualities, gate)
    if report.gate.excluded:
        log.info("training gate: %s", report.gate.summary())
    if len(training) < MIN_SEGMENTS:
        report.skipped = f"{len(training)} segments pass the training gate: need {MIN_SEGMENTS}"
        return report
    train_batch = SegmentBatch.from_segments(training)
    model = fit_clusters(segment_features(train_batch), k=k, seed=seed)
    labels = model.predict(segment_features(SegmentBatch.from_segments(segments)))
    reference = build_reference(table_from_segments(training, model), k=model.k)
    model.metrics["gate"] = report.gate.to_json()
    with library.transaction() as s:
        version = repo.store_model(
            s,
            kind=KIND,
            parameters={
                "k": model.k,
                "seed": seed,
                "explained": EXPLAINED,
                "features": FEATURES,
                "gate": (gate or GateRules()).to_json(),
                "reference": reference,
            },
            metrics=model.metrics,
            artefact=None,
        )
        path = _artefact(library, version)
        model.save(path)
        repo.set_model_artefact(s, KIND, version, path.name)
        repo.set_cluster_ids(s, {g.id: int(c) for g, c in zip(segments, labels, strict=True)})
    report.fitted, report.version, report.assigned = True, version, len(segments)
    report.k, report.metrics = model.k, model.metrics
    return report


@dataclass
class ClusterInfo:
    """One group of segments, summarised for ``cratedig clusters``."""

    cluster: int
    segments: int
    tracks: int
    camelot: str  # the most common key of the group
    camelot_share: float
    tempo: float  # median BPM
    energy: float  # mean relative energy
    band: str  # the dominant spectral band
    labels: str  # most common section labels
    examples: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "segments": self.segments,
            "tracks": self.tracks,
            "camelot": self.camelot,
            "camelot_share": round(self.camelot_share, 3),
            "tempo": round(self.tempo, 2),
            "energy": round(self.energy, 3),
            "band": self.band,
            "labels": self.labels,
            "examples": self.examples,
        }


def cluster_summary(library: Library, *, examples: int = 3) -> list[ClusterInfo]:
    """Every cluster of the current segments, largest first."""
    segments = _load(library, None)
    with library.reader() as s:
        cluster_of = repo.segment_clusters(s)
    groups: dict[int, list[Segment]] = {}
    for g in segments:
        c = cluster_of.get(g.id)
        if c is not None:
            groups.setdefault(c, []).append(g)
    out = []
    for c, members in groups.items():
        keys = Counter(g.key.camelot for g in members)
        key, count = keys.most_common(1)[0]
        balance = np.mean([g.features.spectral_balance for g in members], axis=0)
        labels = Counter(g.label for g in members).most_common(2)
        out.append(
            ClusterInfo(
                cluster=c,
                segments=len(members),
                tracks=len({g.track_id for g in members}),
                camelot=key,
                camelot_share=count / len(members),
                tempo=float(np.median([g.tempo for g in members])),
                energy=float(np.mean([g.features.energy for g in members])),
                band=BANDS[int(np.argmax(balance))],
                labels=", ".join(lbl for lbl, _ in labels),
                examples=[g.id for g in members[:examples]],
            )
        )
    return sorted(out, key=lambda i: (-i.segments, i.cluster))
