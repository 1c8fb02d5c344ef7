"""A third real set: tracker modules of 21 more game packages, with dev and held-out halves.

Why: the real set's held-out half (``bench/realset.py``) is half classical scores rendered
with FluidSynth, whose notated beat and bar are a question of notation as much as of sound;
its produced music (tracker modules, Hydrogen songs, produced recordings) is 40 pieces. A DJ's
music is produced music. This set adds **produced music with exact row-time truth** that no
benchmark, training set or test here has touched: the modules of 21 Debian game packages that
neither realset nor stemset (nor the beat network's training data, ``bench/beatset.py``)
reads, hedgewars, supertuxkart, wesnoth, frozen-bubble and LMMS excluded
(``realset.RESERVED``). Files identical to a realset or stemset module are dropped.

Truth is realset's, by the same code (``realset.render_module``: every played row's start
time traced through libopenmpt while rendering; beats every ``rows_per_beat`` rows and bar
lines every ``rows_per_measure`` rows from each pattern's start; the IT pattern highlight
where a composer set one, else 4 rows a beat at 80-160 BPM and four beats a bar, *assumed*;
the onset-lag check of the grid against the render, with realset's Hydrogen-calibrated bias;
section truth by ``realset.module_sections``). Split by ``realset.split_of`` (sha1 of
``package:file``): tune on ``dev``, report ``heldout``.

Scored by ``accuracy.py --set modules --split dev|heldout``. As assumed levels leave most
modules without certain bar lines, the row that says most here is "bar lines on the pattern
grid": our bar lines against the pattern's at the bar length nearest ours (a half-bar or
one-beat error scores 0 whatever the level).

Usage::

    .venv/bin/python bench/moduleset.py            # build (~5 min on 2 cores), cached
    .venv/bin/python bench/accuracy.py --set modules --split dev
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realset  # noqa: E402

CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "moduleset"
BUILD_VERSION = 1
#: Debian package -> folders (inside the package) holding its modules. None of them is read by
#: realset, stemset or beatset; found with ``apt-file search`` over bookworm's Contents.
PACKAGES: dict[str, tuple[str, ...]] = {
    "ironseed-data": ("usr/share/games/ironseed/sound",),
    "pekka-kana-2-data": ("usr/share/games/pekka-kana-2/data/music",),
    "gl-117-data": ("usr/share/games/gl-117/music",),
    "biniax2-data": ("usr/share/games/biniax2/music",),
    "flobopuyo": ("usr/share/games/flobopuyo/sfx",),
    "rafkill-data": ("usr/share/games/rafkill/music", "usr/share/games/rafkill/data"),
    "bomberclone-data": ("usr/share/games/bomberclone/music",),
    "madbomber-data": ("usr/share/games/madbomber/music",),
    "gemdropx": ("usr/share/games/gemdropx/sounds",),
    "vodovod": ("usr/share/games/vodovod",),
    "tuxtype-data": ("usr/share/tuxtype/sounds",),
    "ri-li-data": ("usr/share/games/ri-li/Ri-li/Sounds",),
    "dodgindiamond2": ("usr/share/games/dodgindiamond2",),
    "ballz-data": ("usr/share/games/ballz",),
    "cuyo-data": ("usr/share/games/cuyo/sounds",),
    "gweled": ("usr/share/sounds/gweled",),
    "vectoroids": ("usr/share/games/vectoroids/music",),
    "black-box": ("usr/share/black-box/sound",),
    "tomatoes-data": ("usr/share/tomatoes/music",),
    "redeclipse-data": ("usr/share/games/redeclipse/data/sounds",),
    "pathogen": ("usr/share/pathogen",),
}


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def known_modules() -> set[str]:
    """Content hashes of every module realset and stemset read (their package trees)."""
    seen: set[str] = set()
    for root in (realset.CACHE_ROOT, realset.CACHE_ROOT.parent / "stemset"):
        tree = root / "pkgroot"
        if tree.exists():
            seen |= {
                _digest(f)
                for f in tree.rglob("*")
                if f.is_file() and f.suffix.lower() in realset.MODULE_EXT
            }
    return seen


def _render(job: tuple[Path, str, Path, str]) -> dict[str, Any]:
    item = realset.render_module(job)
    db = np.diff(item["downbeats"] or [0.0, 2.0])
    bar = float(np.median(db)) if db.size else 2.0
    try:
        item["sections"] = realset.module_sections(Path(item["origin"]), item["duration"], bar)
    except (ValueError, OSError) as exc:
        item["sections"] = None
        item["notes"].append(f"sections: not read ({exc})")
    return item


def build(force: bool = False, workers: int = 2) -> Path:
    """Build the set once; returns the path of ``truth.json``."""
    manifest = CACHE_ROOT / "truth.json"
    if manifest.exists() and not force:
        if json.loads(manifest.read_text()).get("version") == BUILD_VERSION:
            return manifest
    t0 = time.time()
    songs_dir = CACHE_ROOT / "songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    pkgroot = CACHE_ROOT / "pkgroot"
    seen = known_modules()
    jobs: list[tuple[Path, str, Path, str]] = []
    skipped: list[str] = []
    for package, folders in PACKAGES.items():
        realset.fetch_package(package, CACHE_ROOT)
        lic = realset.licence_of(pkgroot, package)
        for folder in folders:
            for f in sorted((pkgroot / folder).iterdir()):
                if f.suffix.lower() not in realset.MODULE_EXT:
                    continue
                h = _digest(f)
                if h in seen:
                    skipped.append(f"{package}:{f.name}: the same file as a module already used")
                    continue
                seen.add(h)
                jobs.append((f, package, songs_dir, lic))
    log(f"rendering {len(jobs)} modules of {len(PACKAGES)} packages ...")
    items: list[dict[str, Any]] = []
    failures: list[str] = []
    with ProcessPoolExecutor(workers) as ex:
        futs = {ex.submit(_render, j): f"{j[1]}:{j[0].name}" for j in jobs}
        realset.collect(futs, items, failures)
    # The grid check of realset.build: the render's onset envelope against the row grid,
    # relative to the Hydrogen renders' lag (realset's bias; ~1 ms of render latency).
    bias = float(json.loads((realset.CACHE_ROOT / "truth.json").read_text())["onset_lag_bias_s"])
    with_beats = [i for i in items if i.get("beats")]
    with ProcessPoolExecutor(workers) as ex:
        lags = list(
            ex.map(
                realset.onset_lag,
                [str(songs_dir / i["path"]) for i in with_beats],
                [i["beats"] for i in with_beats],
            )
        )
    for i, lag in zip(with_beats, lags, strict=True):
        i["onset_lag_ms"] = round((lag - bias) * 1000, 1)
        if abs(lag - bias) > 0.05 and i["beats_exact"]:
            i["beats_exact"] = i["beat_level_certain"] = i["downbeats_certain"] = False
            i["notes"].append(
                f"onsets lag the row grid by {(lag - bias) * 1000:+.0f} ms: beat phase not on "
                "row 0, grid not trusted (beats_exact false)"
            )
    items.sort(key=lambda i: i["id"])
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "two modules share a file name"
    data = {
        "version": BUILD_VERSION,
        "sr": realset.SR,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.time() - t0, 1),
        "failures": failures,
        "skipped": skipped,
        "songs": items,
        "copies": [],
    }
    manifest.write_text(json.dumps(data, indent=1, default=realset._json_default))
    return manifest


def load(force: bool = False) -> dict[str, Any]:
    """Build if needed, then load with absolute ``path`` fields."""
    manifest = build(force)
    data = json.loads(manifest.read_text())
    for rec in data["songs"]:
        rec["path"] = str(manifest.parent / "songs" / rec["path"])
    return data


def summarize(data: dict[str, Any]) -> str:
    songs = data["songs"]
    lines = [
        f"{len(songs)} modules ({sum(s['duration'] for s in songs) / 60:.1f} min) of "
        f"{len({s['package'] for s in songs})} packages, built in {data['build_seconds']} s",
    ]
    for split in ("dev", "heldout"):
        part = [s for s in songs if s["split"] == split]
        lines.append(
            f"  {split}: {len(part)} modules, {sum(bool(s['beats_exact']) for s in part)} with "
            f"exact beats, {sum(bool(s['tempo_steady']) for s in part)} steady, "
            f"{sum(bool(s['tempo_level_certain']) for s in part)} level certain, "
            f"{sum(bool(s['downbeats_certain']) for s in part)} with certain bar lines, "
            f"{sum(bool(s.get('sections')) for s in part)} with section truth"
        )
    lines.append(f"failures: {len(data['failures'])}, skipped: {len(data['skipped'])}")
    lines += [f"  {f}" for f in data["failures"] + data["skipped"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    build(a.force, a.workers)
    print(summarize(load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
