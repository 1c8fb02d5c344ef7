"""Before/after speed of ``analyze_file``: two source trees timed side by side on the same files.

A speed change measured in two separate benchmark runs on a shared machine mostly measures the
machine. Here one worker process per tree (math libraries held to one thread) analyses each
file in turn, the two interleaved (A then B, B then A on the next file), so both see the same
load; each reports wall and CPU seconds and the pipeline's per-stage timings. The summary gives
per-stage medians, the ratio of total CPU time (base / new) and, per file, whether the two
trees agree (tempo, key, meter, beats to 1 µs, loudness to 1e-6 LU).

Usage::

    git archive main src | tar -x -C /tmp/base          # the "before" tree
    .venv/bin/python bench/speed_ab.py --base /tmp/base/src --limit 30 --repeats 3
    .venv/bin/python bench/speed_ab.py --base /tmp/base/src --split heldout

Files: the real-music set (``bench/realset.py``, built and cached on first use), one split.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# One JSON line in (a path), one JSON line out (times and a digest of the result).
_WORKER = r"""
import json, sys, time
import numpy as np
from cratedig.analysis.pipeline import analyze_file
for line in sys.stdin:
    path = json.loads(line)
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        a = analyze_file(path, use_tags=False)  # the audio alone
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        continue
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(json.dumps({
        "wall": wall, "cpu": cpu, "timings": a.timings, "duration": a.duration,
        "tempo": a.tempo, "key": a.key.name + " " + a.key.mode,
        "meter": a.time_signature[0], "beats": np.asarray(a.beats).tolist(),
        "loudness": a.loudness, "segments": len(a.segments),
    }), flush=True)
"""


class Worker:
    """A Python process analysing files with the cratedig of one source tree."""

    def __init__(self, src: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(src))
        env.update({v: "1" for v in _THREAD_VARS})
        self.src = src
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, path: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(path) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for {self.src} exited")
        out: dict[str, Any] = json.loads(line)
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def agree(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the results that differ between two runs of one file."""
    if "error" in a or "error" in b:
        return [] if a.get("error") == b.get("error") else ["error"]
    bad = [k for k in ("key", "meter", "segments") if a[k] != b[k]]
    if abs(a["tempo"] - b["tempo"]) > 1e-6:
        bad.append("tempo")
    if len(a["beats"]) != len(b["beats"]) or any(
        abs(x - y) > 1e-6 for x, y in zip(a["beats"], b["beats"], strict=True)
    ):
        bad.append("beats")
    if abs(a["loudness"] - b["loudness"]) > 1e-6:
        bad.append("loudness")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the 'before' tree's src folder")
    p.add_argument("--new", type=Path, default=ROOT / "src", help="the 'after' src folder")
    p.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    p.add_argument("--limit", type=int, help="only the first K songs of the split")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per file and tree")
    p.add_argument("--out", type=Path, help="write every timing here (JSON)")
    a = p.parse_args(argv)
    for src in (a.base, a.new):
        if not (src / "cratedig" / "__init__.py").is_file():
            p.error(f"{src} holds no cratedig package")

    import realset

    songs = [s for s in realset.load()["songs"] if a.split == "all" or s["split"] == a.split]
    songs = songs[: a.limit] if a.limit else songs
    base, new = Worker(a.base), Worker(a.new)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"base": {}, "new": {}}
    disagree: dict[str, list[str]] = {}
    try:
        base.run(songs[0]["path"]), new.run(songs[0]["path"])  # warm-up: imports, caches
        for i, song in enumerate(songs):
            for r in range(a.repeats):
                order = [("base", base), ("new", new)]
                if (i + r) % 2:
                    order.reverse()
                for name, worker in order:
                    runs[name].setdefault(song["id"], []).append(worker.run(song["path"]))
            bad = agree(runs["base"][song["id"]][0], runs["new"][song["id"]][0])
            if bad:
                disagree[song["id"]] = bad
            print(f"\r{i + 1}/{len(songs)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        base.close()
        new.close()

    def per_file(name: str, key: str) -> dict[str, float]:
        out = {}
        for sid, rs in runs[name].items():
            ok = [r for r in rs if "error" not in r]
            if ok:
                out[sid] = statistics.median(
                    r[key] if key in ("wall", "cpu") else r["timings"].get(key, 0.0) for r in ok
                )
        return out

    audio = sum(
        runs["base"][s["id"]][0].get("duration", 0.0)
        for s in songs
        if "error" not in runs["base"][s["id"]][0]
    )
    stages = list(next(r for rs in runs["new"].values() for r in rs if "error" not in r)["timings"])
    rows = []
    for key in ["cpu", "wall", *stages]:
        b, n = per_file("base", key), per_file("new", key)
        common = sorted(set(b) & set(n))
        tb, tn = sum(b[s] for s in common), sum(n[s] for s in common)
        rows.append((key, tb, tn, tb / tn if tn > 0 else float("nan")))
    print(
        f"{len(songs)} songs ({a.split} split, {audio / 60:.1f} min of audio), {a.repeats} runs "
        f"per file and tree, interleaved; per-file medians summed"
    )
    print(f"{'':12s} {'base s':>9s} {'new s':>9s} {'base/new':>9s}")
    for key, tb, tn, ratio in rows:
        print(f"{key:12s} {tb:9.3f} {tn:9.3f} {ratio:9.3f}")
    cpu_b, cpu_n = rows[0][1], rows[0][2]
    print(f"x realtime by CPU time: base {audio / cpu_b:.1f}, new {audio / cpu_n:.1f}")
    print(
        "results differ on "
        + (", ".join(f"{k} ({', '.join(v)})" for k, v in disagree.items()) or "no file")
    )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"runs": runs, "rows": rows, "disagree": disagree}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
