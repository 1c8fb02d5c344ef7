"""Time to compute drift for 100 k segments, and the size of the drift report.

Two measurements:

1. **tables**: a reference of 20 k segments and a new set of ``--segments`` segments drawn from
   a known population (``tests/learn/tables.py``); times the cluster assignment of the new
   segments (``ClusterModel.nearest`` on (n, 34) features), :func:`evaluate_drift` and the HTML
   report, and checks the false-alarm count over 20 same-distribution batches.
2. **library** (``--library``): a SQLite library holding ``--segments`` stored segments (one
   analysed song copied under many track ids), trained, then ``library_drift`` over all of them
   (loading from the database included).

Usage::

    .venv/bin/python bench/drift.py --segments 100000 [--library]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "learn"))

from tables import features, fit_model, population, with_model  # noqa: E402

from cratedig.learn.drift import build_reference, evaluate_drift  # noqa: E402
from cratedig.reports import drift_html  # noqa: E402


def bench_tables(n_segments: int, out: Path) -> None:
    rng = np.random.default_rng(0)
    train = population(rng, 3000)
    model = fit_model(train, k=24)
    reference = build_reference(with_model(train, model), k=model.k)
    new = population(np.random.default_rng(1), n_segments // 6, waltz=0.5, prefix="n")
    x = features(new)
    t0 = time.perf_counter()
    new.cluster, new.distance = model.nearest(x)
    t1 = time.perf_counter()
    report = evaluate_drift(reference, new)
    t2 = time.perf_counter()
    html = drift_html(report, out / "drift.html")
    t3 = time.perf_counter()
    print(
        f"tables: {len(new)} new segments ({new.tracks} tracks) vs {len(train)} training: "
        f"cluster assignment {t1 - t0:.2f} s, drift {t2 - t1:.2f} s, HTML {t3 - t2:.2f} s, "
        f"total {t3 - t0:.2f} s; report {html.stat().st_size / 1e3:.0f} kB; "
        f"drifted {report.drifted}"
    )
    alarms = 0
    for i in range(20):
        b = with_model(population(np.random.default_rng(100 + i), 40, prefix=f"b{i}"), model)
        alarms += evaluate_drift(reference, b).drift
    print(f"false alarms over 20 same-distribution batches of 40 tracks: {alarms}")


def bench_library(n_segments: int, out: Path) -> None:
    from dataclasses import replace

    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.learn.clusters import refresh_clusters
    from cratedig.learn.drift import library_drift
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    songs = [
        analyze_signal(
            synthesize_song(
                tempo=t, key=Key.from_index(k), meter=m, bars=32, seed=k, sr=22050
            ).audio,
            sr=22050,
        )
        for t, k, m in ((120.0, 3, 4), (124.0, 14, 4), (96.0, 7, 3), (140.0, 20, 4))
    ]
    per_track = np.mean([len(a.segments) for a in songs])
    n_tracks = int(n_segments / per_track)
    db = out / "drift-bench.db"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open_library(db) as lib:
        with lib.transaction() as s:
            for i in range(40):  # a small training library first
                repo.store_analysis(s, _copy(songs[i % 4], f"{i:016x}", replace))
        refresh_clusters(lib, refit=True)
        since = repo.now()
        with lib.transaction() as s:
            for i in range(40, 40 + n_tracks):
                repo.store_analysis(s, _copy(songs[i % 4], f"{i:016x}", replace))
        t1 = time.perf_counter()
        report = library_drift(lib, since=since)
        t2 = time.perf_counter()
    print(
        f"library: {report.new_segments} segments of {report.new_tracks} tracks stored in "
        f"{t1 - t0:.0f} s; library_drift (load + assign + compare) {t2 - t1:.2f} s"
    )


def _copy(a, tid, replace):
    segs = [replace(s, id=f"{tid}_{s.index}", track_id=tid) for s in a.segments]
    return replace(a, track_id=tid, segments=segs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--library", action="store_true", help="also time drift on a stored library")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    bench_tables(a.segments, a.out)
    if a.library:
        with tempfile.TemporaryDirectory() as tmp:
            bench_library(a.segments, Path(tmp))


if __name__ == "__main__":
    main()
