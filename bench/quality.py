"""Fake-lossless detector: recall on lossy transcodes, false positives on genuine lossless files.

Genuine lossless sources are rendered from MIDI (the held-out truth set's composer,
``bench/truthset.py``) with the FluidSynth CLI at 44.1 kHz stereo, with two soundfonts from
Debian packages (``fluid-soundfont-gm``: FluidR3_GM.sf2; ``musescore-general-soundfont-small``:
MuseScore_General_Lite.sf3), and stored as 16-bit FLAC. Each source is encoded with ffmpeg to
MP3 at 128, 192 and 320 kbps (libmp3lame, CBR) and AAC at 128 and 256 kbps (ffmpeg's native
encoder), then decoded back to FLAC: those are the fakes. Every FLAC goes through
:func:`cratedig.analysis.quality.assess_quality` (decode + quality only).

Usage::

    .venv/bin/python bench/quality.py --n 12 --seed 7 [--sources DIR]

``--sources DIR`` adds every lossless file (FLAC/WAV/AIFF) found under DIR as a genuine source:
``--n 0 --sources bench/.cache/realset/songs`` (after ``bench/realset.py``) measures on the real
set's lossless-stored renders of human-made music from Debian packages (Hydrogen drum songs,
MuseScore scores, tracker modules through libopenmpt). Prints a table and writes
``bench/out/quality.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
)
CODECS = {
    "mp3_128": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "mp3_192": ["-c:a", "libmp3lame", "-b:a", "192k"],
    "mp3_320": ["-c:a", "libmp3lame", "-b:a", "320k"],
    "aac_128": ["-c:a", "aac", "-b:a", "128k"],
    "aac_256": ["-c:a", "aac", "-b:a", "256k"],
}
EXT = {"mp3": "mp3", "aac": "m4a"}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True)


def render_source(args: tuple[int, int, Path]) -> Path:
    """Compose song ``index`` and render it with soundfont ``font`` to a 16-bit FLAC."""
    import soundfile as sf

    import truthset

    seed, index, out_dir = args
    spec = truthset.draw_spec(seed, index)
    font = SOUNDFONTS[index % len(SOUNDFONTS)]
    out = out_dir / f"src_{index:02d}.flac"
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "s.mid", Path(tmp) / "s.wav"
        truthset.compose(spec).write(str(midi))
        subprocess.run(
            ["fluidsynth", "-ni", "-g", "0.6", "-r", "44100", "-F", str(wav), str(font), str(midi)],
            check=True,
            capture_output=True,
        )
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        y *= 10 ** (-1.0 / 20) / max(float(np.abs(y).max()), 1e-9)
        sf.write(str(out), y, sr, subtype="PCM_16")
    return out


def transcode(args: tuple[Path, str, Path]) -> Path:
    """``src`` through codec ``name`` and back to FLAC."""
    src, name, out_dir = args
    lossy = out_dir / f"{src.stem}.{name}.{EXT[name.split('_')[0]]}"
    back = out_dir / f"{src.stem}.{name}.flac"
    _ffmpeg("-i", str(src), *CODECS[name], str(lossy))
    _ffmpeg("-i", str(lossy), "-sample_fmt", "s16", str(back))
    lossy.unlink()
    return back


def assess(path: Path) -> dict:
    from cratedig.analysis.quality import assess_quality
    from cratedig.audio.decode import decode

    q = assess_quality(decode(path))
    return {
        "path": str(path),
        "bandwidth_hz": q["bandwidth_hz"],
        "cutoff_db": q["cutoff_db"],
        "fake_lossless": q["fake_lossless"],
        "effective": q["effective"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="MIDI songs to render")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sources", type=Path, help="folder of extra genuine lossless files")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(a.workers) as pool:
        work = Path(tmp)
        sources = list(pool.map(render_source, [(a.seed, i, work) for i in range(a.n)]))
        if a.sources:
            sources += sorted(
                p
                for p in a.sources.rglob("*")
                if p.suffix.lower() in (".flac", ".wav", ".aiff", ".aif")
            )
        fakes = list(pool.map(transcode, [(s, c, work) for s in sources for c in CODECS]))
        results = list(pool.map(assess, sources + fakes))
    genuine = results[: len(sources)]
    rows = []
    fp = sum(r["fake_lossless"] for r in genuine)
    rows.append(("genuine (false positives)", len(genuine), fp))
    per_codec = {}
    for c in CODECS:
        got = [r for r in results[len(sources) :] if f".{c}." in r["path"]]
        caught = sum(r["fake_lossless"] for r in got)
        per_codec[c] = {
            "files": len(got),
            "caught": caught,
            "recall": caught / max(len(got), 1),
            "bandwidth_hz_median": float(np.median([r["bandwidth_hz"] for r in got])),
        }
        rows.append((c, len(got), caught))
    fakes_all = results[len(sources) :]
    recall = sum(r["fake_lossless"] for r in fakes_all) / max(len(fakes_all), 1)
    fpr = fp / max(len(genuine), 1)
    print(f"{'set':<28}{'files':>7}{'flagged':>9}")
    for name, n, k in rows:
        print(f"{name:<28}{n:>7}{k:>9}")
    print(
        f"recall {recall:.3f} ({sum(r['fake_lossless'] for r in fakes_all)}/{len(fakes_all)}), "
        f"false-positive rate {fpr:.3f} ({fp}/{len(genuine)}), {time.perf_counter() - t0:.0f} s"
    )
    for r in genuine:
        if r["fake_lossless"]:
            print("  false positive:", r)
    for r in fakes_all:
        if not r["fake_lossless"]:
            print("  missed:", Path(r["path"]).name, r["bandwidth_hz"], r["cutoff_db"])
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(
        json.dumps(
            {
                "recall": recall,
                "false_positive_rate": fpr,
                "genuine": len(genuine),
                "fakes": len(fakes_all),
                "per_codec": per_codec,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
