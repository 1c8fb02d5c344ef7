"""kill -9 in the middle of an ingest, then run it again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import soundfile as sf
from sqlalchemy import func, select

from cratedig.library.db import open_library
from cratedig.library.ingest import ingest
from cratedig.library.schema import FeatureRow, FileRow, IngestErrorRow, SegmentRow, TrackRow

N_TRACKS = 8


@pytest.fixture
def many_tracks(track_files, tmp_path):
    """N_TRACKS distinct tracks: the short songs at several gains (a gain changes the hash)."""
    folder = tmp_path / "many"
    folder.mkdir()
    sources = sorted(track_files.rglob("*.wav")) + sorted(track_files.rglob("*.flac"))
    i = 0
    while i < N_TRACKS:
        src = sources[i % len(sources)]
        x, sr = sf.read(str(src), dtype="float32")
        gain = 0.9 - 0.1 * (i // len(sources))
        sf.write(str(folder / f"t{i:02d}.wav"), x * gain, sr, subtype="FLOAT")
        i += 1
    return folder


def _count(lib, table):
    with lib.reader() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_kill_9_then_rerun_finishes_the_job_exactly_once(db_url, many_tracks):
    # A pool of two on SQLite (workers must die with the ingest), one process on PostgreSQL.
    workers = "2" if db_url.startswith("sqlite") else "1"
    cmd = [
        sys.executable,
        "-m",
        "cratedig.cli",
        "ingest",
        str(many_tracks),
        "--db",
        db_url,
        "--workers",
        workers,
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open_library(db_url) as lib:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None:
            stored = _count(lib, TrackRow)
            if stored >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read()}"
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        # Worker processes die with their parent instead of analysing on as orphans.
        _, alive = psutil.wait_procs(children, timeout=20)
        assert alive == []

        at_kill = _count(lib, TrackRow)
        assert 1 <= at_kill < N_TRACKS
        # What was committed is whole: every stored track has its file row and its segments.
        assert _count(lib, FileRow) == at_kill

        report = ingest(lib, many_tracks)
        assert report.unchanged == at_kill
        assert report.analysed == N_TRACKS - at_kill
        assert report.failed == [] and report.duplicates == [] and report.moved == []

        with lib.reader() as s:
            assert s.scalar(select(func.count()).select_from(TrackRow)) == N_TRACKS
            paths = list(s.scalars(select(FileRow.path)))
            assert sorted(paths) == sorted(str(p) for p in many_tracks.iterdir())
            assert _count(lib, IngestErrorRow) == 0
            segs = s.execute(select(SegmentRow.track_id, SegmentRow.index)).all()
            assert _count(lib, FeatureRow) == len(segs)
        by_track: dict[str, list[int]] = {}
        for track_id, index in segs:
            by_track.setdefault(track_id, []).append(index)
        assert len(by_track) == N_TRACKS
        assert all(sorted(v) == list(range(len(v))) for v in by_track.values())
        assert np.all([len(v) > 0 for v in by_track.values()])
