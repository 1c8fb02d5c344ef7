"""The FAISS index returns exactly what brute force returns; persistence and updates."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.match.batch import SegmentBatch
from cratedig.match.index import (
    BruteForceIndex,
    SegmentIndex,
    build_index,
    segment_vectors,
)
from cratedig.match.scoring import tempo_fit

from .features import random_batch


@pytest.fixture
def batch(rng) -> SegmentBatch:
    return random_batch(rng, 600, tracks=60)


def _same(a, b):
    assert len(a) == len(b)
    for ha, hb in zip(a, b, strict=True):
        assert list(ha.ids) == list(hb.ids)
        np.testing.assert_allclose(ha.similarity, hb.similarity, atol=1e-5)
        assert list(ha.semitones) == list(hb.semitones)


@pytest.mark.parametrize(
    ("max_shift", "max_stretch", "k"), [(3, 0.08, 10), (0, 0.04, 5), (6, 0.2, 40)]
)
@pytest.mark.parametrize("kind", ["sorted", "faiss"])
def test_index_returns_what_brute_force_returns(batch, max_shift, max_stretch, k, kind):
    queries = batch.take(np.arange(0, 600, 37))
    kw = {"k": k, "max_shift": max_shift, "max_stretch": max_stretch}
    _same(
        build_index(batch, kind=kind).search(queries, **kw),
        build_index(batch, kind="numpy").search(queries, **kw),
    )


def test_hits_obey_tempo_and_own_track_rules(batch):
    queries = batch.take(np.arange(0, 600, 50))
    for q, hits in enumerate(build_index(batch).search(queries, k=20)):
        assert len(hits) == 20
        assert not set(batch.track_ids[hits.rows]) & {queries.track_ids[q]}
        assert tempo_fit(float(queries.tempo[q]), batch.tempo[hits.rows])[3].all()
        assert np.all(np.diff(hits.similarity) <= 1e-6)


def test_own_track_only_when_asked(batch):
    q = batch.take([7])
    hits = build_index(batch).search(q, k=3, include_own_track=True)[0]
    assert hits.ids[0] == batch.ids[7]
    assert hits.similarity[0] == pytest.approx(1.0, abs=1e-5)


def test_a_transposed_copy_is_found_with_the_undoing_shift(batch):
    copy = batch.take([3])
    copy.chroma = np.roll(copy.chroma, 2, axis=2)
    copy.ids = np.array(["copy_0"], dtype=object)
    copy.track_ids = np.array(["copy"], dtype=object)
    for kind in ("sorted", "faiss", "numpy"):
        index = build_index(SegmentBatch.concat([batch, copy]), kind=kind)
        hits = index.search(batch.take([3]), k=1)[0]
        assert hits.ids[0] == "copy_0"
        assert hits.semitones[0] == -2
        assert hits.similarity[0] == pytest.approx(1.0, abs=1e-5)


def test_deep_fetch_when_the_own_track_crowds_the_top(rng, batch):
    # 300 near-copies of the query on its own track: all must be skipped, results still exact.
    own = batch.take(np.zeros(300, dtype=np.int64))
    own.ids = np.array([f"{batch.track_ids[0]}_x{i}" for i in range(300)], dtype=object)
    own.chroma = own.chroma + rng.random(own.chroma.shape).astype(np.float32) * 0.01
    data = SegmentBatch.concat([batch, own])
    q = batch.take([0])
    expected = build_index(data, kind="numpy").search(q, k=15)
    _same(build_index(data).search(q, k=15), expected)
    _same(build_index(data, kind="faiss").search(q, k=15), expected)


def test_incremental_add_and_remove_match_a_rebuild(batch, tmp_path):
    index = SegmentIndex()
    for lo in range(0, 600, 150):
        index.add(batch.take(slice(lo, lo + 150)))
    gone = {"trk001", "trk017"}
    assert index.remove_tracks(gone) == 20
    keep = ~np.isin(batch.track_ids.astype(str), list(gone))
    rebuilt = build_index(batch.take(keep), kind="numpy")
    queries = batch.take(np.arange(0, 600, 41))
    _same(index.search(queries, k=12), rebuilt.search(queries, k=12))
    assert list(index.ids) == list(batch.ids[keep])
    np.testing.assert_allclose(index.vectors(), rebuilt.vectors(), atol=1e-6)


@pytest.mark.parametrize("cls", [SegmentIndex, BruteForceIndex])
def test_save_and_load_round_trip(batch, tmp_path, cls):
    index = cls()
    index.add(batch)
    path = index.save(tmp_path / "segments.index.npz")
    again = cls.load(path)
    queries = batch.take([1, 2, 3])
    _same(index.search(queries, k=8), again.search(queries, k=8))
    # Either kind reads the other's file.
    other = (BruteForceIndex if cls is SegmentIndex else SegmentIndex).load(path)
    _same(index.search(queries, k=8), other.search(queries, k=8))


def test_duplicate_ids_are_refused(batch):
    index = build_index(batch.take([0, 1]))
    with pytest.raises(ParameterError):
        index.add(batch.take([1]))


def test_vectors_encode_chroma_correlation(batch):
    v = segment_vectors(batch)
    assert v.shape == (600, 12 * 9) and v.dtype == np.float32
    np.testing.assert_allclose(np.einsum("nd,nd->n", v, v), 1.0, atol=1e-5)


def test_tempo_runs_are_exactly_the_allowed_tempos(batch):
    index = SegmentIndex()
    index.add(batch)
    index.merge()
    for tempo in (61.0, 90.0, 127.9, 174.0):
        for stretch in (0.0, 0.04, 0.08, 0.2):
            inside = np.zeros(len(batch), bool)
            for lo, hi in index._runs(tempo, stretch):
                inside[index._order[lo:hi]] = True
            allowed = tempo_fit(tempo, batch.tempo, max_stretch=stretch)[3]
            np.testing.assert_array_equal(inside, allowed)


@pytest.mark.parametrize("buffer_max", [0, 100, 10_000])
def test_buffered_and_merged_rows_search_alike(batch, buffer_max):
    index = SegmentIndex(buffer_max=buffer_max)
    for lo in range(0, 600, 70):
        index.add(batch.take(slice(lo, lo + 70)))
    queries = batch.take(np.arange(0, 600, 53))
    _same(index.search(queries, k=10), build_index(batch, kind="numpy").search(queries, k=10))
