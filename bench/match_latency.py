"""Latency of matching one 4-minute song against 10 k, 100 k and 1 M library segments.

The library is synthetic feature rows (triad progressions in random keys, random tempos 70-180
BPM, rhythm, balance, energy; 8 bars each with ``--units`` chroma rows per bar: 4, one per
beat, as the DB stores them since analysis v2 and the matcher scores them; 1 for bar rows); the query is a 4-minute song
at 125 BPM cut into 16 phrases of 8 bars. One *match* = retrieve ``--candidates`` segments per
query phrase (every allowed rotation, tempo band, own track excluded), score them exactly with
:func:`cratedig.match.scoring.score_candidates` and build the top ``--top`` reasons.

Compared in the same run, each size in a fresh child process (so peak memory is its own):

- ``sorted``: :class:`cratedig.match.index.SegmentIndex` (tempo-sorted store, numpy scan of
  the allowed tempo runs: the default);
- ``faiss``: the same store scanned with ``faiss.knn``;
- ``numpy``: :class:`cratedig.match.index.BruteForceIndex` (every row, chunked products);
- ``exhaustive``: the exact scorer on every library row, no index (up to 100 k rows).

Threads are held to ``--threads`` (default 2, the target's "2 cores"). Target (MUSIC.md):
< 1 s at 1 M segments on 2 cores, < 4 GB RAM. Memory columns: the process peak; the index's
own resident growth while built; and the synthetic feature table, which stands in for the
database (the product loads only the fetched candidates' rows from it) yet sits in this
process's memory and its peak.

Usage::

    .venv/bin/python bench/match_latency.py
    .venv/bin/python bench/match_latency.py --sizes 10000 100000 --repeats 5
"""

from __future__ import annotations

import os
import sys

if "--child" in sys.argv:  # before numpy/faiss load: pin thread pools
    _t = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
BARS = 8
QUERY_PHRASES = 16  # 4 minutes at 125 BPM = 125 bars = 16 phrases of 8 bars
TARGET_SECONDS = 1.0
TARGET_GB = 4.0

# Triads: major and minor on every root; diatonic motion by the usual degree steps.
_TEMPLATES = np.zeros((24, 12), np.float32)
for _r in range(12):
    _TEMPLATES[_r, [(_r + d) % 12 for d in (0, 4, 7)]] = 1.0
    _TEMPLATES[12 + _r, [(_r + d) % 12 for d in (0, 3, 7)]] = 1.0


def synthetic_batch(
    n: int, *, seed: int, track_prefix: str = "t", per_track: int = 16, units: int = 4
) -> Any:
    """``n`` plausible segment feature rows, generated in chunks to bound memory."""
    from cratedig.match.batch import SegmentBatch

    rng = np.random.default_rng(seed)
    chroma = np.empty((n, BARS * units, 12), np.float32)
    chunk = 1 << 17
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        m = hi - lo
        root = rng.integers(0, 12, size=(m, 1))
        step = rng.choice(np.array([0, 5, 7, 9, 2, 4]), size=(m, BARS))
        minor = rng.random((m, BARS)) < 0.4
        c = np.repeat(_TEMPLATES[(root + step) % 12 + 12 * minor], units, axis=1)
        c += rng.random(c.shape, dtype=np.float32) * 0.1
        c /= c.sum(axis=2, keepdims=True)
        chroma[lo:hi] = c
    ids = np.array(
        [f"{track_prefix}{i // per_track:07d}_{i % per_track}" for i in range(n)], object
    )
    tracks = np.array([f"{track_prefix}{i // per_track:07d}" for i in range(n)], object)
    return SegmentBatch(
        ids=ids,
        track_ids=tracks,
        tempo=rng.uniform(70, 180, n),
        key_index=rng.integers(0, 24, n),
        key_clarity=rng.random(n, dtype=np.float32),
        chroma=chroma,
        chroma_mask=np.ones((n, BARS * units), bool),
        rhythm=rng.random((n, 16), dtype=np.float32),
        steps=np.full(n, 16),
        balance=rng.dirichlet(np.ones(3), n).astype(np.float32),
        energy=rng.random(n, dtype=np.float32),
        units_per_bar=units,
    )


def match_song(index: Any, library: Any, query: Any, *, candidates: int, top: int) -> int:
    """Retrieve, score exactly and explain the top ``top`` for every query phrase."""
    from cratedig.match.scoring import explain, score_candidates

    shown = 0
    for q, hits in enumerate(index.search(query, k=candidates)):
        one = query.take([q])
        cands = library.take(hits.rows)
        scores = score_candidates(one, cands)
        rows = scores.ranking(top)
        shown += len(explain(one, cands, scores, rows))
    return shown


def match_exhaustive(library: Any, query: Any, *, top: int) -> int:
    from cratedig.match.scoring import explain, score_candidates

    shown = 0
    for q in range(len(query)):
        one = query.take([q])
        scores = score_candidates(one, library)
        ok = library.track_ids != one.track_ids[0]
        rows = [r for r in scores.ranking() if ok[r]][:top]
        shown += len(explain(one, library, scores, rows))
    return shown


def _rss_gb() -> float:
    """Resident memory now (Linux), GB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3


def child(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    from cratedig.match.index import build_index

    faiss.omp_set_num_threads(args.threads)
    t0 = time.perf_counter()
    library = synthetic_batch(args.size, seed=1, units=args.units)
    query = synthetic_batch(QUERY_PHRASES, seed=2, track_prefix="q", units=args.units)
    query.tempo[:] = 125.0
    t1 = time.perf_counter()
    out: dict[str, Any] = {"size": args.size, "kind": args.kind, "generate_s": t1 - t0}
    # The feature table stands in for the database the matcher reads candidates from: in the
    # product it is not held in memory; here it is, and counts in the peak.
    out["table_gb"] = (
        sum(getattr(library, f).nbytes for f in ("chroma", "chroma_mask", "rhythm", "balance"))
        / 1024**3
    )
    if args.kind == "exhaustive":
        run = lambda: match_exhaustive(library, query, top=args.top)  # noqa: E731
    else:
        before = _rss_gb()
        index = build_index(library, kind=args.kind)
        out["build_s"] = time.perf_counter() - t1
        out["index_gb"] = _rss_gb() - before
        run = lambda: match_song(  # noqa: E731
            index, library, query, candidates=args.candidates, top=args.top
        )
    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    out["match_s"] = statistics.median(times)
    out["match_s_all"] = times
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--kinds", nargs="+", default=["sorted", "faiss", "numpy", "exhaustive"])
    p.add_argument("--exhaustive-max", type=int, default=100_000)
    p.add_argument("--candidates", type=int, default=200, help="retrieved per query phrase")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--units", type=int, default=4, help="chroma rows per bar (4: beats, 1: bars)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT_DIR)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    rows = []
    print(f"match latency: one 4-minute song ({QUERY_PHRASES} phrases), {args.threads} threads")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"{'segments':>10} {'kind':>10} {'match s':>9} {'build s':>8} {'peak GB':>8} "
        f"{'index GB':>8} {'table GB':>8}"
    )
    for size in args.sizes:
        for kind in args.kinds:
            if kind == "exhaustive" and size > args.exhaustive_max:
                continue
            cmd = [sys.executable, __file__, "--child", "--size", str(size), "--kind", kind]
            cmd += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
            cmd += ["--candidates", str(args.candidates), "--top", str(args.top)]
            cmd += ["--units", str(args.units)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"{size:>10} {kind:>10} failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(r)
            build = f"{r['build_s']:.2f}" if "build_s" in r else "-"
            idx = f"{r['index_gb']:.2f}" if "index_gb" in r else "-"
            print(
                f"{size:>10} {kind:>10} {r['match_s']:>9.3f} {build:>8} {r['peak_rss_gb']:>8.2f} "
                f"{idx:>8} {r['table_gb']:>8.2f}"
            )
    big = [r for r in rows if r["kind"] == "sorted"]
    if big:
        r = max(big, key=lambda r: r["size"])
        ok = r["match_s"] < TARGET_SECONDS and r["peak_rss_gb"] < TARGET_GB
        print(
            f"target at {r['size']:,} segments: < {TARGET_SECONDS} s and < {TARGET_GB} GB -> "
            f"{r['match_s']:.3f} s, {r['peak_rss_gb']:.2f} GB: {'PASS' if ok else 'FAIL'}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "match_latency.json"
    path.write_text(
        json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1)
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
