"""Latency and throughput of ``cratedig serve`` under concurrent clients on 127.0.0.1.

A library of ``--tracks`` synthesized songs (``cratedig.synth.demo_library``, cached in
``bench/.cache/serve-<n>``) is ingested once; ``cratedig serve`` runs in a child process (the
real uvicorn server); client threads then ask, for ``--seconds`` each round, for

- ``match``: ``POST /api/match {"track_id": <random library track>}`` (the whole song), and
- ``audio``: ``GET /api/segments/<random segment>/audio`` (a phrase as WAV),

at 1, 4 and 16 concurrent clients: p50/p95 latency, requests per second, errors (the
server remembers match results until the library changes; ``--match-cache 0`` measures every
match computed afresh). Then the
16-client round again with a slow upload in flight (a 3-minute WAV posted to ``/api/match``
over and over): its p95 must stay within 2x of the round without it. Finally the page's first
load: bytes and time of ``/`` and its assets.

Every request goes to 127.0.0.1 only; each round is bounded in time and count.

Usage::

    .venv/bin/python bench/serve.py                   # 200 tracks, 8 s per round
    .venv/bin/python bench/serve.py --tracks 40 --seconds 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT_DIR = ROOT / "out"
MAX_REQUESTS_PER_ROUND = 20_000
TARGET_MATCH_P95_16 = 0.300
TARGET_PAGE_SECONDS, TARGET_PAGE_BYTES = 1.0, 500_000


def build_library(n: int, workers: int) -> tuple[str, Path]:
    from cratedig import workflows
    from cratedig.compute import make_executor
    from cratedig.library.db import open_library
    from cratedig.synth import demo_library

    cache = ROOT / ".cache" / f"serve-{n}"
    music = cache / "music"
    if not (music / "truth.json").exists():
        print(f"synthesizing {n} songs into {music} ...", flush=True)
        demo_library(music, n=n, seed=2026, seconds=20.0)
    url = f"sqlite:///{cache / 'library.db'}"
    t = time.perf_counter()
    with open_library(url) as lib, make_executor(workers, None) as ex:
        u = workflows.update_library(lib, music, executor=ex)
    print(
        f"library: {u.ingest.analysed} analysed, {u.ingest.unchanged} unchanged, "
        f"{u.segments} segments ({time.perf_counter() - t:.1f} s)",
        flush=True,
    )
    return url, music


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(method: str, url: str, body: bytes | None = None, ctype: str | None = None) -> bytes:
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def run_round(
    base: str, kind: str, clients: int, seconds: float, tracks: list[str], segments: list[str]
) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            with lock:
                if len(lat) + len(errors) >= MAX_REQUESTS_PER_ROUND:
                    return
            t = time.perf_counter()
            try:
                if kind == "match":
                    body = json.dumps({"track_id": rng.choice(tracks), "top": 5}).encode()
                    request("POST", base + "/api/match", body, "application/json")
                else:
                    request("GET", f"{base}/api/segments/{rng.choice(segments)}/audio")
                with lock:
                    lat.append(time.perf_counter() - t)
            except (urllib.error.URLError, OSError) as exc:
                with lock:
                    errors.append(str(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    q = np.quantile(lat, [0.5, 0.95]) if lat else [float("nan")] * 2
    return {
        "kind": kind,
        "clients": clients,
        "requests": len(lat),
        "errors": len(errors),
        "error_examples": errors[:3],
        "p50_ms": round(1000 * float(q[0]), 1),
        "p95_ms": round(1000 * float(q[1]), 1),
        "rps": round(len(lat) / wall, 1),
    }


def slow_uploads(base: str, stop: threading.Event, sent: list[float]) -> None:
    """Post a 3-minute WAV to /api/match again and again until ``stop``."""
    import soundfile as sf

    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    song = synthesize_song(tempo=120.0, key=Key.parse("A minor"), bars=90, sr=22050, seed=5)
    buf = io.BytesIO()
    sf.write(buf, song.audio, 22050, format="WAV")
    data = buf.getvalue()
    boundary = "cratedigbench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    while not stop.is_set():
        t = time.perf_counter()
        try:
            request("POST", base + "/api/match", body, f"multipart/form-data; boundary={boundary}")
            sent.append(time.perf_counter() - t)
        except (urllib.error.URLError, OSError):
            sent.append(float("nan"))


def page_load(base: str) -> dict[str, Any]:
    t = time.perf_counter()
    total = len(request("GET", base + "/"))
    for asset in ("/static/app.js", "/static/style.css"):
        total += len(request("GET", base + asset))
    total += len(request("GET", base + "/api/config"))
    total += len(request("GET", base + "/api/tracks?limit=1000"))
    return {"seconds": round(time.perf_counter() - t, 3), "bytes": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each round")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--workers", type=int, default=2, help="ingest processes")
    ap.add_argument(
        "--match-cache",
        type=int,
        default=None,
        help="the server's match result cache (0: off, every match computed; default: on)",
    )
    args = ap.parse_args()

    url, music = build_library(args.tracks, args.workers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "cratedig.cli", "serve", "--db", url, "--music", str(music),
           "--port", str(port)]  # fmt: skip
    env = dict(os.environ)
    if args.match_cache is not None:
        env["CRATEDIG_MATCH_CACHE"] = str(args.match_cache)
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request("GET", base + "/readyz")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"server did not start: {server.stderr.read() if server.stderr else ''}"
                    ) from None
                time.sleep(0.2)
        tracks_json = json.loads(request("GET", base + "/api/tracks?limit=1000"))
        tracks = [t["track_id"] for t in tracks_json["tracks"]]
        segments = [
            f"{t['track_id']}_{i}" for t in tracks_json["tracks"] for i in range(t["segments"])
        ]
        print(f"{len(tracks)} tracks, {len(segments)} segments served on {base}", flush=True)
        # Warm up: first requests load code paths and caches.
        run_round(base, "match", 2, 1.0, tracks, segments)
        run_round(base, "audio", 2, 1.0, tracks, segments)

        rows = []
        for kind in ("match", "audio"):
            for c in args.clients:
                r = run_round(base, kind, c, args.seconds, tracks, segments)
                rows.append(r)
                print(json.dumps(r), flush=True)
        stop = threading.Event()
        sent: list[float] = []
        up = threading.Thread(target=slow_uploads, args=(base, stop, sent))
        up.start()
        time.sleep(1.0)
        loaded = []
        for kind in ("match", "audio"):
            r = run_round(base, kind, max(args.clients), args.seconds, tracks, segments)
            r["with_upload"] = True
            loaded.append(r)
            print(json.dumps(r), flush=True)
        stop.set()
        up.join(300)
        page = page_load(base)
    finally:
        server.terminate()
        server.wait(30)

    print()
    print(
        f"{'request':8} {'clients':>7} {'n':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7}"
    )
    for r in rows + loaded:
        tag = " +upload" if r.get("with_upload") else ""
        print(f"{r['kind']:8} {r['clients']:>7} {r['requests']:>6} {r['errors']:>4} "
              f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['rps']:>7}{tag}")  # fmt: skip
    base16 = {r["kind"]: r for r in rows if r["clients"] == max(args.clients)}
    ratios = {r["kind"]: round(r["p95_ms"] / base16[r["kind"]]["p95_ms"], 2) for r in loaded}
    uploads = [s for s in sent if s == s]
    print(f"slow uploads completed during the loaded rounds: {len(uploads)} "
          f"(median {statistics.median(uploads) if uploads else float('nan'):.2f} s each)")  # fmt: skip
    print(f"p95 with an upload in flight / without: {ratios} (goal <= 2)")
    m16 = base16["match"]["p95_ms"] / 1000
    print(f"match p95 at {max(args.clients)} clients: {1000 * m16:.0f} ms "
          f"(goal < {1000 * TARGET_MATCH_P95_16:.0f} ms: {'met' if m16 < TARGET_MATCH_P95_16 else 'NOT met'})")  # fmt: skip
    ok_page = page["seconds"] < TARGET_PAGE_SECONDS and page["bytes"] < TARGET_PAGE_BYTES
    print(f"page first load: {page['bytes'] / 1000:.1f} kB in {1000 * page['seconds']:.0f} ms "
          f"(goal < 1 s and < 500 kB: {'met' if ok_page else 'NOT met'})")  # fmt: skip
    errors = sum(r["errors"] for r in rows + loaded)
    print(f"errors: {errors}")
    OUT_DIR.mkdir(exist_ok=True)
    name = "serve.json" if args.match_cache is None else f"serve-cache{args.match_cache}.json"
    (OUT_DIR / name).write_text(json.dumps({
        "tracks": len(tracks), "segments": len(segments), "rounds": rows, "with_upload": loaded,
        "upload_seconds": uploads, "p95_ratio_with_upload": ratios, "page": page,
        "cpus": os.cpu_count(), "match_cache": args.match_cache,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
