"""A second real-music set, held out whole: Freedoom's MIDI music rendered with FluidSynth.

``bench/realset.py`` is split into a dev half (tuned on, many times) and a held-out half (run
once per change). After a series of tempo-level experiments the held-out half has been seen
too often to judge one more; this set is a fresh judge that nothing has been tuned on, and it
has no dev half: **never tune on it** (``accuracy.py --set midi`` reports it).

Source: the Debian package ``freedoom`` (BSD-3-Clause; not one of the brief's reserved
packages): ``freedoom1.wad`` and ``freedoom2.wad`` hold 67 music lumps ``D_*``, all Standard
MIDI Files written by the Freedoom project's composers: rock, metal, ambient and electronic
game music with GM drums, 66-186 BPM. Read straight from the WAD directory (``IWAD``/``PWAD``
header, 16-byte entries), deduplicated by content, pieces under 30 s dropped.

Truth, from each MIDI file by ``realset.midi_grid_truth`` (the rules of the MuseScore scores):
tempo from the tempo map (steady when within +-4 % over the excerpt), beats and bar lines from
the MIDI grid (pretty_midi), the beat level certain where an x/4 time signature is given.
Files whose notes do not sit on their own MIDI grid are dropped (``GRID_SHARE_MIN``: the ten
MUS conversions and two more); compound signatures (6/x, 9/x, 12/x) leave the beat level
uncertain. Files without a time-signature event keep their beats (the MIDI default is
4/4 in quarters) but no downbeat or meter truth. No key truth: MIDI key-signature events are
absent or sequencer defaults here. The first ``EXCERPT_S`` seconds from the first note are
rendered with FluidSynth and the GM soundfont (``truthset.fluidsynth_render``), encoded in
WAV/FLAC/MP3/OGG by hash; ten pieces (by hash) also get realset's four Rubber Band copies
(x1.06, x0.92, +2 st, -3 st) for tempo equivariance.

Usage::

    .venv/bin/python bench/midiset.py            # build (~3 min), cached in bench/.cache/midiset
    .venv/bin/python bench/accuracy.py --set midi
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realset  # noqa: E402

CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "midiset"
PACKAGE = "freedoom"
WADS = ("usr/share/games/doom/freedoom1.wad", "usr/share/games/doom/freedoom2.wad")
EXCERPT_S = 90.0
MIN_SECONDS = 30.0
COPY_SOURCES = 10
#: A MIDI file's grid is the music's only when this share of its note onsets (first
#: ``EXCERPT_S`` s) lies on the 16th or the triplet-8th grid of its quarter note (within 4 % of
#: a quarter). Ten Freedoom files are converted from Doom's MUS format, whose fixed 140 Hz clock
#: they keep as 89 ticks a quarter at 95 BPM: a third of their onsets meet that grid.
GRID_SHARE_MIN = 0.9
#: Signatures whose beat is a dotted note (pretty_midi counts dotted beats there): the beat
#: level is not certain.
COMPOUND = (6, 9, 12)
#: Bump when the truth rules or the rendering change. 2: the grid-share rule and compound
#: signatures (set after the first run, where all four systems read the MUS conversions at
#: tempi unrelated to their 95 BPM container clock; the rules read only the MIDI files).
VERSION = 2


def grid_share(pm: Any, seconds: float) -> float:
    """Share of note onsets in the first ``seconds`` on the 16th or triplet-8th grid."""
    import numpy as np

    onsets = np.array(sorted(n.start for i in pm.instruments for n in i.notes))
    onsets = onsets[onsets < onsets[0] + seconds]
    ticks = np.array([pm.time_to_tick(t) for t in onsets], dtype=np.float64)
    q = float(pm.resolution)
    best = 0.0
    for div in (4, 3):
        step = q / div
        r = ticks % step
        off = np.minimum(r, step - r)
        best = max(best, float(np.mean(off <= max(1.0, 0.04 * q))))
    return best


def wad_music(path: Path) -> list[tuple[str, bytes]]:
    """``(lump name, bytes)`` of every ``D_*`` lump of a Doom WAD that is a MIDI file."""
    data = path.read_bytes()
    ident, n, ofs = struct.unpack("<4sii", data[:12])
    if ident not in (b"IWAD", b"PWAD"):
        raise ValueError(f"{path}: not a WAD ({ident!r})")
    out = []
    for i in range(n):
        pos, size, raw = struct.unpack("<ii8s", data[ofs + 16 * i : ofs + 16 * i + 16])
        name = raw.rstrip(b"\0").decode("ascii", "replace")
        lump = data[pos : pos + size]
        if name.startswith("D_") and lump[:4] == b"MThd":
            out.append((name, lump))
    return out


def load_gridded(path: Path) -> tuple[Any, float, float]:
    """``(PrettyMIDI, first note time, grid share)`` of a MIDI file whose notes sit on its grid.

    Raises ValueError for a file without notes or with under ``GRID_SHARE_MIN`` of its onsets
    on its grid (no grid truth).
    """
    import warnings

    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
    notes = sorted(n.start for i in pm.instruments for n in i.notes)
    if not notes:
        raise ValueError("no notes")
    share = grid_share(pm, EXCERPT_S)
    if share < GRID_SHARE_MIN:
        raise ValueError(f"only {share:.2f} of the onsets on the MIDI grid: no grid truth")
    return pm, float(notes[0]), share


def render(args: tuple[str, bytes, Path, str]) -> dict[str, Any]:
    """Render one MIDI lump's excerpt with FluidSynth; its grid truth from the file."""

    import soundfile as sf

    from truthset import fluidsynth_render

    source_id, lump, out_dir, licence = args
    item = realset.base_item(source_id, "midi", PACKAGE, source_id.split(":", 1)[1], licence)
    item["split"] = "heldout"
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        mid.write_bytes(lump)
        pm, first, share = load_gridded(mid)
        fluidsynth_render(mid, wav, realset.SR)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    dur = min(len(y) / sr, first + EXCERPT_S)
    if dur - first < MIN_SECONDS:
        raise ValueError(f"only {dur - first:.0f} s of music")
    realset.midi_grid_truth(item, pm, dur, first)
    item["grid_share"] = round(share, 3)
    if any(t.numerator in COMPOUND for t in pm.time_signature_changes if t.time < dur):
        item.update(tempo_level_certain=False, beat_level_certain=False)
        item["notes"].append("compound signature: the beat level is not certain")
    if not [t for t in pm.time_signature_changes if t.time < dur]:
        # No time signature: the MIDI default grid (4/4 in quarters) is no statement of bars.
        item.update(downbeats=None, downbeats_certain=False, meter=None, meter_certain=False)
        item["notes"].append("no time signature: beats only")
    item["notes"].append("no key truth (MIDI key signatures absent or defaults)")
    y = y[: int(dur * sr)]
    item["render_latency_s"] = round(realset.first_onset(y, sr) - first, 5)
    realset.write_item_audio(item, y, sr, out_dir, realset.FORMAT_CYCLE, dur)
    return item


def build(force: bool = False, workers: int = 2) -> Path:
    """Fetch, extract, render and write ``manifest.json`` (cached; ``force`` rebuilds)."""
    manifest = CACHE_ROOT / "manifest.json"
    if manifest.exists() and not force:
        if json.loads(manifest.read_text()).get("version") == VERSION:
            return manifest
    t0 = time.perf_counter()
    root = realset.fetch_package(PACKAGE, CACHE_ROOT)
    licence = realset.licence_of(root, PACKAGE) or "BSD-3-Clause"
    songs_dir = CACHE_ROOT / "songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    jobs, seen = [], set()
    for wad in WADS:
        for name, lump in wad_music(root / wad):
            digest = hashlib.sha1(lump).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            jobs.append((f"{PACKAGE}:{Path(wad).stem}/{name}", lump, songs_dir, licence))
    items: list[dict[str, Any]] = []
    failures: list[str] = []
    with ProcessPoolExecutor(workers) as pool:
        realset.collect({pool.submit(render, j): j[0] for j in jobs}, items, failures)
    items.sort(key=lambda s: s["id"])
    keyed = sorted(
        (i for i in items if i["tempo_steady"]),
        key=lambda i: hashlib.sha1(i["source_id"].encode()).hexdigest(),
    )[:COPY_SOURCES]
    copy_jobs = [
        (src, tag, k, r, songs_dir, songs_dir) for src in keyed for tag, k, r in realset.COPY_PLAN
    ]
    copies: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as pool:
        realset.collect(
            {pool.submit(realset.make_copy, j): f"{j[0]['id']}_{j[1]}" for j in copy_jobs},
            copies,
            failures,
        )
    data = {
        "version": VERSION,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.perf_counter() - t0, 1),
        "songs": items,
        "copies": sorted(copies, key=lambda c: c["id"]),
        "failures": failures,
    }
    realset._write(manifest, data)
    return manifest


def load(force: bool = False) -> dict[str, Any]:
    """Build if needed, then load with absolute ``path`` fields."""
    manifest = build(force)
    data = json.loads(manifest.read_text())
    for rec in data["songs"] + data["copies"]:
        rec["path"] = str(manifest.parent / "songs" / rec["path"])
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild")
    args = ap.parse_args(argv)
    data = load(args.force)
    songs = data["songs"]
    print(
        f"{len(songs)} pieces ({sum(s['tempo_steady'] for s in songs)} steady, "
        f"{sum(s['tempo_level_certain'] for s in songs)} level certain, "
        f"{sum(s['downbeats_certain'] for s in songs)} with bars), {len(data['copies'])} copies, "
        f"{sum(s['duration'] for s in songs) / 60:.1f} min; failures: {len(data['failures'])}"
    )
    for f in data["failures"]:
        print("  ", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
