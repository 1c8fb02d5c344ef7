"""Segment embeddings: transposition-normalised features, PCA and autoencoder, safe files."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.learn.embed import (
    EMBED_FORMAT,
    FEATURE_DIM,
    Embedding,
    embedding_features,
    fit_autoencoder,
    fit_pca,
    nearest,
)
from cratedig.learn.feedback import synthetic_segments
from cratedig.match.batch import SegmentBatch


def transposed(segment, semitones):
    """The same phrase played ``semitones`` higher: chroma rolled, key moved."""
    s = copy.deepcopy(segment)
    s.id, s.track_id = s.id + "x", s.track_id + "x"
    s.features.chroma = np.roll(s.features.chroma, semitones, axis=1)
    s.features.beat_chroma = np.roll(s.features.beat_chroma, semitones, axis=1)
    s.key = s.key.transpose(semitones)
    return s


@pytest.fixture(scope="module")
def segments():
    return synthetic_segments(60, phrases=4, bars=8, seed=11)


def test_features_do_not_change_when_a_phrase_is_transposed(segments):
    a = segments[:12]
    b = [transposed(s, k) for s, k in zip(a, [1, 5, -3, 7, 2, -5] * 2, strict=True)]
    fa = embedding_features(SegmentBatch.from_segments(a))
    fb = embedding_features(SegmentBatch.from_segments(b))
    assert fa.shape == (12, FEATURE_DIM)
    np.testing.assert_allclose(fa, fb, atol=1e-6)
    # ...but they do see the harmony: two different tracks' phrases differ.
    assert np.abs(fa[0] - fa[4]).max() > 0.1


@pytest.mark.parametrize("fit", [fit_pca, fit_autoencoder])
def test_an_embedding_finds_a_transposed_copy_and_round_trips_without_pickle(
    segments, fit, tmp_path
):
    train = segments[:160]
    held = segments[160:]
    copies = [transposed(s, 3) for s in held]
    x = embedding_features(SegmentBatch.from_segments(train))
    model = fit(x, 8)
    assert model.dim == 8 and model.metrics["train_seconds"] >= 0
    every = held + copies
    coords = model.transform(embedding_features(SegmentBatch.from_segments(every)))
    q = np.arange(len(held), len(every))
    track = np.array([s.track_id for s in every])
    hit = nearest(coords, coords[q], 1, exclude=track[q][:, None] == track[None, :])[:, 0]
    assert np.mean(hit == q - len(held)) >= 0.9  # the untransposed original comes first
    path = model.save(tmp_path / "e.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert int(z["format"]) == EMBED_FORMAT
    again = Embedding.load(path)
    np.testing.assert_allclose(again.transform(x[:5]), model.transform(x[:5]))


def test_a_garbled_or_newer_embedding_file_is_refused(tmp_path, segments):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x80\x04\x95 a pickle is not an embedding")
    with pytest.raises(ParameterError, match="not a cratedig embedding"):
        Embedding.load(bad)
    model = fit_pca(embedding_features(SegmentBatch.from_segments(segments[:40])), 4)
    path = model.save(tmp_path / "e.npz")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["format"] = np.array(EMBED_FORMAT + 1)
    np.savez(tmp_path / "newer.npz", **arrays)
    with pytest.raises(ParameterError, match="format"):
        Embedding.load(tmp_path / "newer.npz")
    with pytest.raises(ParameterError, match="shape"):
        model.transform(np.zeros((2, 5)))
