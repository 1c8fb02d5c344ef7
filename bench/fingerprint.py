"""Does the fingerprint tell the same recording in another file, and nothing else?
(``cratedig.analysis.fingerprint``; analysis v31.)

For each file of a set of music no one here made, copies a DJ's library holds beside it:

- **the same recording**: MP3 at 128 kb/s, AAC at 96 kb/s, an 8 kHz WAV, the file 9 dB quieter
  through a 120 Hz high-pass, its first 7.3 s cut (an edit; Vorbis);
- **edits of it**, as MP3s at 128 kb/s (a DJ's FLAC of the extended mix and a store's MP3 of
  the radio edit): a quarter cut out of the middle (a radio edit), a fifth played twice (an
  extended mix), the two halves swapped (a re-edit), and 16 s of it (a loop cut from the song),
  the joins crossfaded over 10 ms; each is found piece by piece
  (:func:`~cratedig.analysis.fingerprint.edit_overlap`), and the share of the shorter file it
  covers is reported;
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

``--scale N``: how ``cratedig duplicates`` finds edits in a library of N tracks
(:func:`~cratedig.library.duplicates.find_edits`). The set's fingerprints, each tiled to a
club track's length (N(330 s, 90 s)), stand for N tracks: the k-th stand-in of each file maps
its frame values through the k-th random permutation (its structure stays: a loop's frames
still repeat, as in the music; the stand-ins of one file are unrelated music), and 20 radio edits (a quarter of the middle cut out, bits flipped
as an MP3 flips them) and 20 extended mixes of tracks are added. Reported: the time of the
look-up and of the whole search, the pairs compared, and how many planted edits are found.

Usage::

    .venv/bin/python bench/fingerprint.py --set real       # ~5 min
    .venv/bin/python bench/fingerprint.py --set modules
    .venv/bin/python bench/fingerprint.py --set real --scale 10000
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cratedig.analysis.fingerprint import (  # noqa: E402
    SAME_MAX_BER,
    compare,
    edit_overlap,
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
EDITS = ("radio edit", "extended", "halves swapped", "16 s loop")


def _joined(parts: list[np.ndarray], sr: int) -> np.ndarray:
    """``parts`` one after another, each join crossfaded over 10 ms."""
    out, n = parts[0], int(0.01 * sr)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    for p in parts[1:]:
        out = np.concatenate([out[:-n], out[-n:] * (1 - ramp) + p[:n] * ramp, p[n:]])
    return out


def edits_of(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The edits of ``EDITS`` made of ``y``."""
    n = len(y)
    return {
        "radio edit": _joined([y[: int(0.35 * n)], y[int(0.6 * n) :]], sr),
        "extended": _joined([y[: int(0.6 * n)], y[int(0.4 * n) :]], sr),
        "halves swapped": _joined([y[n // 2 :], y[: n // 2]], sr),
        "16 s loop": y[int(0.3 * n) : int(0.3 * n) + 16 * sr],
    }


def files_of(name: str) -> list[Path]:
    if name == "real":
        import realset

        truth = json.loads(realset.build().read_text())
        return [realset.CACHE_ROOT / s["path"] for s in truth["songs"]]
    import moduleset

    return [moduleset.CACHE_ROOT / s["path"] for s in moduleset.load()["songs"]]


def print_of(y: np.ndarray) -> np.ndarray:
    return fingerprint(compute_frontend(y, sr=ANALYSIS_SR).mel_db)


def scale(prints: list[np.ndarray], n: int, seed: int = 0) -> None:
    """The edit search of ``cratedig duplicates`` on ``n`` stand-in tracks (module docstring)."""
    from cratedig.analysis.fingerprint import FPS
    from cratedig.library.duplicates import edit_candidates, find_edits

    rng = np.random.default_rng(seed)
    on = np.uint16(1 << 15)
    tracks = []
    perms: list[np.ndarray] = []
    for i in range(n):
        src = prints[i % len(prints)]
        frames = int(np.clip(rng.normal(330.0, 90.0), 60.0, 900.0) * FPS)
        x = np.tile(src, -(-frames // max(len(src), 1)))[:frames]
        # this track's own frames: the k-th stand-in of each source maps frame values through
        # the k-th random permutation (equal frames stay equal; another stand-in of the source
        # is other music; the sources of one permutation share common values as music does)
        k = i // len(prints)
        while len(perms) <= k:
            perms.append(rng.permutation(1 << 15).astype(np.uint16))
        x = perms[k][x & 0x7FFF] | (x & on)
        tracks.append({"track_id": f"t{i}", "path": f"/music/{i:05d}.flac", "format": "FLAC",
                       "sample_rate": 44100, "duration": len(x) / FPS, "tempo": 124.0,
                       "quality": {}, "fingerprint": x})  # fmt: skip
    planted = set()
    for k, i in enumerate(rng.choice(n, size=40, replace=False)):
        x = tracks[i]["fingerprint"]
        m = len(x)
        if k < 20:  # a radio edit, as an MP3: one bit in 25 flipped
            y = np.r_[x[: int(0.4 * m)], x[int(0.65 * m) :]]
            flips = (rng.random((len(y), 15)) < 0.04) * (1 << np.arange(15))
            y = (y ^ flips.sum(axis=1).astype(np.uint16)) | (y & on)
        else:  # an extended mix: a fifth played twice
            y = np.r_[x[: int(0.6 * m)], x[int(0.4 * m) :]]
        j = len(tracks)
        tracks.append({**tracks[i], "track_id": f"t{j}", "path": f"/music/{j:05d}.mp3",
                       "duration": len(y) / FPS, "fingerprint": y})  # fmt: skip
        planted.add((f"t{i}", f"t{j}"))
    t0 = time.perf_counter()
    pairs = edit_candidates([t["fingerprint"] for t in tracks])
    t1 = time.perf_counter()
    edits, compared = find_edits(tracks)
    t2 = time.perf_counter()
    found = {tuple(sorted((e.shorter.track_id, e.longer.track_id), key=lambda t: int(t[1:])))
             for e in edits}  # fmt: skip
    hours = sum(t["duration"] for t in tracks) / 3600
    names = [f"{i % len(prints)}" for i in range(n)]
    other = collections.Counter(
        tuple(sorted({names[int(t[1:])] for t in pair if int(t[1:]) < n}))
        for pair in found - planted
    )
    print(f"  other pairs by source file indices: {dict(other)}")
    from cratedig.analysis.fingerprint import compare, edit_overlap

    cand = {(tracks[i]["track_id"], tracks[j]["track_id"]) for i, j in pairs}
    for a, b in sorted(planted - found):
        x, y = (tracks[int(t[1:])]["fingerprint"] for t in (a, b))
        print(f"  missed: {a} ({len(x) / FPS:.0f} s) / {b} ({len(y) / FPS:.0f} s): compared "
              f"{(a, b) in cand}; {compare(x, y)}; found piece by piece {edit_overlap(x, y)}")  # fmt: skip
    print(f"scale: {len(tracks)} tracks ({hours:.0f} h), 40 planted edits; look-up "
          f"{t1 - t0:.1f} s, {len(pairs)} pairs to compare; the whole search {t2 - t1:.1f} s, "
          f"{compared} compared; planted edits found {len(found & planted)}/40, other pairs "
          f"read as edits {len(found - planted)}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("real", "modules"), default="real")
    p.add_argument("--copies", type=int, default=40, help="files that get copies (the first K)")
    p.add_argument("--scale", type=int, default=0, help="only the edit search on N tracks")
    a = p.parse_args(argv)
    from pedalboard import time_stretch

    files = files_of(a.set)
    if a.scale:
        scale([print_of(decode(str(f), sr=ANALYSIS_SR).samples) for f in files], a.scale)
        return 0
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
    rows: dict[str, list[tuple[float, bool]]] = {k: [] for k in [*SAME, *EDITS, *OTHER]}
    shares: dict[str, list[float]] = {k: [] for k in [*EDITS, *OTHER]}
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
            for tag, z in edits_of(y, ANALYSIS_SR).items():
                wav, out = Path(tmp) / "edit.wav", Path(tmp) / "edit.mp3"
                soundfile.write(wav, z, ANALYSIS_SR)
                subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a",
                                "libmp3lame", "-b:a", "128k", str(out)], check=True)  # fmt: skip
                b = print_of(decode(str(out), sr=ANALYSIS_SR).samples)
                o, share = edit_overlap(ref, b)
                rows[tag].append((o.ber, same_recording(ref, b) is not None))
                shares[tag].append(share)
            for tag, (st, r) in OTHER.items():
                z = time_stretch(y[None], ANALYSIS_SR, stretch_factor=r,
                                 pitch_shift_in_semitones=st)[0].astype(np.float32)  # fmt: skip
                b = print_of(z)
                rows[tag].append(
                    (compare(ref, b, min_seconds=10).ber, same_recording(ref, b) is not None)
                )
                shares[tag].append(edit_overlap(ref, b)[1])
    t0 = time.perf_counter()
    pairs = []
    for x, y2 in itertools.combinations(sorted(prints), 2):
        o = compare(prints[x], prints[y2], min_seconds=10)
        pairs.append((o.ber, x, y2, same_recording(prints[x], prints[y2]) is not None))
    per_pair = (time.perf_counter() - t0) / max(1, len(pairs))
    t0 = time.perf_counter()
    pair_shares = sorted(
        (edit_overlap(prints[x], prints[y2])[1], x, y2) for _, x, y2, s in pairs if not s
    )
    per_edit = (time.perf_counter() - t0) / max(1, len(pair_shares))
    t0 = time.perf_counter()
    quick_other = [
        near_ber(prints[x], prints[y2], max_offset=3.0) for _, x, y2, s in pairs if not s
    ]
    per_quick = (time.perf_counter() - t0) / max(1, len(quick_other))
    pairs.sort()
    print(f"set {a.set}: {len(files)} files, {audio_s / 60:.0f} min; copies of the first "
          f"{min(a.copies, len(files))}; same recording: BER <= {SAME_MAX_BER}")  # fmt: skip
    print(f"{'copy':22s} {'BER median':>10s} {'max':>6s} {'min':>6s}  read as the same"
          f"   share found piece by piece: min / median / max")  # fmt: skip
    for tag, r in rows.items():
        b = np.array([x for x, _ in r])
        kind = "other" if tag in OTHER else "same"
        sh = np.array(shares.get(tag) or [np.nan])
        found = f"   {sh.min():.2f} / {np.median(sh):.2f} / {sh.max():.2f}" if tag in shares else ""
        print(f"{tag:22s} {np.median(b):10.3f} {b.max():6.3f} {b.min():6.3f}  "
              f"{sum(s for _, s in r)}/{len(r)} ({kind}){found}")  # fmt: skip
    flagged = [(round(b, 3), x, y2) for b, x, y2, s in pairs if s]
    print(
        f"{len(pairs)} pairs of different files: lowest BER of the rest "
        f"{next(b for b, _, _, s in pairs if not s):.3f}; read as the same recording: {flagged}"
    )
    top = pair_shares[-1]
    print(f"  of the rest, found piece by piece: largest share {top[0]:.2f} ({top[1]} / "
          f"{top[2]}), {sum(s >= 0.1 for s, _, _ in pair_shares)} pairs at 0.1 or more; "
          f"{1000 * per_edit:.2f} ms a pair")  # fmt: skip
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
            pair.append(
                (
                    compare(q, p, min_seconds=share).ber,
                    same_recording(q, p) is not None,
                    edit_overlap(q, p)[1],
                )
            )
        bers = np.array([b for b, _, _ in pair])
        sh = np.array([x for _, _, x in pair])
        print(f"stemset (dev + held-out, {len(pair)} songs), lead + drums against the rest + "
              f"drums over 80 % of the shorter: BER min {bers.min():.3f}, median "
              f"{np.median(bers):.3f}; read as the same recording: {sum(s for _, s, _ in pair)}; "
              f"found piece by piece: share median {np.median(sh):.2f}, 95th percentile "
              f"{np.percentile(sh, 95):.2f}, max {sh.max():.2f}")  # fmt: skip
    print(f"fingerprint: {1000 * fp_s / (audio_s / 60):.2f} ms a minute of audio, "
          f"{100 * (fp_s / audio_s) / (t_an / sample_s):.2f} % of the analysis; "
          f"a comparison {1000 * per_pair:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
