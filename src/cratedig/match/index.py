"""Candidate retrieval: segment vectors searched under every allowed pitch rotation.

Each segment becomes one vector of pitch-class blocks (:func:`segment_vectors`): its mean chroma
and its first ``bars`` bars of chroma, each block centred and unit-normed and weighted so that
the inner product of two vectors is a blend of their mean-chroma correlation and their
bar-by-bar correlation (the exact harmonic term of :mod:`cratedig.match.scoring` approximated
on 1:1 bars). A pitch shift of a candidate by ``s`` semitones equals rotating the query's
blocks by ``-s``, so a query is searched once per allowed shift and each hit keeps its best one.

Two interchangeable indexes return the same hits:

- :class:`SegmentIndex` (FAISS): vectors kept sorted by tempo, so the tempo pre-filter is
  three contiguous runs (ratios 1:1, 2:1, 1:2 within ``max_stretch``), each searched with
  ``faiss.knn``; new segments wait in a small buffer until merged.
- :class:`BruteForceIndex` (numpy): every vector, chunked matrix products.

Both persist to one ``.npz`` file (vectors in insertion order plus ids, track ids, tempos) and
load back; the sorted store is rebuilt on load (a sort and a copy: flat vectors need no
training).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.errors import ParameterError
from cratedig.fileio import atomic_path
from cratedig.match.batch import SegmentBatch
from cratedig.match.scoring import DEFAULT_MAX_SHIFT, DEFAULT_MAX_STRETCH, _shifts, tempo_fit
from cratedig.theory import TEMPO_RATIOS

#: Bars of chroma in a segment vector (phrases are 4, 8 or 16 bars; their first 8 bars carry
#: the progression). Vector dimension is 12 * (1 + VECTOR_BARS).
VECTOR_BARS = 8
#: Share of the similarity given to the mean-chroma block (the rest to the bar blocks). The
#: mean block also serves half/double-time candidates, whose bars do not line up 1:1.
MEAN_WEIGHT = 0.4
INDEX_FORMAT = 1
#: Segments turned into vectors at a time: bounds the temporaries (a beat-level batch of 1 M
#: segments is 1.5 GB of chroma; unchunked, averaging it to bars costs two more copies).
VECTOR_CHUNK = 1 << 16


def segment_vectors(batch: SegmentBatch, *, bars: int = VECTOR_BARS) -> np.ndarray:
    """Retrieval vectors of a batch -> (n, 12 * (1 + bars)) float32.

    Parameters
    ----------
    batch : SegmentBatch
    bars : int >= 0
        Bar blocks after the mean-chroma block.

    Returns
    -------
    np.ndarray [shape=(n, 12 * (1 + bars)), dtype=float32]
        ``v_a . v_b = MEAN_WEIGHT * r(mean_a, mean_b) + (1 - MEAN_WEIGHT) * mean_i r(a_i, b_i)``
        where ``r`` is the Pearson correlation of two 12-bin chroma vectors (0 for silent bars).
    """
    if bars < 0:
        raise ParameterError(f"bars={bars} must be >= 0")
    n = len(batch)
    if n > VECTOR_CHUNK:
        out = np.empty((n, 12 * (1 + bars)), np.float32)
        for lo in range(0, n, VECTOR_CHUNK):
            part = batch.take(slice(lo, min(lo + VECTOR_CHUNK, n)))
            out[lo : lo + len(part)] = segment_vectors(part, bars=bars)
        return out
    bar_chroma, bar_mask = batch.bar_chroma()
    chroma = bar_chroma.astype(np.float32)
    m = bar_mask[..., None].astype(np.float32)
    mean = (chroma * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    blocks = np.zeros((n, 1 + bars, 12), np.float32)
    blocks[:, 0] = mean
    take = min(bars, chroma.shape[1])
    blocks[:, 1 : 1 + take] = chroma[:, :take] * m[:, :take]
    blocks -= blocks.mean(axis=2, keepdims=True)
    norm = np.linalg.norm(blocks, axis=2, keepdims=True)
    blocks = np.where(norm > 1e-6, blocks / np.maximum(norm, 1e-12), 0.0)
    weight = np.full(1 + bars, math.sqrt((1.0 - MEAN_WEIGHT) / bars) if bars else 0.0)
    weight[0] = math.sqrt(MEAN_WEIGHT) if bars else 1.0
    blocks *= weight[None, :, None].astype(np.float32)
    return np.ascontiguousarray(blocks.reshape(n, -1), dtype=np.float32)


def rotate_vectors(vectors: np.ndarray, semitones: int) -> np.ndarray:
    """Rotate every 12-bin block: the query side of shifting candidates by ``-semitones``."""
    v = vectors.reshape(len(vectors), -1, 12)
    return np.ascontiguousarray(np.roll(v, semitones, axis=2).reshape(vectors.shape))


@dataclass
class Hits:
    """Candidates retrieved for one query segment, best first.

    Attributes
    ----------
    rows : np.ndarray [shape=(k,), dtype=int64]
        Positions in the index (insertion order, compacted after removals).
    ids : np.ndarray [shape=(k,), dtype=object]
        Segment ids.
    similarity : np.ndarray [shape=(k,), dtype=float32]
        Vector inner product under the best rotation.
    semitones : np.ndarray [shape=(k,), dtype=int64]
        The candidate shift of that rotation.
    """

    rows: np.ndarray
    ids: np.ndarray
    similarity: np.ndarray
    semitones: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class _IndexBase:
    """Ids, track ids and tempos in insertion order; the shared query rules."""

    kind = "base"

    def __init__(self, *, bars: int = VECTOR_BARS) -> None:
        self.bars = bars
        self.dim = 12 * (1 + bars)
        self.ids = np.zeros(0, dtype=object)
        self.track_ids = np.zeros(0, dtype=object)
        self.tempo = np.zeros(0, np.float64)
        self._track_code = np.zeros(0, np.int64)
        self._codes: dict[str, int] = {}
        #: Free-form ``track id -> version stamp`` saved with the index: what the library store
        #: (:mod:`cratedig.match.store`) compares with the database to update it incrementally.
        self.stamps: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _codes_of(self, track_ids: Iterable[Any]) -> np.ndarray:
        out = []
        for t in track_ids:
            out.append(self._codes.setdefault(str(t), len(self._codes)))
        return np.array(out, np.int64)

    def add(self, batch: SegmentBatch) -> None:
        """Append a batch's segments (ingest calls this per analysed track)."""
        if len(batch) == 0:
            return
        dup = np.intersect1d(batch.ids.astype(str), self.ids.astype(str))
        if len(dup):
            raise ParameterError(f"{len(dup)} segment ids already indexed, e.g. {dup[0]!r}")
        first_row = len(self)
        self.ids = np.concatenate([self.ids, batch.ids.astype(object)])
        self.track_ids = np.concatenate([self.track_ids, batch.track_ids.astype(object)])
        self.tempo = np.concatenate([self.tempo, batch.tempo.astype(np.float64)])
        self._track_code = np.concatenate([self._track_code, self._codes_of(batch.track_ids)])
        self._add_vectors(segment_vectors(batch, bars=self.bars), first_row)

    def remove_tracks(self, track_ids: Iterable[str]) -> int:
        """Drop every segment of ``track_ids`` (before re-ingesting them); returns how many."""
        names = [str(t) for t in track_ids]
        for t in names:
            self.stamps.pop(t, None)
        gone = np.isin(self.track_ids.astype(str), names)
        if not gone.any():
            return 0
        keep = ~gone
        self._keep_vectors(keep)
        self.ids, self.track_ids = self.ids[keep], self.track_ids[keep]
        self.tempo, self._track_code = self.tempo[keep], self._track_code[keep]
        return int(gone.sum())

    def _add_vectors(self, vectors: np.ndarray, first_row: int) -> None:
        """Store vectors of rows ``first_row..``; their metadata is already in place."""
        raise NotImplementedError

    def _keep_vectors(self, keep: np.ndarray) -> None:
        raise NotImplementedError

    def vectors(self) -> np.ndarray:
        """All vectors in row order -> (n, dim)."""
        raise NotImplementedError

    def _allowed(
        self, rows: np.ndarray, tempo: float, track_code: int, max_stretch: float
    ) -> np.ndarray:
        ok = tempo_fit(tempo, self.tempo[rows], max_stretch=max_stretch)[3]
        return ok & (self._track_code[rows] != track_code)

    def _query_codes(self, queries: SegmentBatch, include_own_track: bool) -> np.ndarray:
        if include_own_track:
            return np.full(len(queries), -1, np.int64)
        return np.array([self._codes.get(str(t), -1) for t in queries.track_ids], np.int64)

    # -- search -------------------------------------------------------------------------------
    def search(
        self,
        queries: SegmentBatch,
        *,
        k: int = 100,
        max_shift: int = DEFAULT_MAX_SHIFT,
        max_stretch: float = DEFAULT_MAX_STRETCH,
        include_own_track: bool = False,
    ) -> list[Hits]:
        """The ``k`` most similar allowed segments for each query segment.

        Parameters
        ----------
        queries : SegmentBatch
        k : int > 0
        max_shift : int in 0..6
            Rotations tried: every shift in ``-max_shift..max_shift``.
        max_stretch : float >= 0
            Candidates whose tempo reaches no query tempo ratio within it are never returned.
        include_own_track : bool
            Return segments of the query's own track too (default: never).

        Returns
        -------
        list of Hits
            One per query segment, similarity descending.
        """
        if k <= 0:
            raise ParameterError(f"k={k} must be > 0")
        if not 0 <= max_shift <= 6:
            raise ParameterError(f"max_shift={max_shift} must be within 0..6 semitones")
        shifts = _shifts(max_shift)
        qv = segment_vectors(queries, bars=self.bars)
        # rotated[q, j] = query q rotated for candidate shift shifts[j]
        rotated = np.stack([rotate_vectors(qv, -int(s)) for s in shifts], axis=1)
        codes = self._query_codes(queries, include_own_track)
        found = self._search(rotated, queries.tempo, codes, k, max_stretch)
        out = []
        for rows, sims, which in found:
            out.append(
                Hits(
                    rows=rows,
                    ids=self.ids[rows],
                    similarity=sims.astype(np.float32),
                    semitones=shifts[which],
                )
            )
        return out

    def _search(
        self,
        rotated: np.ndarray,
        tempi: np.ndarray,
        codes: np.ndarray,
        k: int,
        max_stretch: float,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        raise NotImplementedError

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to ``path`` (``.npz``) atomically; returns the path."""
        p = Path(path)
        with atomic_path(p) as tmp:
            np.savez(
                tmp,
                format=np.array(INDEX_FORMAT),
                bars=np.array(self.bars),
                vectors=self.vectors(),
                ids=self.ids.astype(str),
                track_ids=self.track_ids.astype(str),
                tempo=self.tempo,
                stamp_tracks=np.array(list(self.stamps), dtype=str),
                stamp_values=np.array(list(self.stamps.values()), dtype=str),
            )
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Read an index written by :meth:`save` (by either kind)."""
        with np.load(Path(path), allow_pickle=False) as z:
            if int(z["format"]) != INDEX_FORMAT:
                raise ParameterError(
                    f"{path}: index format {int(z['format'])}, need {INDEX_FORMAT}"
                )
            index = cls(bars=int(z["bars"]))
            vectors = z["vectors"].astype(np.float32)
            index.ids = z["ids"].astype(object)
            index.track_ids = z["track_ids"].astype(object)
            index.tempo = z["tempo"].astype(np.float64)
            if "stamp_tracks" in z:
                index.stamps = dict(
                    zip(z["stamp_tracks"].tolist(), z["stamp_values"].tolist(), strict=True)
                )
        index._track_code = index._codes_of(index.track_ids)
        index._add_vectors(vectors, 0)
        return index


def _top_unique(
    rows: np.ndarray, sims: np.ndarray, which: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best ``k`` distinct rows by similarity (each row keeps its best rotation)."""
    order = np.lexsort((rows, -sims))
    rows, sims, which = rows[order], sims[order], which[order]
    _, first = np.unique(rows, return_index=True)
    first = np.sort(first)[:k]
    return rows[first], sims[first], which[first]


class BruteForceIndex(_IndexBase):
    """Every vector scored with numpy matrix products; the reference for :class:`SegmentIndex`.

    Examples
    --------
    >>> index = BruteForceIndex()
    >>> index.add(batch)  # doctest: +SKIP
    >>> hits = index.search(batch.take([0]), k=10)  # doctest: +SKIP
    """

    kind = "numpy"
    CHUNK = 1 << 16

    def __init__(self, *, bars: int = VECTOR_BARS) -> None:
        super().__init__(bars=bars)
        self._vectors = np.zeros((0, self.dim), np.float32)

    def _add_vectors(self, vectors: np.ndarray, first_row: int) -> None:
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32)])

    def _keep_vectors(self, keep: np.ndarray) -> None:
        self._vectors = self._vectors[keep]

    def vectors(self) -> np.ndarray:
        return self._vectors

    def _search(
        self,
        rotated: np.ndarray,
        tempi: np.ndarray,
        codes: np.ndarray,
        k: int,
        max_stretch: float,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        nq, ns, d = rotated.shape
        flat = rotated.reshape(nq * ns, d)
        best: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
        ] * nq
        for lo in range(0, len(self), self.CHUNK):
            hi = min(lo + self.CHUNK, len(self))
            sims = (self._vectors[lo:hi] @ flat.T).reshape(hi - lo, nq, ns)
            which = np.argmax(sims, axis=2)
            top = np.take_along_axis(sims, which[..., None], axis=2)[..., 0]  # (chunk, nq)
            rows = np.arange(lo, hi)
            for q in range(nq):
                ok = self._allowed(rows, float(tempi[q]), int(codes[q]), max_stretch)
                s = np.where(ok, top[:, q], -np.inf)
                m = min(k, int(ok.sum()))
                if m == 0:
                    continue
                part = np.argpartition(-s, m - 1)[:m]
                r0, s0, w0 = best[q]
                best[q] = _top_unique(
                    np.concatenate([r0, rows[part]]),
                    np.concatenate([s0, s[part].astype(np.float32)]),
                    np.concatenate([w0, which[part, q]]),
                    k,
                )
        return best


class SegmentIndex(_IndexBase):
    """Exact inner-product search over vectors kept sorted by tempo.

    Every tempo a query accepts (ratios 1:1, 2:1, 1:2 within ``max_stretch``) forms up to three
    contiguous runs of the tempo-sorted vectors, so the pre-filter is exact and costs two
    binary searches per ratio. Each run is scanned once for all rotated query vectors of the
    song (phrases share a tempo): ``engine="numpy"`` takes the best rotation per row and an
    ``argpartition`` per query, masking the query's own track; ``engine="faiss"`` runs
    ``faiss.knn`` per rotation, over-fetching by the own track's segment count. Both are exact.
    Segments added since the last merge sit in a small unsorted buffer searched exhaustively;
    the buffer is merged into the sorted store when it outgrows ``buffer_max`` rows (an
    LSM-style incremental update).

    Why not a FAISS index type: with ~100 query vectors of 108 dimensions, one BLAS product
    over the allowed tempo run is the whole cost, and ``bench/match_latency.py`` measures
    FAISS's flat ``knn`` (per-rotation top-k heaps) several times slower than the numpy scan on
    2 cores. An approximate FAISS index (IVF, HNSW) would pay only beyond ~10 M segments.

    Parameters
    ----------
    bars : int
        Bar blocks per vector (:data:`VECTOR_BARS`).
    buffer_max : int
        Rows the unsorted buffer may hold before a merge.
    engine : {"numpy", "faiss"}
        What scans a run.

    Examples
    --------
    >>> index = SegmentIndex()
    >>> index.add(batch)  # doctest: +SKIP
    >>> index.save(db_dir / "segments.index.npz")  # doctest: +SKIP
    >>> hits = SegmentIndex.load(db_dir / "segments.index.npz").search(query, k=50)  # doctest: +SKIP
    """

    kind = "sorted"
    CHUNK = 1 << 15

    def __init__(
        self, *, bars: int = VECTOR_BARS, buffer_max: int = 50_000, engine: str = "numpy"
    ) -> None:
        super().__init__(bars=bars)
        if engine not in ("numpy", "faiss"):
            raise ParameterError(f"engine={engine!r} must be 'numpy' or 'faiss'")
        self.engine = engine
        if engine == "faiss":
            import faiss  # lazy: only this engine needs it

            self._faiss = faiss
            # FAISS 1.8+ uses BLAS only from 128k queries on; a song's ~100 rotated phrase
            # vectors are far faster as matrix products.
            faiss.cvar.distance_compute_blas_threshold = 16
        self.buffer_max = buffer_max
        self._order = np.zeros(0, np.int64)  # rows of the sorted store, by tempo
        self._sorted_tempo = np.zeros(0, np.float64)
        self._sorted = np.zeros((0, self.dim), np.float32)
        self._buffer_rows = np.zeros(0, np.int64)
        self._buffer = np.zeros((0, self.dim), np.float32)

    def _add_vectors(self, vectors: np.ndarray, first_row: int) -> None:
        rows = np.arange(first_row, first_row + len(vectors))
        self._buffer_rows = np.concatenate([self._buffer_rows, rows])
        self._buffer = np.concatenate([self._buffer, vectors.astype(np.float32)])
        if len(self._buffer_rows) > self.buffer_max:
            self.merge()

    def merge(self) -> None:
        """Sort the buffer into the store (done automatically; call it to finish an ingest)."""
        if not len(self._buffer_rows):
            return
        rows = np.concatenate([self._order, self._buffer_rows])
        vectors = np.concatenate([self._sorted, self._buffer])
        order = np.argsort(self.tempo[rows], kind="stable")
        self._order = rows[order]
        self._sorted = np.ascontiguousarray(vectors[order])
        self._sorted_tempo = self.tempo[self._order]
        self._buffer_rows = np.zeros(0, np.int64)
        self._buffer = np.zeros((0, self.dim), np.float32)

    def _keep_vectors(self, keep: np.ndarray) -> None:
        new_row = np.cumsum(keep) - 1
        k_sorted = keep[self._order]
        self._order = new_row[self._order[k_sorted]]
        self._sorted = np.ascontiguousarray(self._sorted[k_sorted])
        self._sorted_tempo = self._sorted_tempo[k_sorted]
        k_buf = keep[self._buffer_rows]
        self._buffer_rows = new_row[self._buffer_rows[k_buf]]
        self._buffer = self._buffer[k_buf]

    def vectors(self) -> np.ndarray:
        out = np.zeros((len(self), self.dim), np.float32)
        out[self._order] = self._sorted
        out[self._buffer_rows] = self._buffer
        return out

    def _runs(self, tempo: float, max_stretch: float) -> list[tuple[int, int]]:
        """Sorted-store slices whose tempos reach ``tempo`` under some ratio."""
        runs = []
        for ratio in TEMPO_RATIOS:
            lo_bpm = tempo / (ratio * (1.0 + max_stretch))
            hi_bpm = tempo / (ratio * max(1.0 - max_stretch, 1e-9))
            lo = int(np.searchsorted(self._sorted_tempo, lo_bpm * (1 - 1e-9), side="left"))
            hi = int(np.searchsorted(self._sorted_tempo, hi_bpm * (1 + 1e-9), side="right"))
            if hi > lo:
                runs.append((lo, hi))
        return runs

    def _search(
        self,
        rotated: np.ndarray,
        tempi: np.ndarray,
        codes: np.ndarray,
        k: int,
        max_stretch: float,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        nq, ns, d = rotated.shape
        parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(nq)]
        # Queries at one tempo share their runs: one scan per run for all of them.
        groups: dict[float, list[int]] = {}
        for q in range(nq):
            groups.setdefault(float(tempi[q]), []).append(q)
        for tempo, qs in groups.items():
            x = np.ascontiguousarray(rotated[qs].reshape(len(qs) * ns, d))
            for lo, hi in self._runs(tempo, max_stretch):
                scan = self._scan_faiss if self.engine == "faiss" else self._scan_numpy
                for j, part in enumerate(scan(lo, hi, x, ns, codes[qs], k)):
                    parts[qs[j]].append(part)
        if len(self._buffer_rows):
            sims_b = (self._buffer @ rotated.reshape(nq * ns, d).T).reshape(-1, nq, ns)
            for q in range(nq):
                ok = self._allowed(self._buffer_rows, float(tempi[q]), int(codes[q]), max_stretch)
                best = np.argmax(sims_b[:, q, :], axis=1)
                top = sims_b[np.arange(len(best)), q, best]
                parts[q].append((self._buffer_rows[ok], top[ok], best[ok]))
        out = []
        for q in range(nq):
            if parts[q]:
                rows, sims, which_q = (np.concatenate(x) for x in zip(*parts[q], strict=True))
                out.append(_top_unique(rows, sims, which_q, k))
            else:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)))
        return out

    def _scan_numpy(
        self, lo: int, hi: int, x: np.ndarray, ns: int, qcodes: np.ndarray, k: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Top ``k`` rows of ``sorted[lo:hi]`` per query by best rotation, own track masked."""
        nq = len(qcodes)
        found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(nq)]
        for c0 in range(lo, hi, self.CHUNK):
            c1 = min(c0 + self.CHUNK, hi)
            sims = (self._sorted[c0:c1] @ x.T).reshape(c1 - c0, nq, ns)
            which = np.argmax(sims, axis=2)
            best = np.take_along_axis(sims, which[..., None], axis=2)[..., 0].T  # (nq, c)
            chunk_codes = self._track_code[self._order[c0:c1]]
            best[qcodes[:, None] == chunk_codes[None, :]] = -np.inf
            m = min(k, c1 - c0)
            part = np.argpartition(-best, m - 1, axis=1)[:, :m]
            for q in range(nq):
                p = part[q][np.isfinite(best[q, part[q]])]
                found[q].append((self._order[c0 + p], best[q, p], which[p, q]))
        return [
            tuple(np.concatenate(x) for x in zip(*f, strict=True))  # type: ignore[misc]
            for f in found
        ]

    def _scan_faiss(
        self, lo: int, hi: int, x: np.ndarray, ns: int, qcodes: np.ndarray, k: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Same as :meth:`_scan_numpy` with ``faiss.knn`` per rotation (over-fetching by the
        query track's own segment count, then dropping them)."""
        nq = len(qcodes)
        extra = max(
            (int(np.sum(self._track_code == c)) for c in set(qcodes.tolist()) if c >= 0),
            default=0,
        )
        fetch = min(hi - lo, k + extra)
        sims, local = self._faiss.knn(
            x, self._sorted[lo:hi], fetch, metric=self._faiss.METRIC_INNER_PRODUCT
        )
        sims = sims.reshape(nq, ns, fetch)
        local = local.reshape(nq, ns, fetch)
        which = np.broadcast_to(np.arange(ns)[:, None], (ns, fetch))
        out = []
        for j in range(nq):
            rows = self._order[lo + np.maximum(local[j], 0)]
            ok = (local[j] >= 0) & (self._track_code[rows] != qcodes[j])
            out.append((rows[ok], sims[j][ok], which[ok]))
        return out


def build_index(batch: SegmentBatch, *, kind: str = "sorted", bars: int = VECTOR_BARS) -> Any:
    """An index holding ``batch``: ``"sorted"`` (:class:`SegmentIndex`, numpy scan, the
    default), ``"faiss"`` (:class:`SegmentIndex` with the FAISS scan) or ``"numpy"``
    (:class:`BruteForceIndex`, the reference)."""
    index: _IndexBase
    if kind in ("sorted", "faiss"):
        index = SegmentIndex(bars=bars, engine="numpy" if kind == "sorted" else "faiss")
    elif kind == "numpy":
        index = BruteForceIndex(bars=bars)
    else:
        raise ParameterError(f"kind={kind!r} must be 'sorted', 'faiss' or 'numpy'")
    index.add(batch)
    return index
