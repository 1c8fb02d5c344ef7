"""Storing and loading analyses, queries and the tables later stages use (both backends)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import func, select

from cratedig.analysis.pipeline import analyze_file
from cratedig.errors import ParameterError
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.schema import FeatureRow, ModelRow, RatingRow, SegmentRow, TrackRow


@pytest.fixture(scope="module")
def analyses(track_files):
    return [analyze_file(track_files / n) for n in ("a/one.wav", "a/two.flac", "b/three.ogg")]


def _store(lib, analysis, path=None):
    with lib.transaction() as s:
        repo.store_analysis(s, analysis)
        repo.record_file(
            s, path=path or analysis.path, track_id=analysis.track_id, size=1, mtime_ns=1
        )


def test_an_analysis_round_trips(db_url, analyses):
    a = analyses[1]
    with open_library(db_url) as lib:
        _store(lib, a)
        with lib.reader() as s:
            b = repo.load_analysis(s, a.track_id)
    assert b is not None
    assert (b.track_id, b.path, b.format, b.sample_rate, b.channels) == (
        a.track_id,
        a.path,
        a.format,
        a.sample_rate,
        a.channels,
    )
    assert b.key == a.key and b.time_signature == a.time_signature
    assert b.tempo == pytest.approx(a.tempo) and b.duration == pytest.approx(a.duration)
    # float32 storage: times within a microsecond-ish of the originals.
    np.testing.assert_allclose(b.beats, a.beats, atol=1e-4)
    np.testing.assert_allclose(b.downbeats, a.downbeats, atol=1e-4)
    assert [s.to_json() for s in b.sections] == [s.to_json() for s in a.sections]
    assert b.estimates == a.estimates and set(a.estimates) == {"tempo", "meter", "downbeat", "key"}
    assert len(b.segments) == len(a.segments) > 0
    for x, y in zip(a.segments, b.segments, strict=True):
        assert x.to_json() == y.to_json()
        np.testing.assert_allclose(y.features.chroma, x.features.chroma, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(y.features.rhythm, x.features.rhythm, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(
            y.features.spectral_balance, x.features.spectral_balance, rtol=1e-6, atol=1e-7
        )
        assert y.features.chroma.shape == (x.bars, 12)


def test_storing_again_replaces_segments_without_duplicates(db_url, analyses):
    a = analyses[0]
    fewer = replace(a, segments=a.segments[:1], analysis_version=a.analysis_version + 1)
    with open_library(db_url) as lib:
        _store(lib, a)
        _store(lib, a)
        _store(lib, fewer)
        with lib.reader() as s:
            assert s.scalar(select(func.count()).select_from(TrackRow)) == 1
            assert s.scalar(select(func.count()).select_from(SegmentRow)) == 1
            assert s.scalar(select(func.count()).select_from(FeatureRow)) == 1
            assert s.get(TrackRow, a.track_id).analysis_version == a.analysis_version + 1
            assert repo.track_paths(s, a.track_id) == [a.path]


def test_feature_matrices_load_in_one_query(db_url, analyses):
    with open_library(db_url) as lib:
        for a in analyses:
            _store(lib, a)
        with lib.reader() as s:
            table = repo.load_features(s)
            one = repo.load_features(s, [analyses[0].track_id])
    n = sum(len(a.segments) for a in analyses)
    assert len(table.segment_ids) == n and table.spectral_balance.shape == (n, 3)
    assert all(c.shape[1] == 12 for c in table.chroma)
    assert set(one.track_ids) == {analyses[0].track_id}
    by_id = {s.id: s for a in analyses for s in a.segments}
    for sid, chroma in zip(table.segment_ids, table.chroma, strict=True):
        np.testing.assert_allclose(chroma, by_id[sid].features.chroma, rtol=1e-6, atol=1e-7)


def test_tracks_query_by_key_and_bpm(db_url, analyses):
    with open_library(db_url) as lib:
        for a in analyses:
            _store(lib, a)
        with lib.reader() as s:
            every = repo.query_tracks(s)
            a = analyses[0]
            by_key = repo.query_tracks(s, key=a.key.camelot)
            by_name = repo.query_tracks(s, key=str(a.key))
            lo, hi = a.tempo - 1, a.tempo + 1
            by_bpm = repo.query_tracks(s, bpm=f"{lo:.2f}-{hi:.2f}")
            none = repo.query_tracks(s, bpm="300-400")
    assert len(every) == 3 and [t.tempo for t in every] == sorted(t.tempo for t in every)
    assert a.track_id in {t.track_id for t in by_key}
    assert {t.track_id for t in by_key} == {t.track_id for t in by_name}
    assert all(t.camelot == a.key.camelot for t in by_key)
    assert [t.track_id for t in by_bpm] == [a.track_id]
    assert none == []
    assert every[0].segments > 0 and every[0].paths == 1


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("120-130", (120, 130)),
        ("120..130", (120, 130)),
        ("128", (127.5, 128.5)),
        ("90-", (90, float("inf"))),
        ("-100", (0, 100)),
    ],
)
def test_bpm_ranges_parse(text, bounds):
    assert repo.parse_bpm_range(text) == bounds


@pytest.mark.parametrize("text", ["fast", "130-120", "-", ""])
def test_bad_bpm_ranges_are_rejected(text):
    with pytest.raises(ParameterError):
        repo.parse_bpm_range(text)


def test_ratings_and_models_tables_take_rows_and_ratings_survive_reanalysis(db_url, analyses):
    a = analyses[0]
    with open_library(db_url) as lib:
        _store(lib, a)
        with lib.transaction() as s:
            s.add(
                RatingRow(
                    query_segment_id=a.segments[0].id,
                    candidate_segment_id=analyses[1].segments[0].id,
                    tempo_ratio=1.02,
                    semitones=-2,
                    score=4,
                    comment="nice",
                    analysis_version=1,
                    created_at=repo.now(),
                )
            )
            s.add(
                ModelRow(
                    kind="ranker",
                    version=1,
                    trained_at=repo.now(),
                    parameters={"lr": 0.1},
                    metrics={"ndcg": 0.8},
                    artefact="m/1.pkl",
                )
            )
        _store(lib, a)  # re-analysis replaces segments; ratings are user data and stay
        with lib.reader() as s:
            rating = s.scalars(select(RatingRow)).one()
            model = s.scalars(select(ModelRow)).one()
    assert rating.score == 4 and rating.semitones == -2
    assert model.parameters == {"lr": 0.1} and model.metrics == {"ndcg": 0.8}


def test_a_rating_outside_1_to_5_is_refused(db_url):
    from cratedig.library.errors import LibraryError

    with open_library(db_url) as lib, pytest.raises(LibraryError):
        with lib.transaction() as s:
            s.add(
                RatingRow(
                    query_segment_id="a_0",
                    candidate_segment_id="b_0",
                    score=9,
                    tempo_ratio=1.0,
                    semitones=0,
                    analysis_version=1,
                    created_at=repo.now(),
                )
            )


def test_stats_count_tracks_duplicates_and_errors(db_url, analyses):
    with open_library(db_url) as lib:
        for a in analyses:
            _store(lib, a)
        _store(lib, analyses[0], path="/elsewhere/copy.wav")
        with lib.transaction() as s:
            repo.record_error(s, path="/x/broken.mp3", reason="damaged", size=3, mtime_ns=4)
        with lib.reader() as s:
            st = repo.library_stats(s)
    assert (st.tracks, st.files, st.duplicate_tracks, st.errors) == (3, 4, 1, 1)
    assert st.segments == sum(len(a.segments) for a in analyses)
    assert sum(st.formats.values()) == 3 and st.stale_tracks == 0 and st.missing_tracks == 0


def test_quality_and_ingest_id_round_trip_and_filter(db_url, analyses):
    good, bad = analyses[0], replace(analyses[1])
    bad.quality = {
        "bandwidth_hz": 16000.0,
        "fake_lossless": True,
        "clipping": {"share": 0.0, "runs": 0},
        "flags": ["fake_lossless"],
        "reasons": {"fake_lossless": "FLAC but no content above 16.0 kHz"},
        "level": "low",
    }
    with open_library(db_url) as lib:
        with lib.transaction() as s:
            repo.store_analysis(s, good, ingest_id="batch-1")
            repo.store_analysis(s, bad, ingest_id="batch-2")
        with lib.reader() as s:
            assert repo.load_analysis(s, bad.track_id).quality == bad.quality
            assert s.get(TrackRow, bad.track_id).ingest_id == "batch-2"
            low = repo.query_tracks(s, quality="low")
            assert [t.track_id for t in low] == [bad.track_id]
            assert low[0].to_json()["quality"]["fake_lossless"] is True
            counts = repo.library_stats(s).quality
            assert counts["fake_lossless"] == 1 and counts["low"] == 1
            with pytest.raises(ParameterError):
                repo.query_tracks(s, quality="bad")
