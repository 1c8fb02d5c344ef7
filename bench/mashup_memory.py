"""Peak memory (max RSS) of ``cratedig mashup`` against the length of the song.

Synthesizes a small library (four 32-bar partner songs, 44.1 kHz stereo) and query songs of
the given lengths (a 64-bar song at 124 BPM tiled bar-exactly to length), ingests them all into
a fresh SQLite library, then runs ``cratedig mashup <track id> -o mix.wav`` in a child process
per song and reads the child's peak resident set size (``wait4``'s ``ru_maxrss``). The query is
given by track id, so the figure is the render's (no analysis of the query).

Usage::

    .venv/bin/python bench/mashup_memory.py                  # 1, 3 and 9 minute songs
    .venv/bin/python bench/mashup_memory.py --minutes 1 5 20 --keep /tmp/mashup-bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100


def _stereo(y: np.ndarray) -> np.ndarray:
    return np.stack([y, 0.8 * y], axis=1).astype(np.float32)


def build(folder: Path, minutes: list[float]) -> dict[float, Path]:
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    music = folder / "music"
    music.mkdir(parents=True, exist_ok=True)
    for i, (tempo, key) in enumerate(
        [(122.0, "A minor"), (126.0, "C major"), (124.0, "E minor"), (128.0, "G major")]
    ):
        p = music / f"partner{i}.wav"
        if not p.exists():
            s = synthesize_song(tempo=tempo, key=Key.parse(key), bars=32, sr=SR, seed=10 + i)
            sf.write(p, _stereo(s.audio), SR, subtype="PCM_16")
    base = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=64, sr=SR, seed=1)
    bar = int(round(4 * 60.0 / 124.0 * SR))
    block = base.audio[: 64 * bar]
    out = {}
    for m in minutes:
        p = music / f"query-{m:g}min.wav"
        if not p.exists():
            n = int(m * 60 * SR) // bar * bar
            y = np.tile(block, n // len(block) + 1)[:n]
            sf.write(p, _stereo(y), SR, subtype="PCM_16")
        out[m] = p
    return out


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    assert proc.stderr is not None
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(proc.stderr.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024.0, elapsed, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 9.0])
    ap.add_argument("--keep", type=Path, help="Work folder to keep (default: a temp folder).")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cratedig-mashup-bench-"))
    queries = build(folder, args.minutes)
    db = folder / "library.db"
    cli = [sys.executable, "-m", "cratedig.cli"]
    subprocess.run(
        [*cli, "ingest", str(folder / "music"), "--db", str(db), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from cratedig.analysis.pipeline import track_id_from_hash
    from cratedig.audio.decode import decode

    rows = []
    for m, path in queries.items():
        tid = track_id_from_hash(decode(path, max_duration=1e9).content_hash)
        rss, secs, code = peak_rss_mb(
            [*cli, "mashup", tid, "-o", str(folder / f"mix-{m:g}.wav"), "--db", str(db), "--json"]
        )
        rows.append({"minutes": m, "peak_rss_mb": round(rss, 1), "seconds": round(secs, 1),
                     "exit": code})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["minutes"] - a["minutes"]) * 60)
        print(json.dumps({"mb_per_second_of_song": round(slope, 2), "folder": str(folder)}))


if __name__ == "__main__":
    main()
