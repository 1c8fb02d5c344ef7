"""Segment embeddings for "sounds like": an autoencoder beside PCA at the same dimension.

Features (:func:`embedding_features`) describe what a segment sounds like whatever its key:

- **beat-synchronous bar chroma, transposition-normalised**: the first :data:`EMBED_BARS` bars
  (and the segment's mean chroma) rotated so that the segment's key sits at pitch class 0, the
  minor keys on their relative major's tonic (A minor and C major share their notes and sit
  together); a copy of the phrase transposed by any interval gets the same rows as long as the
  key estimate follows the transposition (it is equivariant by construction of the key
  profiles). Each bar row is centred and unit-normed, so silent bars are zeros;
- the **rhythm pattern** (16th-grid onsets of one bar), the **low/mid/high balance** and the
  **energy**.

Two encoders map the standardised features to ``dim`` coordinates:

- :func:`fit_pca`: principal components (scikit-learn PCA);
- :func:`fit_autoencoder`: an autoencoder, scikit-learn ``MLPRegressor`` with hidden layers
  ``(hidden, dim, hidden)`` and tanh trained to reconstruct its input (Adam, mini-batches); the
  encoder is its first two layers (Hinton & Salakhutdinov 2006).

Both are an :class:`Embedding`: the standardisation and the encoder's weights as plain arrays,
stored as ``.npz`` without pickle (``allow_pickle=False``; loading cannot run code) with a format
version, and a kind (``"pca"`` or ``"autoencoder"``); :func:`train_embedding` versions them
in the library's ``models`` table (kind ``"embedding"``) like the ranker, and
:func:`similar_segments` answers "what sounds like this phrase" with the active one.
``bench/embed.py`` compares them on held-out songs (neighbours of transposed and re-tempoed
copies of a phrase): the autoencoder did not win at every dimension, so PCA is the default
here and the cluster model (:mod:`cratedig.learn.clusters`) keeps its PCA.

References
----------
Hinton, G. E., Salakhutdinov, R. R. (2006). Reducing the dimensionality of data with neural
networks. Science 313(5786).
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.analysis.records import Segment
from cratedig.errors import ParameterError
from cratedig.fileio import atomic_path
from cratedig.library import repository as repo
from cratedig.library.db import Library
from cratedig.match.batch import RHYTHM_STEPS, SegmentBatch

log = logging.getLogger("cratedig.learn")

#: Bars of chroma in the features (phrases are 4 or 8 bars; shorter ones are zero-padded).
EMBED_BARS = 8
#: Length of a feature row: bars and mean chroma, rhythm, balance, energy.
FEATURE_DIM = 12 * (EMBED_BARS + 1) + RHYTHM_STEPS + 3 + 1
EMBED_FORMAT = 1
KINDS = ("pca", "autoencoder")


def _unit(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    n = np.linalg.norm(xc, axis=-1, keepdims=True)
    return np.where(n > 1e-6, xc / np.maximum(n, 1e-12), 0.0)


def embedding_features(batch: SegmentBatch) -> np.ndarray:
    """Transposition-normalised features of every segment -> (n, FEATURE_DIM) float64."""
    chroma, mask = batch.bar_chroma()
    n = len(batch)
    bars = np.zeros((n, EMBED_BARS, 12))
    take = min(EMBED_BARS, chroma.shape[1])
    bars[:, :take] = chroma[:, :take] * mask[:, :take, None]
    m = mask[..., None].astype(np.float64)
    mean = (chroma * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    key = np.asarray(batch.key_index, np.int64)
    # Minor keys on their relative major's tonic: the same notes sit on the same bins.
    tonic = np.where(key < 12, key, (key - 12 + 3) % 12)
    idx = (np.arange(12)[None, :] + tonic[:, None]) % 12  # row i, bin j <- bin j + tonic
    bars = np.take_along_axis(bars, np.broadcast_to(idx[:, None, :], bars.shape), axis=2)
    mean = np.take_along_axis(mean, idx, axis=1)
    blocks = _unit(np.concatenate([mean[:, None, :], bars], axis=1)).reshape(n, -1)
    return np.hstack(
        [
            blocks,
            np.asarray(batch.rhythm, np.float64).reshape(n, RHYTHM_STEPS),
            np.asarray(batch.balance, np.float64).reshape(n, 3),
            np.asarray(batch.energy, np.float64).reshape(n, 1),
        ]
    )


@dataclass
class Embedding:
    """Standardisation plus an encoder: ``z = f(... f(((x - mean) / scale) W0 + b0) ...)``.

    ``activation`` applies after every layer (``"identity"`` for PCA, ``"tanh"`` for the
    autoencoder, whose bottleneck is a tanh layer).
    """

    kind: str
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str = "identity"
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.weights[-1].shape[1])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Features (n, FEATURE_DIM) -> coordinates (n, dim)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ParameterError(f"features of shape {x.shape}: need (n, {len(self.mean)})")
        h = (x - self.mean) / self.scale
        for w, b in zip(self.weights, self.biases, strict=True):
            h = h @ w + b
            if self.activation == "tanh":
                h = np.tanh(h)
        return h

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as ``.npz`` (plain arrays, no pickle), atomically."""
        p = Path(path)
        arrays: dict[str, Any] = {
            "format": np.array(EMBED_FORMAT),
            "kind": np.array(self.kind),
            "activation": np.array(self.activation),
            "mean": self.mean,
            "scale": self.scale,
            "layers": np.array(len(self.weights)),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Embedding:
        """Read :meth:`save`'s file; ParameterError when it is not one, or of a newer format."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                fmt = int(z["format"])
                if fmt != EMBED_FORMAT:
                    raise ParameterError(f"{path}: embedding format {fmt}, need {EMBED_FORMAT}")
                kind, act = str(z["kind"]), str(z["activation"])
                layers = int(z["layers"])
                out = cls(
                    kind=kind,
                    mean=z["mean"].astype(np.float64),
                    scale=z["scale"].astype(np.float64),
                    weights=[z[f"w{i}"].astype(np.float64) for i in range(layers)],
                    biases=[z[f"b{i}"].astype(np.float64) for i in range(layers)],
                    activation=act,
                )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ParameterError(f"{path}: not a cratedig embedding ({exc})") from exc
        if kind not in KINDS or act not in ("identity", "tanh"):
            raise ParameterError(f"{path}: unknown embedding kind {kind!r} / {act!r}")
        return out


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ParameterError(f"features of shape {x.shape}: need at least two rows")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    return (x - mean) / scale, mean, scale


def fit_pca(x: np.ndarray, dim: int, *, seed: int = 0) -> Embedding:
    """Principal components of the standardised features, ``dim`` of them."""
    import time

    from sklearn.decomposition import PCA

    z, mean, scale = _standardise(x)
    if not 1 <= dim <= min(z.shape):
        raise ParameterError(f"dim={dim} must be within 1..{min(z.shape)}")
    t0, c0 = time.perf_counter(), time.process_time()
    pca = PCA(n_components=dim, random_state=seed).fit(z)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Embedding(
        "pca", mean, scale, [pca.components_.T.copy()], [-(pca.mean_ @ pca.components_.T)],
        metrics={"rows": len(z), "dim": dim, "train_seconds": round(seconds, 3),
                 "train_cpu_seconds": round(cpu, 3), "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)},
    )  # fmt: skip


def fit_autoencoder(
    x: np.ndarray,
    dim: int,
    *,
    hidden: int = 64,
    epochs: int = 60,
    batch_size: int = 256,
    alpha: float = 1e-4,
    seed: int = 0,
) -> Embedding:
    """Train an autoencoder ``FEATURE_DIM -> hidden -> dim -> hidden -> FEATURE_DIM`` (tanh).

    Parameters
    ----------
    x : np.ndarray [shape=(n, d)]
        :func:`embedding_features` rows.
    dim : int
        Bottleneck size: the embedding's dimension.
    hidden : int
        Width of the layers around the bottleneck.
    epochs : int
        Passes over the data (Adam; stops earlier when the loss stops improving).
    batch_size, alpha, seed
        Mini-batch size, L2 penalty, initialisation seed.
    """
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    z, mean, scale = _standardise(x)
    if dim < 1 or hidden < dim or epochs < 1:
        raise ParameterError(f"dim={dim} >= 1, hidden={hidden} >= dim, epochs={epochs} >= 1")
    net = MLPRegressor(
        hidden_layer_sizes=(hidden, dim, hidden),
        activation="tanh",
        solver="adam",
        alpha=alpha,
        batch_size=min(batch_size, len(z)),
        learning_rate_init=1e-3,
        max_iter=epochs,
        n_iter_no_change=10,
        tol=1e-5,
        random_state=seed,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(z, z)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    recon = net.predict(z)
    return Embedding(
        "autoencoder", mean, scale,
        [np.asarray(w, np.float64) for w in net.coefs_[:2]],
        [np.asarray(b, np.float64) for b in net.intercepts_[:2]],
        activation="tanh",
        metrics={"rows": len(z), "dim": dim, "hidden": hidden, "epochs": int(net.n_iter_),
                 "train_seconds": round(seconds, 3), "train_cpu_seconds": round(cpu, 3),
                 "reconstruction_r2": round(float(1.0 - np.mean((recon - z) ** 2)), 4)},
    )  # fmt: skip


def fit_embedding(x: np.ndarray, dim: int, *, kind: str = "pca", seed: int = 0) -> Embedding:
    """:func:`fit_pca` or :func:`fit_autoencoder` by ``kind``."""
    if kind == "pca":
        return fit_pca(x, dim, seed=seed)
    if kind == "autoencoder":
        return fit_autoencoder(x, dim, seed=seed)
    raise ParameterError(f"kind={kind!r} must be one of {KINDS}")


def nearest(
    coords: np.ndarray, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Rows of the ``k`` nearest ``coords`` (Euclidean) to each query -> (q, k).

    ``exclude`` (q, n) bool marks rows a query may not return (its own track).
    """
    c = np.asarray(coords, np.float64)
    q = np.asarray(queries, np.float64)
    d = (q**2).sum(axis=1)[:, None] - 2.0 * q @ c.T + (c**2).sum(axis=1)[None, :]
    if exclude is not None:
        d = np.where(exclude, np.inf, d)
    k = min(k, c.shape[0])
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


# ---------------------------------------------------------------------------------------------
# In a library: versioned in the models table, "sounds like" neighbours

#: Model kind of segment embeddings in the ``models`` table.
MODEL_KIND = "embedding"
#: Default embedding: PCA, since the autoencoder did not win at every dimension in
#: ``bench/embed.py`` (see bench/README.md).
DEFAULT_KIND = "pca"
DEFAULT_DIM = 16


def _current_segments(library: Library) -> list[Segment]:
    with library.reader() as s:
        return repo.load_segments(s, track_ids=repo.current_track_ids(s))


def train_embedding(
    library: Library, *, kind: str = DEFAULT_KIND, dim: int = DEFAULT_DIM, seed: int = 0
) -> dict[str, Any]:
    """Fit an embedding on the library's segments that pass the training gate; store it as a
    new version (``.npz`` beside the database, a row in ``models``) and make it active.

    Raises
    ------
    ParameterError
        Unknown ``kind``, or fewer segments than ``dim + 1``.
    """
    from cratedig.learn.gate import gate_segments

    if kind not in KINDS:
        raise ParameterError(f"kind={kind!r} must be one of {KINDS}")
    segments = _current_segments(library)
    with library.reader() as s:
        qualities = repo.track_qualities(s)
    training, gate = gate_segments(segments, qualities)
    if len(training) <= dim:
        raise ParameterError(
            f"{len(training)} segments pass the training gate: need more than dim={dim}"
        )
    model = fit_embedding(
        embedding_features(SegmentBatch.from_segments(training)), dim, kind=kind, seed=seed
    )
    metrics = {**model.metrics, "kind": kind, "gate": gate.to_json()}
    with library.transaction() as s:
        version = repo.store_model(
            s, kind=MODEL_KIND, parameters={"kind": kind, "dim": dim, "seed": seed},
            metrics=metrics, artefact=None,
        )  # fmt: skip
        path = model.save(library.artefact_dir / f"embedding-v{version}.npz")
        repo.set_model_artefact(s, MODEL_KIND, version, path.name)
        repo.activate_model(s, MODEL_KIND, version)
    return {"kind": MODEL_KIND, "version": version, "metrics": metrics}


def active_embedding(library: Library) -> Embedding | None:
    """The active embedding, or None (never trained, or its file unusable: one warning)."""
    with library.reader() as s:
        infos = repo.list_models(s, MODEL_KIND)
    active = next((m for m in reversed(infos) if m.parameters.get("active")), None)
    if active is None or active.artefact is None:
        return None
    try:
        return Embedding.load(library.artefact_dir / active.artefact)
    except ParameterError as exc:
        log.warning("embedding %s unusable (%s): retrain it", active.artefact, exc)
        return None


def similar_segments(library: Library, segment_id: str, *, top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` segments of other tracks that sound most like ``segment_id`` (nearest in the
    active embedding, whatever their key).

    Raises
    ------
    ParameterError
        No usable embedding (``cratedig train --embedding``), or an unknown segment.
    """
    if top < 1:
        raise ParameterError(f"top={top} must be >= 1")
    model = active_embedding(library)
    if model is None:
        raise ParameterError(
            "no segment embedding: train one with `cratedig train --embedding pca` (or autoencoder)"
        )
    segments = _current_segments(library)
    row = next((i for i, g in enumerate(segments) if g.id == segment_id), None)
    if row is None:
        raise ParameterError(f"segment {segment_id} is not in the library")
    coords = model.transform(embedding_features(SegmentBatch.from_segments(segments)))
    track = np.array([g.track_id for g in segments])
    found = nearest(coords, coords[[row]], top, exclude=(track == track[row])[None, :])[0]
    dist = np.linalg.norm(coords[found] - coords[row], axis=1)
    return [
        {"segment": segments[i].id, "track_id": segments[i].track_id, "label": segments[i].label,
         "camelot": segments[i].key.camelot, "bpm": round(segments[i].tempo, 2),
         "distance": round(float(d), 4)}
        for i, d in zip(found, dist, strict=True)
        if np.isfinite(d) and segments[i].track_id != track[row]
    ]  # fmt: skip
