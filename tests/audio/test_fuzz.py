"""Fuzz: damaged files of every native format through decode and analysis.

A corpus of mutated files (truncated, bit-flipped, header bytes overwritten, chunks spliced)
made from one short synthesized song in WAV, FLAC, MP3 and OGG is decoded and analysed in a
child process under a memory limit. Every input must end in an analysis or a one-line
:class:`~cratedig.errors.AudioError`: no other exception, no hang past the time limit, no memory
blow-up (the child's address space is capped).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest
import soundfile as sf

from cratedig.synth import synthesize_song
from cratedig.theory import Key

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", None),
           "ogg": ("OGG", "VORBIS")}  # fmt: skip
MUTATIONS_PER_FORMAT = 12
#: Seconds for one input (decode + analysis of an 8-second file takes well under one).
TIME_LIMIT = 20.0
#: Address-space cap of the child: far above what an 8-second file needs.
MEMORY_LIMIT = 3 << 30

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.errors import AudioError
    for path in sys.argv[1:]:
        t0 = time.perf_counter()
        try:
            analyze_file(path)
            outcome = "ok"
        except AudioError as exc:
            assert "\\n" not in exc.reason, exc.reason
            outcome = "error"
        print(json.dumps({{"path": path, "outcome": outcome,
                           "seconds": time.perf_counter() - t0}}), flush=True)
    """
)


def _mutations(data: bytes, rng: random.Random) -> list[bytes]:
    n = len(data)
    out = []
    for frac in (0.003, 0.05, 0.5, 0.97):  # truncated: inside the header, early, half, near the end
        out.append(data[: max(1, int(n * frac))])
    for count in (1, 10, 200):  # bit flips anywhere
        b = bytearray(data)
        for _ in range(count):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    for _ in range(3):  # header bytes overwritten with random values
        b = bytearray(data)
        i = rng.randrange(min(64, n))
        b[i : i + 4] = bytes(rng.randrange(256) for _ in range(4))
        out.append(bytes(b))
    a, c = sorted(rng.sample(range(n), 2))  # a chunk repeated, a chunk removed
    out.append(data[:c] + data[a:c] + data[c:])
    out.append(data[:a] + data[c:])
    assert len(out) == MUTATIONS_PER_FORMAT
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    song = synthesize_song(tempo=126.0, key=Key.parse("D minor"), bars=4, sr=22050, seed=3)
    rng = random.Random(20261126)
    files = []
    for ext, (fmt, subtype) in FORMATS.items():
        src = d / f"song.{ext}"
        sf.write(src, song.audio, 22050, format=fmt, subtype=subtype)
        for i, mutated in enumerate(_mutations(src.read_bytes(), rng)):
            p = d / f"m{i:02d}.{ext}"
            p.write_bytes(mutated)
            files.append(str(p))
    return files


def test_mutated_files_never_crash_hang_or_blow_up(corpus):
    code = CHILD.format(mem=MEMORY_LIMIT)
    proc = subprocess.run(
        [sys.executable, "-c", code, *corpus],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT * len(corpus),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in rows] == corpus  # every input tried, in order
    assert len(rows) == len(FORMATS) * MUTATIONS_PER_FORMAT == 48
    slow = [r for r in rows if r["seconds"] > TIME_LIMIT]
    assert not slow, slow
    assert "Traceback" not in proc.stderr
    # libmpg123 and libsndfile must not write to the terminal either.
    assert "Note:" not in proc.stderr and "[src/" not in proc.stderr, proc.stderr[-2000:]
