"""Ingest: identity by content, incrementality, broken and vanishing files, one writer.

Every test runs on SQLite and on PostgreSQL (see ``db_url`` in conftest.py).
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select, update

from cratedig import ANALYSIS_VERSION
from cratedig.analysis.pipeline import analyze_file
from cratedig.audio.decode import ANALYSIS_SR, decode
from cratedig.compute import InProcessExecutor, ProcessPoolExecutor
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.errors import DatabaseReadOnly, DiskFull, LibraryError
from cratedig.library.ingest import analyse_decoded, ingest
from cratedig.library.schema import FeatureRow, FileRow, IngestErrorRow, SegmentRow, TrackRow
from cratedig.synth import synthesize_song
from cratedig.theory import Key

from .snapshot import assert_same_library, snapshot

N = 6  # audio files in the `music` fixture


def run(db_url, folder, **kwargs):
    with open_library(db_url) as lib:
        return ingest(lib, folder, **kwargs)


def counts(db_url):
    with open_library(db_url) as lib, lib.reader() as s:
        return {
            table.__tablename__: s.scalar(select(func.count()).select_from(table))
            for table in (TrackRow, FileRow, SegmentRow, FeatureRow, IngestErrorRow)
        }


def no_analysis(monkeypatch):
    """Make any decode or analysis in this process fail the test."""

    def boom(*args, **kwargs):
        raise AssertionError("this ingest should not have analysed anything")

    monkeypatch.setattr("cratedig.library.ingest.analyse_decoded", boom)


def test_worker_analysis_is_analyze_file_with_one_decode(track_files):
    # Ingest decodes once and analyses those samples; the result must be analyze_file's.
    path = track_files / "a" / "two.flac"
    audio = decode(path, sr=ANALYSIS_SR)
    mine = analyse_decoded(audio, path).to_json(features=True)
    theirs = analyze_file(path).to_json(features=True)
    assert mine == theirs


def test_first_ingest_analyses_every_audio_file_and_ignores_the_rest(db_url, music):
    report = run(db_url, music)
    assert report.scanned == N and report.analysed == N and report.failed == []
    assert report.audio_seconds > 60 and report.realtime_factor > 0
    c = counts(db_url)
    assert c["tracks"] == c["files"] == N
    assert c["segments"] == c["features"] > N
    with open_library(db_url) as lib, lib.reader() as s:
        paths = set(repo.known_files(s))
    assert paths == {
        str(p) for p in music.rglob("*") if p.suffix in (".wav", ".flac", ".ogg", ".mp3", ".aiff")
    }


def test_a_second_ingest_skips_unchanged_files_without_decoding(db_url, music, monkeypatch):
    run(db_url, music)
    before = snapshot(db_url)
    monkeypatch.setattr(
        "cratedig.library.ingest.decode",
        lambda *a, **k: pytest.fail("an unchanged file was decoded"),
    )
    report = run(db_url, music)
    assert (report.unchanged, report.analysed, report.moved, report.duplicates) == (N, 0, [], [])
    assert_same_library(before, snapshot(db_url), rtol=0)


def test_renamed_and_moved_files_keep_their_analysis(db_url, music, monkeypatch):
    run(db_url, music)
    before = snapshot(db_url)
    old_one, old_four = music / "a" / "one.wav", music / "b" / "deeper" / "four.mp3"
    new_one, new_four = music / "a" / "renamed.wav", music / "elsewhere" / "four.mp3"
    old_one.rename(new_one)
    new_four.parent.mkdir()
    shutil.move(old_four, new_four)
    no_analysis(monkeypatch)
    report = run(db_url, music)
    assert report.analysed == 0 and report.duplicates == [] and report.failed == []
    assert sorted(p for p, _ in report.moved) == sorted([str(new_one), str(new_four)])
    assert report.pruned == 2 and report.unchanged == N - 2
    after = snapshot(db_url)
    assert after["tracks"].keys() == before["tracks"].keys()
    assert after["files"][str(new_one)] == before["files"][str(old_one)]
    assert str(old_one) not in after["files"] and str(old_four) not in after["files"]


def test_exact_duplicates_are_reported_not_analysed(db_url, music, monkeypatch):
    run(db_url, music)
    copy = music / "copies" / "two again.flac"
    copy.parent.mkdir()
    shutil.copy(music / "a" / "two.flac", copy)
    no_analysis(monkeypatch)
    report = run(db_url, music)
    assert report.duplicates == [(str(copy), str(music / "a" / "two.flac"))]
    assert report.analysed == 0 and report.moved == []
    c = counts(db_url)
    assert (c["tracks"], c["files"]) == (N, N + 1)
    with open_library(db_url) as lib, lib.reader() as s:
        assert repo.library_stats(s).duplicate_tracks == 1


def test_duplicates_new_in_the_same_ingest_make_one_track(db_url, tmp_path, track_files):
    folder = tmp_path / "twins"
    folder.mkdir()
    for name in ("x.wav", "y.wav", "z.wav"):
        shutil.copy(track_files / "a" / "one.wav", folder / name)
    report = run(db_url, folder, executor=InProcessExecutor())
    assert report.analysed == 1 and len(report.duplicates) == 2
    c = counts(db_url)
    assert (c["tracks"], c["files"]) == (1, 3)


def test_a_changed_file_is_analysed_again(db_url, music):
    run(db_url, music)
    target = music / "six.wav"
    old_id = snapshot(db_url)["files"][str(target)]
    song = synthesize_song(tempo=100.0, key=Key.parse("B minor"), bars=8, sr=22050, seed=7)
    sf.write(str(target), song.audio, 22050, subtype="FLOAT")
    report = run(db_url, music)
    assert report.analysed == 1 and report.unchanged == N - 1
    new_id = snapshot(db_url)["files"][str(target)]
    assert new_id != old_id
    with open_library(db_url) as lib, lib.reader() as s:
        st = repo.library_stats(s)
        assert repo.load_analysis(s, old_id) is None
    # The old audio is a ghost (no file holds it): it leaves the library and the index.
    assert (st.tracks, st.files, st.missing_tracks) == (N, N, 0)
    assert report.gone_tracks == [old_id]


def test_bumping_the_analysis_version_reanalyses_only_stale_tracks(db_url, music):
    run(db_url, music)
    with open_library(db_url) as lib:
        with lib.reader() as s:
            stale = sorted(repo.current_track_ids(s))[:2]
        with lib.transaction() as s:
            s.execute(update(TrackRow).where(TrackRow.id.in_(stale)).values(analysis_version=0))
        with lib.reader() as s:
            assert repo.library_stats(s).stale_tracks == 2
    report = run(db_url, music)
    assert report.analysed == 2 and report.unchanged == N - 2 and report.moved == []
    with open_library(db_url) as lib, lib.reader() as s:
        assert repo.library_stats(s).stale_tracks == 0
        versions = set(s.scalars(select(TrackRow.analysis_version)))
    assert versions == {ANALYSIS_VERSION}
    c = counts(db_url)
    assert c["tracks"] == c["files"] == N


def test_a_new_analysis_version_reanalyses_everything_once(sqlite_url, music, monkeypatch):
    # (Backend-independent: the stale-track test above runs on both.)
    db_url = sqlite_url
    run(db_url, music)
    monkeypatch.setattr("cratedig.library.ingest.ANALYSIS_VERSION", ANALYSIS_VERSION + 1)
    monkeypatch.setattr("cratedig.analysis.pipeline.ANALYSIS_VERSION", ANALYSIS_VERSION + 1)
    assert run(db_url, music).analysed == N
    assert run(db_url, music).unchanged == N
    c = counts(db_url)
    assert c["tracks"] == c["files"] == N


def _break(folder):
    """Write one file for each way a file can be bad; returns {name: expected words}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good = synthesize_song(tempo=120.0, key=Key.parse("C major"), bars=8, sr=22050, seed=3)
    sf.write(str(folder / "truncated.wav"), good.audio, 22050, subtype="PCM_16")
    data = (folder / "truncated.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 3])
    (folder / "noise.mp3").write_bytes(rng.bytes(20_000))
    (folder / "empty.flac").write_bytes(b"")
    (folder / "text.wav").write_text("this is not a wave file\n" * 100)
    # 2.5 s of a 120 BPM song: a bar and a quarter, no loop (exactly 2 s would be a 1-bar loop)
    sf.write(str(folder / "short.wav"), good.audio[: int(22050 * 2.5)], 22050)
    sf.write(str(folder / "silent.flac"), np.zeros(22050 * 8, np.float32), 22050)
    return {
        "truncated.wav": "truncated",
        "noise.mp3": "",
        "empty.flac": "empty",
        "text.wav": "",
        "short.wav": "long",
        "silent.flac": "silent",
    }


def test_broken_files_are_recorded_with_reasons_and_the_ingest_goes_on(db_url, music):
    expected = _break(music / "broken")
    report = run(db_url, music)
    assert report.analysed == N
    failed = {os.path.basename(p): reason for p, reason in report.failed}
    assert failed.keys() == expected.keys()
    for name, words in expected.items():
        assert words in failed[name] and "\n" not in failed[name] and failed[name]
    assert snapshot(db_url)["errors"] == {p: r for p, r in report.failed}

    # Unchanged broken files are not retried...
    again = run(db_url, music)
    assert again.failed_before == len(expected) and again.failed == [] and again.analysed == 0
    # ...unless asked,
    retried = run(db_url, music, retry_failed=True)
    assert len(retried.failed) == len(expected)
    # and a fixed file is analysed and its error forgotten.
    shutil.copy(music / "six.wav", music / "broken" / "text.wav")
    fixed = run(db_url, music)
    assert len(fixed.duplicates) == 1 and fixed.failed_before == len(expected) - 1
    assert str(music / "broken" / "text.wav") not in snapshot(db_url)["errors"]


def test_a_file_that_disappears_mid_ingest_is_handled(db_url, music):
    victim = music / "six.wav"

    def progress(event, **details):
        if event == "done" and victim.exists():
            victim.unlink()  # after the scan, before its turn (files go in path order)

    report = run(db_url, music, executor=InProcessExecutor(), progress=progress)
    assert report.vanished == [str(victim)]
    assert report.analysed == N - 1 and report.failed == []
    c = counts(db_url)
    assert (c["tracks"], c["files"], c["ingest_errors"]) == (N - 1, N - 1, 0)


def test_files_deleted_between_ingests_are_forgotten(db_url, music):
    run(db_url, music)
    (music / "six.wav").unlink()
    report = run(db_url, music)
    assert report.pruned == 1 and report.unchanged == N - 1
    assert str(music / "six.wav") not in snapshot(db_url)["files"]


def test_a_process_pool_builds_the_same_library(db_url, music, reference_library):
    with ProcessPoolExecutor(2) as pool:
        report = run(db_url, music, executor=pool)
    assert report.analysed == N and report.executor == "2 processes"
    assert_same_library(reference_library, snapshot(db_url, music))


def test_a_missing_folder_is_a_clear_error(db_url, tmp_path):
    with pytest.raises(LibraryError, match="no such folder"):
        run(db_url, tmp_path / "nowhere")


def test_a_full_sqlite_disk_stops_the_ingest_with_a_clear_error(sqlite_url, tmp_path):
    from sqlalchemy import event

    folder = tmp_path / "long"
    song = synthesize_song(tempo=140.0, key=Key.parse("A minor"), bars=48, sr=22050, seed=5)
    sf.write(str(folder.mkdir() or folder / "long.wav"), song.audio, 22050)
    # Small pages, so that the free space left in a fresh database's pages is small too.
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as raw:
        raw.execute("PRAGMA page_size = 512")
        raw.execute("VACUUM")
    with open_library(sqlite_url) as lib:
        with lib.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

        @event.listens_for(lib.engine, "connect")
        def _cap(dbapi_conn, _record):  # what a full disk looks like to SQLite
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

        lib.engine.dispose()
        with pytest.raises(DiskFull, match="out of disk space"):
            ingest(lib, folder)
    # Nothing half-written: the track's transaction was rolled back whole.
    assert counts(sqlite_url)["segments"] == counts(sqlite_url)["tracks"] == 0


def _make_read_only(db_url):
    """Make the library refuse writes the way each backend does; returns the URL to use."""
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    from sqlalchemy import create_engine, make_url, text

    from cratedig.library.db import resolve_db_url

    url = make_url(resolve_db_url(db_url))
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on'))
    engine.dispose()
    return db_url


def test_a_read_only_library_gives_a_clear_error(db_url, music, tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(music / "six.wav", first / "six.wav")
    run(db_url, first)
    ro = _make_read_only(db_url)
    with pytest.raises(DatabaseReadOnly, match="read-only"):
        run(ro, music)
    # Reading still works.
    with open_library(ro) as lib, lib.reader() as s:
        assert repo.library_stats(s).tracks == 1


def test_two_ingests_can_write_one_sqlite_library_at_once(sqlite_url, music, tmp_path):
    # Two processes' worth of writers (two connections, two threads here) share the file: the
    # busy timeout queues them, nothing is lost or doubled.
    import threading

    halves = [tmp_path / "h0", tmp_path / "h1"]
    for i, p in enumerate(
        sorted(
            p for p in music.rglob("*") if p.suffix in (".wav", ".flac", ".ogg", ".mp3", ".aiff")
        )
    ):
        halves[i % 2].mkdir(exist_ok=True)
        shutil.copy(p, halves[i % 2] / p.name)
    open_library(sqlite_url).close()  # migrate once, up front
    reports, errors = [], []

    def work(folder):
        try:
            reports.append(run(sqlite_url, folder))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(r.analysed for r in reports) == N
    c = counts(sqlite_url)
    assert c["tracks"] == c["files"] == N
