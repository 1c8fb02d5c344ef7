"""Ingest throughput: tracks per minute and x realtime for 1 and 2 workers, DB bytes per track.

Builds (once, cached in ``bench/out/ingest-library/``) a library of synthesized songs in mixed
formats (WAV 16-bit, FLAC 24-bit stereo, OGG Vorbis, MP3, AIFF 44.1 kHz stereo), then ingests it
from scratch into a fresh SQLite library (or a scratch database on the PostgreSQL server given
by ``--db``) once per worker count and prints one table plus the speed-up of each count over one worker.
``bench/out/ingest.json`` holds every number.

Usage::

    .venv/bin/python bench/ingest.py                       # 50 tracks of ~30 s, 1 and 2 workers
    .venv/bin/python bench/ingest.py --n 100 --workers 1 2 4
    .venv/bin/python bench/ingest.py --db "$(bash .ci/postgres.sh)"   # on PostgreSQL

Each pass is a fresh ``cratedig ingest --json`` process, timed from start to exit as a user
would: imports, scan, worker start-up, decode, analysis and the database writes (one
transaction per track); the median of ``--repeats`` interleaved passes is
reported. The "CPU capacity" column says how many cores' worth of throughput that many busy
processes really get on this machine (shared vCPUs often give far less than their count): the
speed-up cannot exceed it.

Threads: ``--threads default`` runs ``cratedig ingest`` in the environment users have (none of
the math libraries' thread variables set): since stop 36 each worker process holds its
libraries to one thread itself (``cratedig.compute.executors.one_thread_each``).
``--threads per-core`` sets every such variable to the CPU count, which a worker respects: the
libraries' own default, what every worker ran before stop 36 (N workers, N x N threads). Both
are run by default, interleaved, and shown side by side.
"""

import argparse  # noqa: E402
import json  # noqa: E402
import os
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cratedig.fileio import write_sound  # noqa: E402
from cratedig.library import repository as repo  # noqa: E402
from cratedig.library.db import open_library, resolve_db_url  # noqa: E402
from cratedig.synth import synthesize_song  # noqa: E402
from cratedig.theory import Key  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
# (suffix, libsndfile format, subtype, sample rate, channels)
FORMATS = [
    (".wav", "WAV", "PCM_16", 44100, 2),
    (".flac", "FLAC", "PCM_24", 44100, 2),
    (".ogg", "OGG", "VORBIS", 44100, 2),
    (".mp3", "MP3", "MPEG_LAYER_III", 44100, 2),
    (".aiff", "AIFF", "PCM_16", 44100, 1),
]

console = Console(width=max(110, shutil.get_terminal_size().columns))


def build_library(folder: Path, n: int, seconds: float, seed: int) -> list[dict]:
    """Write ``n`` songs of about ``seconds`` each, cycling through :data:`FORMATS`."""
    spec_file = folder / "library.json"
    spec = {"n": n, "seconds": seconds, "seed": seed, "formats": [f[0] for f in FORMATS]}
    if spec_file.exists() and json.loads(spec_file.read_text()).get("spec") == spec:
        return json.loads(spec_file.read_text())["tracks"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tracks = []
    with console.status(f"synthesizing {n} songs into {folder}") as status:
        for i in range(n):
            suffix, fmt, subtype, sr, channels = FORMATS[i % len(FORMATS)]
            tempo = float(np.round(rng.uniform(85, 175)))
            key = Key(int(rng.integers(12)), ("major", "minor")[i % 2])
            bars = max(8, int(round(seconds / (4 * 60 / tempo))))
            song = synthesize_song(tempo=tempo, key=key, bars=bars, sr=sr, seed=seed * 1000 + i)
            x = song.audio
            if channels == 2:  # a stereo image with differing channels
                x = np.stack([x, np.roll(x, 7) * 0.8], axis=1)
            path = folder / f"{i // 10:02d}" / f"track_{i:03d}{suffix}"
            path.parent.mkdir(exist_ok=True)
            write_sound(path, x, sr, format=fmt, subtype=subtype)  # OGG: a block at a time
            tracks.append({"path": str(path), "seconds": song.duration, "format": fmt})
            status.update(f"synthesizing songs into {folder}: {i + 1}/{n}")
    spec_file.write_text(json.dumps({"spec": spec, "tracks": tracks}, indent=1))
    return tracks


@contextmanager
def fresh_db(server: str | None, workdir: Path) -> Iterator[str]:
    """A new empty database: a SQLite file in ``workdir``, or a database created on the
    PostgreSQL ``server`` for this pass and dropped afterwards."""
    if server is None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{workdir / 'library.db'}"
        return
    from sqlalchemy import create_engine, make_url, text

    admin = make_url(resolve_db_url(server))
    name = f"cratedig_bench_{os.getpid()}_{workdir.name}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _spin(_: int) -> float:
    """A fixed amount of pure-Python CPU work; returns its wall time."""
    t0 = time.perf_counter()
    x = 0
    for i in range(6_000_000):
        x += i * i % 7
    return time.perf_counter() - t0


def cpu_capacity(workers: int) -> float:
    """How many cores' worth of throughput ``workers`` processes really get here (ideal:
    ``workers``). Shared or throttled vCPUs give less, and no ingest can beat this."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(abs, range(4 * workers), chunksize=1)  # wait until every worker is up
        solo, together = [], []
        for _ in range(3):  # shared machines are noisy: best of three each
            solo.append(_spin(0))
            t0 = time.perf_counter()
            pool.map(_spin, range(workers), chunksize=1)
            together.append(time.perf_counter() - t0)
    return workers * min(solo) / min(together)


def thread_env(kind: str) -> dict[str, str]:
    """The environment of an ingest pass: ``default`` (no thread variable set) or ``per-core``
    (each set to the CPU count)."""
    from cratedig.compute.executors import THREAD_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if kind == "per-core":
        env.update({k: str(os.cpu_count() or 1) for k in THREAD_VARIABLES})
    return env


def run_once(folder: Path, db_url: str, workers: int, threads: str = "default") -> dict:
    """One ``cratedig ingest`` from scratch, as a user runs it: a fresh process (so imports and
    worker start-up count, for one worker and for N alike)."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "cratedig.cli",
        "ingest",
        str(folder),
        "--db",
        db_url,
        "--workers",
        str(workers),
        "--json",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=thread_env(threads))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if report["failed"]:
        raise SystemExit(f"bench library has failures: {report['failed'][:3]}")
    with open_library(db_url) as lib:
        with lib.reader() as s:
            stats = repo.library_stats(s)
        size = lib.size_bytes()
    return {
        "workers": workers,
        "threads": threads,
        "tracks": report["analysed"],
        "audio_seconds": report["audio_seconds"],
        "wall_seconds": wall,
        "ingest_seconds": report["elapsed"],  # inside the process, after start-up
        "tracks_per_minute": 60 * report["analysed"] / wall,
        "realtime_factor": report["audio_seconds"] / wall,
        "segments": stats.segments,
        "db_bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50, help="tracks in the generated library")
    ap.add_argument("--seconds", type=float, default=30.0, help="approximate length of each")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--db", default=None, help="PostgreSQL server URL (a scratch database is made there)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="passes per worker count (median)")
    ap.add_argument(
        "--threads", nargs="+", choices=("default", "per-core"), default=["default", "per-core"],
        help="math-library threads: as users run it, or a thread per core in every process",
    )  # fmt: skip
    args = ap.parse_args()

    library = OUT_DIR / "ingest-library"
    tracks = build_library(library, args.n, args.seconds, args.seed)
    total_audio = sum(t["seconds"] for t in tracks)
    formats = sorted({t["format"] for t in tracks})
    console.print(
        f"{len(tracks)} tracks, {total_audio / 60:.1f} min of audio, formats {', '.join(formats)}; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    capacity = {w: cpu_capacity(w) for w in args.workers if w > 1}
    if capacity:
        console.print(
            "CPU capacity (cores' worth of throughput N busy processes get here): "
            + ", ".join(f"{w} processes -> {c:.2f}" for w, c in capacity.items())
        )
    runs: dict[tuple[str, int], list[dict]] = {
        (t, w): [] for t in args.threads for w in args.workers
    }
    with tempfile.TemporaryDirectory() as tmp:
        with fresh_db(args.db, Path(tmp) / "empty") as url, open_library(url) as lib:
            empty_size = lib.size_bytes()
        for rep in range(args.repeats):  # interleaved, so that drifts hit every count alike
            for threads, workers in runs:
                with (
                    fresh_db(args.db, Path(tmp) / f"p{rep}w{workers}{threads}") as url,
                    console.status(
                        f"ingesting with {workers} worker(s), {threads}, pass {rep + 1}"
                    ),
                ):
                    runs[threads, workers].append(run_once(library, url, workers, threads))
    # The median pass by wall time, per worker count.
    results = [
        {
            **sorted(r, key=lambda x: x["wall_seconds"])[len(r) // 2],
            "passes": len(r),
            "wall_seconds_all": [round(x["wall_seconds"], 3) for x in r],
        }
        for r in runs.values()
    ]
    for r in results:  # what each track adds (an empty PostgreSQL database alone is ~7 MB)
        r["db_bytes_empty"] = empty_size
        r["db_bytes_per_track"] = (r["db_bytes"] - empty_size) / max(r["tracks"], 1)

    base = results[0]
    table = Table(
        title=f"cratedig ingest: {len(tracks)} tracks ({args.db and 'PostgreSQL' or 'SQLite'})"
    )
    for col in (
        "threads",
        "workers",
        "tracks",
        "wall s",
        "tracks/min",
        "x realtime",
        "DB kB/track",
        f"speed-up vs {base['workers']}",
        "CPU capacity",
    ):
        table.add_column(col, justify="right")
    for r in results:
        r["speedup"] = base["wall_seconds"] / r["wall_seconds"]
        r["cpu_capacity"] = capacity.get(r["workers"], 1.0)
        table.add_row(
            r["threads"],
            str(r["workers"]),
            str(r["tracks"]),
            f"{r['wall_seconds']:.1f}",
            f"{r['tracks_per_minute']:.0f}",
            f"{r['realtime_factor']:.0f}",
            f"{r['db_bytes_per_track'] / 1e3:.1f}",
            f"{r['speedup']:.2f}x",
            f"{r['cpu_capacity']:.2f}",
        )
    console.print(table)
    OUT_DIR.mkdir(exist_ok=True)
    out = {
        "library": {"tracks": len(tracks), "audio_seconds": total_audio, "formats": formats},
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "backend": "postgresql" if args.db else "sqlite",
        "results": results,
    }
    (OUT_DIR / "ingest.json").write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {OUT_DIR / 'ingest.json'}")


if __name__ == "__main__":
    main()
