"""Does the fingerprint tell the same recording in another file, and nothing else?
(``cratedig.analysis.fingerprint``; analysis v31.)

For each file of a set of music no one here made, copies a DJ's library holds beside it:

- **the same recording**: MP3 at 128 kb/s, AAC at 96 kb/s, an 8 kHz WAV, the file 9 dB quieter
  through a 120 Hz high-pass, its first 7.3 s cut (an edit; Vorbis);
- **not the same** (partners the matcher may suggest): Rubber Band copies pitched +2 and -3
  semitones and stretched x1.06, and, reported apart, +1 semitone (the border).

Each copy is compared with its file (BER where they agree best, and whether
:func:`~cratedig.analysis.fingerprint.same_recording` says so), and every two files of the set
with each other (the lowest BER of any two, and which pairs read as the same recording: the
set's own duplicates). Speed: the fingerprint's share of the analysis time, and a comparison's
cost.

Sets: ``real`` (``bench/realset.py``, both splits: the constants were chosen on its first 40
files' copies and its pairs) and ``modules`` (``bench/moduleset.py``, 102 tracker modules:
never looked at before the constants were set).

Usage::

    .venv/bin/python bench/fingerprint.py --set real       # ~4 min
    .venv/bin/python bench/fingerprint.py --set modules
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cratedig.analysis.fingerprint import (  # noqa: E402
    SAME_MAX_BER,
    compare,
    fingerprint,
    near_ber,
    same_recording,
    sounding_seconds,
)
from cratedig.analysis.frontend import compute_frontend  # noqa: E402
from cratedig.analysis.pipeline import analyze_signal  # noqa: E402
from cratedig.audio.decode import ANALYSIS_SR, decode  # noqa: E402

SAME = {
    "mp3 128k": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "aac 96k": (".m4a", ["-c:a", "aac", "-b:a", "96k"]),
    "8 kHz": (".wav", ["-ar", "8000"]),
    "-9 dB, high-pass": (".flac", ["-af", "volume=-9dB,highpass=f=120"]),
    "first 7.3 s cut": (".ogg", ["-ss", "7.3", "-c:a", "libvorbis", "-q:a", "4"]),
}
#: (semitones, stretch factor): made with Rubber Band (pedalboard).
OTHER = {"+2 st": (2.0, 1.0), "-3 st": (-3.0, 1.0), "x1.06": (0.0, 1.06), "+1 st": (1.0, 1.0)}


def files_of(name: str) -> list[Path]:
    if name == "real":
        import realset

        truth = json.loads(realset.build().read_text())
        return [realset.CACHE_ROOT / s["path"] for s in truth["songs"]]
    import moduleset

    return [moduleset.CACHE_ROOT / s["path"] for s in moduleset.load()["songs"]]


def print_of(y: np.ndarray) -> np.ndarray:
    return fingerprint(compute_frontend(y, sr=ANALYSIS_SR).mel_db)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("real", "modules"), default="real")
    p.add_argument("--copies", type=int, default=40, help="files that get copies (the first K)")
    a = p.parse_args(argv)
    from pedalboard import time_stretch

    files = files_of(a.set)
    prints: dict[str, np.ndarray] = {}
    audio_s = fp_s = 0.0
    for f in files:
        y = decode(str(f), sr=ANALYSIS_SR).samples
        t0 = time.perf_counter()
        fe = compute_frontend(y, sr=ANALYSIS_SR)
        t1 = time.perf_counter()
        prints[f.name] = fingerprint(fe.mel_db)
        fp_s += time.perf_counter() - t1
        audio_s += len(y) / ANALYSIS_SR
        del fe, t0
    # The analysis time of the same audio (a sample of files), for the fingerprint's share.
    t_an = 0.0
    sample = files[:: max(1, len(files) // 20)]
    sample_s = 0.0
    for f in sample:
        y = decode(str(f), sr=ANALYSIS_SR).samples
        t0 = time.perf_counter()
        analyze_signal(y, sr=ANALYSIS_SR)
        t_an += time.perf_counter() - t0
        sample_s += len(y) / ANALYSIS_SR
    rows: dict[str, list[tuple[float, bool]]] = {k: [] for k in [*SAME, *OTHER]}
    quick_same: list[float] = []  # cratedig duplicates' quick look at the copies of one length
    with tempfile.TemporaryDirectory() as tmp:
        for f in files[: a.copies]:
            ref = prints[f.name]
            for tag, (ext, args) in SAME.items():
                out = Path(tmp) / f"copy{ext}"
                subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(f), *args,
                                str(out)], check=True)  # fmt: skip
                b = print_of(decode(str(out), sr=ANALYSIS_SR).samples)
                rows[tag].append(
                    (compare(ref, b, min_seconds=10).ber, same_recording(ref, b) is not None)
                )
                if tag != "first 7.3 s cut":
                    quick_same.append(near_ber(ref, b, max_offset=3.0))
            y = decode(str(f), sr=ANALYSIS_SR).samples
            for tag, (st, r) in OTHER.items():
                z = time_stretch(y[None], ANALYSIS_SR, stretch_factor=r,
                                 pitch_shift_in_semitones=st)[0].astype(np.float32)  # fmt: skip
                b = print_of(z)
                rows[tag].append(
                    (compare(ref, b, min_seconds=10).ber, same_recording(ref, b) is not None)
                )
    t0 = time.perf_counter()
    pairs = []
    for x, y2 in itertools.combinations(sorted(prints), 2):
        o = compare(prints[x], prints[y2], min_seconds=10)
        pairs.append((o.ber, x, y2, same_recording(prints[x], prints[y2]) is not None))
    per_pair = (time.perf_counter() - t0) / max(1, len(pairs))
    t0 = time.perf_counter()
    quick_other = [
        near_ber(prints[x], prints[y2], max_offset=3.0) for _, x, y2, s in pairs if not s
    ]
    per_quick = (time.perf_counter() - t0) / max(1, len(quick_other))
    pairs.sort()
    print(f"set {a.set}: {len(files)} files, {audio_s / 60:.0f} min; copies of the first "
          f"{min(a.copies, len(files))}; same recording: BER <= {SAME_MAX_BER}")  # fmt: skip
    print(f"{'copy':22s} {'BER median':>10s} {'max':>6s} {'min':>6s}  read as the same")
    for tag, r in rows.items():
        b = np.array([x for x, _ in r])
        kind = "same" if tag in SAME else "other"
        print(f"{tag:22s} {np.median(b):10.3f} {b.max():6.3f} {b.min():6.3f}  "
              f"{sum(s for _, s in r)}/{len(r)} ({kind})")  # fmt: skip
    flagged = [(round(b, 3), x, y2) for b, x, y2, s in pairs if s]
    print(
        f"{len(pairs)} pairs of different files: lowest BER of the rest "
        f"{next(b for b, _, _, s in pairs if not s):.3f}; read as the same recording: {flagged}"
    )
    print(f"quick look (near_ber within 3 s, every 8th frame): copies of one length max "
          f"{max(quick_same):.3f}; different files min {min(quick_other):.3f}, "
          f"{1000 * per_quick:.2f} ms a pair")  # fmt: skip
    if a.set == "real":  # two stems of one song sharing its drums are partners, not copies
        import stemset

        stems = [s for s in stemset.load()["songs"] if s["split"] in ("dev", "heldout")]
        pair = []
        for s in stems:
            q, p = (
                print_of(decode(str(stemset.CACHE_ROOT / s[f"{k}_path"]), sr=ANALYSIS_SR).samples)
                for k in ("query", "partner")
            )
            share = 0.8 * min(sounding_seconds(q), sounding_seconds(p))
            pair.append((compare(q, p, min_seconds=share).ber, same_recording(q, p) is not None))
        bers = np.array([b for b, _ in pair])
        print(f"stemset (dev + held-out, {len(pair)} songs), lead + drums against the rest + "
              f"drums over 80 % of the shorter: BER min {bers.min():.3f}, median "
              f"{np.median(bers):.3f}; read as the same recording: {sum(s for _, s in pair)}")  # fmt: skip
    print(f"fingerprint: {1000 * fp_s / (audio_s / 60):.2f} ms a minute of audio, "
          f"{100 * (fp_s / audio_s) / (t_an / sample_s):.2f} % of the analysis; "
          f"a comparison {1000 * per_pair:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
