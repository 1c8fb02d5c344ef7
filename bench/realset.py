"""A development set of human-made music from Debian packages, with its truth.

Three kinds of source, each with truth read from the file that made the audio (never from an
analysis of the audio):

* **Hydrogen demo songs** (``hydrogen-data``), rendered headless with ``h2cli``: tempo from the
  song's ``<bpm>``, meter from the pattern size (48 ticks per quarter), beats and downbeats from
  the pattern sequence, shifted by the measured render latency. Drums only: no key.
* **MuseScore demo scores** (``musescore3-common``), rendered with ``musescore3``: tempo map,
  time signatures, beats and downbeats from the score's MIDI export (pretty_midi); the key from
  the key signature of the concert-pitch staves, major/minor from the final bass note
  (``key_certain: false``, inferred), and only when the bass note is one of the two tonics.
* **Tracker modules** (.mod/.s3m/.xm/.it from Debian game packages), rendered through
  libopenmpt (ctypes): the start time of every played row is recorded while rendering, so beats
  are exact even through speed/tempo changes, pattern breaks and loops. Rows per beat/bar from
  the IT highlight, else 4/16 assumed (``tempo_level_certain: false``). No key.

* **Frets on Fire songs** (``fretsonfire-songs-muldjord``, ``fretsonfire-songs-sectoid``): eight
  produced rock/metal recordings (band + lead guitar, mixed here from the game's two stems).
  Truth from the song's ``notes.mid`` chart, which the game scrolls in sync with the audio: the
  tempo (one tempo event each), beats on the chart's quarter-note grid from time 0 (plus the
  ``delay`` of ``song.ini``), downbeats every four beats (MIDI's default and the charts' own
  4/4 where they state it). The first ``PRODUCED_SECONDS`` are used. Metal at 170-190 BPM is
  often felt at half that: ``tempo_level_certain`` is false, so these count in Acc2 and in beat
  and downbeat F at any level. No key.

* **Scores from the music21 corpus** (PyPI ``music21``, the ``bench-peers`` extra): string
  quartets of Haydn, Mozart and Beethoven, Schumann's quartets and songs, and single pieces of
  other composers — multi-instrument pieces with key signatures. Exported to MIDI by music21
  and rendered with FluidSynth (General MIDI timbres: human-written music, synthetic sound).
  Truth as for MuseScore scores (tempo map, meter, beats, downbeats from the MIDI export; the
  key from the key signature in force over the excerpt, the mode from the signature's mode tag,
  else from the movement's final bass note; ``key_certain`` only where the tag and the final
  bass agree, since notation programs tag every signature "major" by default), over the first
  ``CORPUS_SECONDS`` of each movement, where the home key is established. Bach chorales and the modal Renaissance repertoire are left out.


**Sections** (``sections`` of each tracker module and MuseScore score; ``SECTIONS_VERSION``,
added to an existing set without re-rendering it): for a module, the played orders with their
start times, pattern ids and instrument sets, and a section boundary wherever the set of
instruments in play changes by half or more (``module_sections``: a pattern change alone is
no section, most songs change pattern every 64 rows); for a score, double/final barlines,
rehearsal marks, section breaks and returns (repeats, D.C./D.S.), unrolled and timed by the
score's MIDI export (``score_sections``).

Plus **Rubber Band copies** (pedalboard) of ten sources, including five game-music OGG files
that have no truth of their own: ×1.06, ×0.92 time stretches and +2, -3 semitone shifts, for
equivariance (truth is relative to the source).

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into the cache
(no install needed); Hydrogen and MuseScore must be installed (``h2cli``, ``musescore3``).
hedgewars, supertuxkart, wesnoth, frozen-bubble and LMMS are reserved for outside checks and
never used.

Split: ``dev`` when the first byte of sha1(source id) is even, else ``heldout``; copies follow
their source.

Usage::

    .venv/bin/python bench/realset.py            # build (cached) and print a summary
    .venv/bin/python bench/realset.py --force    # rebuild
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

BUILD_VERSION = 5
SR = 44100
CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "realset"
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Packages reserved for outside checks (substrings of package names). ``fb-music`` is
#: frozen-bubble's music (``fb-music-high``), whose name does not say so.
RESERVED = ("hedgewars", "supertuxkart", "wesnoth", "frozen-bubble", "fb-music", "lmms")

HYDROGEN_SONGS = Path("/usr/share/hydrogen/data/demo_songs")
MUSESCORE_DEMOS = Path("/usr/share/mscore3-3.2/demos")
#: Debian package -> folder (inside the package) holding its tracker modules.
TRACKER_PACKAGES = {
    "tecnoballz-data": "usr/share/games/tecnoballz/musics",
    "pingus-data": "usr/share/games/pingus/data/music",
    "freedroid-data": "usr/share/games/freedroid/sound",
    "circuslinux-data": "usr/share/games/circuslinux/data/music",
    "pachi-data": "usr/share/pachi/music",
    "penguin-command": "usr/share/games/penguin-command/sound",
    "tuxmath-data": "usr/share/tuxmath/sounds",
    "njam-data": "usr/share/games/njam/data",
    "bugsquish": "usr/share/games/bugsquish/music",
    "ceferino-data": "usr/share/games/ceferino/music",
    "gltron": "usr/share/games/gltron/music",
}
#: Game-music recordings without truth: sources of Rubber Band copies only.
AUDIO_SOURCES = {
    "starfighter-data": (
        "usr/share/starfighter/music",
        ("frozen_jam.ogg", "orbital_colossus.ogg", "railjet_short.ogg"),
    ),
    "amoebax-data": (
        "usr/share/games/amoebax/music",
        ("AngusBackground.ogg", "KerberosBackground.ogg"),
    ),
}
#: Debian package -> folder of Frets on Fire songs (one folder per song: song.ogg, guitar.ogg,
#: notes.mid, song.ini).
FOF_PACKAGES = {
    "fretsonfire-songs-muldjord": "usr/share/games/fretsonfire/data/songs/muldjord",
    "fretsonfire-songs-sectoid": "usr/share/games/fretsonfire/data/songs/sectoid",
}
PRODUCED_SECONDS = 120.0
#: music21 corpus composers (folders) whose pieces join the set; .krn twins of .mxl files skipped.
CORPUS_COMPOSERS = (
    "beethoven", "mozart", "haydn", "schumann_robert", "schumann_clara", "corelli", "cpebach",
    "handel", "joplin", "chopin", "beach", "johnson_j_r", "liliuokalani", "schubert", "verdi",
    "weber",
)  # fmt: skip
CORPUS_SECONDS = 60.0
MODULE_EXT = (".mod", ".xm", ".s3m", ".it")
MIN_SECONDS, MAX_SECONDS = 30.0, 100.0  # tracker renders: loop short songs up to 30 s
MAX_RENDER_SECONDS = 120.0  # Hydrogen / MuseScore renders are cut here
AUDIO_SECONDS = 60.0  # recordings without truth: their first minute
COPY_PLAN = (("r1.06", 0, 1.06), ("r0.92", 0, 0.92), ("k+2", 2, 1.0), ("k-3", -3, 1.0))
FORMAT_CYCLE = ("wav", "flac", "mp3", "ogg")
FFMPEG_CODEC = {
    "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "192k"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "5"],
}
STEADY_TOLERANCE = 0.04  # beat periods within ±4 % of the median: a steady tempo


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def collect(futs: dict[Any, str], items: list[dict[str, Any]], failures: list[str]) -> None:
    """Wait for each render: its item into ``items``, or its error (one line) into ``failures``:
    one bad source never stops the build."""
    for fut, name in futs.items():
        try:
            items.append(fut.result())
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            log("  failed:", failures[-1])


def split_of(source_id: str) -> str:
    """``dev`` or ``heldout``, from the first byte of sha1(source id)."""
    return "dev" if hashlib.sha1(source_id.encode()).digest()[0] % 2 == 0 else "heldout"


def licence_of(doc_root: Path, package: str) -> str:
    """The first ``License:`` field of the package's copyright file, or ``""``."""
    for base in (doc_root, Path("/")):
        f = base / "usr/share/doc" / package / "copyright"
        if f.exists():
            m = re.search(r"^License:\s*(.+)$", f.read_text(errors="replace"), re.M)
            return m.group(1).strip() if m else ""
    return ""


def package_of(path: Path) -> str:
    """The installed Debian package that owns ``path`` (``dpkg -S``)."""
    r = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
    return r.stdout.split(":")[0].strip() if r.returncode == 0 else ""


def fetch_package(package: str, root: Path) -> Path:
    """``apt-get download`` + ``dpkg-deb -x`` into ``root/pkgroot``; returns that folder."""
    assert not any(x in package for x in RESERVED), package
    target = root / "pkgroot"
    stamp = root / "debs" / f"{package}.done"
    if stamp.exists():
        return target
    (root / "debs").mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "download", "-q", package],
        cwd=root / "debs",
        check=True,
        capture_output=True,
    )
    deb = sorted((root / "debs").glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    stamp.write_text(deb.name)
    return target


def encode(y: np.ndarray, sr: int, out: Path) -> None:
    """Write ``y`` (frames × channels) as 16-bit WAV, or through ffmpeg to FLAC/MP3/OGG."""
    import soundfile as sf

    fmt = out.suffix[1:]
    if fmt == "wav":
        sf.write(str(out), y, sr, subtype="PCM_16")
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        sf.write(str(wav), y, sr, subtype="PCM_16")
        cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(wav)]
        subprocess.run([*cmd, *FFMPEG_CODEC[fmt], str(out)], check=True, capture_output=True)


def write_item_audio(
    item: dict[str, Any],
    y: np.ndarray,
    sr: int,
    out_dir: Path,
    formats: tuple[str, ...],
    dur: float,
) -> None:
    """Normalise ``y`` to -1 dB, encode it in the item's format (by hash among ``formats``) and
    record ``format``, ``path`` and ``duration``."""
    item["format"] = fmt_for(item["source_id"], formats)
    out = out_dir / f"{item['id']}.{item['format']}"
    y *= 0.89 / max(float(np.abs(y).max()), 1e-9)
    encode(y, sr, out)
    item["duration"] = round(dur, 3)
    item["path"] = out.name


def first_onset(y: np.ndarray, sr: int) -> float:
    """Seconds to the first sample above 10 % of the peak of the first 10 s (mono abs)."""
    a = np.abs(y.mean(axis=1) if y.ndim == 2 else y)[: 10 * sr]
    return float(np.argmax(a > 0.1 * a.max())) / sr


def steady(beats: np.ndarray) -> tuple[bool, float]:
    """(all beat periods within ±4 % of their median, the tempo from that median)."""
    ibi = np.diff(beats)
    if ibi.size < 4:
        return False, float("nan")
    med = float(np.median(ibi))
    return bool(np.all(np.abs(ibi / med - 1) <= STEADY_TOLERANCE)), 60.0 / med


def base_item(source_id: str, kind: str, package: str, origin: str, licence: str) -> dict:
    return {
        "id": re.sub(r"[^A-Za-z0-9_.-]+", "_", source_id.split(":", 1)[1]).strip("_"),
        "source_id": source_id,
        "kind": kind,
        "package": package,
        "licence": licence,
        "origin": origin,
        "split": split_of(source_id),
        "tempo": None,
        "tempo_steady": False,
        "tempo_level_certain": False,
        "beats": None,
        "downbeats": None,
        "beats_exact": False,
        "beat_level_certain": False,
        "downbeats_certain": False,
        "meter": None,
        "meter_certain": False,
        "key": None,
        "mode": None,
        "key_certain": False,
        "notes": [],
    }


def fmt_for(source_id: str, allowed: tuple[str, ...] = FORMAT_CYCLE) -> str:
    return allowed[hashlib.sha1(source_id.encode()).digest()[1] % len(allowed)]


# ------------------------------------------------------------------------------------------
# Hydrogen
def hydrogen_grid(song: Path) -> dict[str, Any]:
    """Tempo, meter and the beat/downbeat grid (seconds from the song start) of an .h2song."""
    root = ET.parse(song).getroot()
    bpm = float(root.findtext("bpm"))
    timeline = root.find("BPMTimeLine")
    if timeline is not None and len(timeline):
        raise ValueError("tempo timeline present")
    sizes, denominators, first_note = {}, {}, {}
    for p in root.iter("pattern"):
        name = p.findtext("name")
        sizes[name] = int(p.findtext("size"))
        denominators[name] = int(p.findtext("denominator") or 4)
        pos = [int(n.findtext("position")) for n in p.iter("note")]
        first_note[name] = min(pos) if pos else None
    groups = [[pid.text for pid in g.iter("patternID")] for g in root.find("patternSequence")]
    if root.find("virtualPatternList") is not None and len(root.find("virtualPatternList")):
        raise ValueError("virtual patterns")
    tick = 60.0 / bpm / 48.0  # 48 ticks per quarter note
    beats, downbeats, meters, t0, first = [], [], set(), 0, None
    for g in groups:
        size = max(sizes[n] for n in g) if g else 192
        if any(denominators[n] != 4 for n in g):
            raise ValueError("denominator other than 4")
        meters.add(size / 48)
        for n in g:
            if first is None and first_note[n] is not None:
                first = (t0 + first_note[n]) * tick
        downbeats.append(t0 * tick)
        beats += [(t0 + b) * tick for b in range(0, size, 48)]
        t0 += size
    return {
        "bpm": bpm,
        "meters": sorted(meters),
        "beats": np.array(beats),
        "downbeats": np.array(downbeats),
        "first_note": first if first is not None else 0.0,
        "end": t0 * tick,
        "swing": float(root.findtext("swing_factor") or 0),
        "humanize_time": float(root.findtext("humanize_time") or 0),
    }


def render_hydrogen(song: Path, out_dir: Path, licence: str) -> dict[str, Any]:
    import soundfile as sf

    package = package_of(song) or "hydrogen-data"
    source_id = f"{package}:{song.name}"
    item = base_item(source_id, "hydrogen", package, str(song), licence)
    grid = hydrogen_grid(song)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        subprocess.run(
            ["h2cli", "-s", str(song), "-o", str(wav), "-r", str(SR)],
            env=env,
            capture_output=True,
            timeout=600,
            check=True,
        )
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    assert sr == SR, sr
    y = y[: int(MAX_RENDER_SECONDS * sr)]
    latency = first_onset(y, sr) - grid["first_note"]
    loops = int(np.ceil(MIN_SECONDS / grid["end"]))
    if loops > 1:  # a short song plays in a loop (overlap-add of the render) up to 30 s
        step = int(round(grid["end"] * sr))
        z = np.zeros((step * (loops - 1) + len(y), y.shape[1]), dtype=np.float32)
        for n in range(loops):
            z[n * step : n * step + len(y)] += y
        y = z[: step * loops + int(2 * sr)]
        item["notes"].append(f"song {grid['end']:.1f} s long, looped {loops} times")
    grid["loops"] = loops
    item["render_latency_s"] = round(latency, 5)
    item["format"] = fmt_for(source_id, ("flac", "wav", "mp3"))
    out = out_dir / f"{item['id']}.{item['format']}"
    y *= 0.89 / max(float(np.abs(y).max()), 1e-9)
    encode(y, sr, out)
    dur = len(y) / sr
    item["duration"] = round(dur, 3)
    item["path"] = out.name
    item["_grid"] = grid
    return item


def finish_hydrogen(item: dict[str, Any], latency: float) -> dict[str, Any]:
    """Apply the common render latency; fill the truth fields."""
    grid = item.pop("_grid")
    dur = item["duration"]
    shifts = grid["end"] * np.arange(grid["loops"])
    beats = (grid["beats"][None, :] + shifts[:, None]).ravel() + latency
    downbeats = (grid["downbeats"][None, :] + shifts[:, None]).ravel() + latency
    item.update(
        tempo=grid["bpm"],
        tempo_steady=True,
        tempo_level_certain=True,
        beats=np.round(beats[beats < dur - 0.05], 5).tolist(),
        downbeats=np.round(downbeats[downbeats < dur - 0.05], 5).tolist(),
        beats_exact=True,
        beat_level_certain=True,
        downbeats_certain=len(grid["meters"]) == 1,
        meter=int(grid["meters"][0]) if len(grid["meters"]) == 1 else None,
        meter_certain=len(grid["meters"]) == 1,
        hydrogen_swing=grid["swing"],
        hydrogen_humanize_time=grid["humanize_time"],
    )
    item["notes"].append(
        f"latency applied {latency * 1000:.1f} ms (median over the Hydrogen renders; this "
        f"render's first onset vs its first note: {item['render_latency_s'] * 1000:.1f} ms)"
    )
    if grid["humanize_time"] > 0:
        item["notes"].append("humanized timing: hits jitter a few ms around the grid")
    return item


# ------------------------------------------------------------------------------------------
# MuseScore
def mscx_text(score: Path) -> str:
    if score.suffix == ".mscz":
        with zipfile.ZipFile(score) as z:
            name = next(n for n in z.namelist() if n.endswith(".mscx"))
            return z.read(name).decode()
    return score.read_text()


def concert_key_signature(score: Path) -> tuple[int | None, str | None, str]:
    """(sharps (+) / flats (-) of the concert-pitch staves, mode tag or None, why)."""
    root = ET.fromstring(mscx_text(score))
    sc = root.find("Score")
    transposing: dict[str, int] = {}
    for part in sc.iter("Part"):
        tr = int(part.findtext(".//Instrument/transposeChromatic") or 0)
        for st in part.iter("Staff"):
            if st.get("id"):
                transposing[st.get("id")] = tr
    accs, modes = set(), set()
    for st in sc.findall("Staff"):
        if transposing.get(st.get("id"), 0) != 0:
            continue  # written pitch, not concert pitch
        for ks in st.iter("KeySig"):
            acc = ks.findtext("accidental")
            if acc is None:
                acc = ks.findtext("concertKey") or ks.findtext("key")
            if acc is not None:
                accs.add(int(acc))
            if ks.findtext("mode"):
                modes.add(ks.findtext("mode"))
    if len(accs) != 1:
        return None, None, f"key signatures {sorted(accs)} on concert-pitch staves"
    mode = modes.pop() if len(modes) == 1 else None
    return accs.pop(), mode, ""


def key_from_signature(
    item: dict[str, Any], acc: int, mode_tag: str | None, bass: int, where: str
) -> None:
    """Key of ``item`` from a key signature (``acc`` sharps, negative flats) and a tonic note.

    An explicit mode tag decides (``key_certain`` only if the bass note ``where`` is its tonic);
    otherwise the bass note ``where`` (the final one, or the first and final ones agreeing) must
    be the major or the relative minor tonic of the signature (``key_certain: false``,
    inferred), else the piece gets no key.
    """
    major = (7 * acc) % 12
    if mode_tag in ("major", "minor"):
        tonic, mode = (major if mode_tag == "major" else (major + 9) % 12), mode_tag
        # Certain only when the movement also ends on that tonic: notation programs write a
        # <mode> into every MusicXML key signature, "major" by default, so a tag alone can be
        # wrong (Schumann's A minor Scherzo op. 41/1 is tagged C major, Beethoven's F major
        # finale op. 18/1 D minor). KEY_TRUTH 1.
        certain = bass == tonic
        if not certain:
            item["notes"].append(
                f"mode tag {mode_tag} but {where} note {PITCH_CLASSES[bass]}: key not certain"
            )
    elif bass == major:
        tonic, mode, certain = major, "major", False
    elif bass == (major + 9) % 12:
        tonic, mode, certain = (major + 9) % 12, "minor", False
    else:
        item["notes"].append(f"no key: signature {acc:+d} but {where} note {PITCH_CLASSES[bass]}")
        return
    item.update(key=PITCH_CLASSES[tonic], mode=mode, key_certain=certain, key_signature=acc)
    item["notes"].append(
        f"key from signature {acc:+d}, mode from {where} {PITCH_CLASSES[bass]}"
        + ("" if certain else " (inferred)")
    )


def midi_grid_truth(
    item: dict[str, Any],
    pm: Any,
    dur: float,
    first_note: float,
    *,
    pickup_q: float = 0.0,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Fill tempo, meter, beats and downbeats of ``item`` from a score's MIDI export.

    ``pickup_q``: the length in quarters of a pickup bar that the MIDI file's time signatures
    do not show (music21 exports): the grid of the first time signature starts that much later.
    ``grid``: beats and downbeats (s) read from the score's own bars (:func:`score_grid`),
    used instead of the MIDI file's grid where given.
    """
    # Tempo map over the excerpt: steady when every tempo is within ±4 % of the first.
    times, tempi = pm.get_tempo_changes()
    tempi = tempi[(times < dur) | (np.arange(len(tempi)) == 0)]
    tempo_steady = bool(np.all(np.abs(tempi / tempi[0] - 1) <= STEADY_TOLERANCE))
    # Beats and downbeats from the MIDI grid (pretty_midi counts beats in the denominator's
    # unit, dotted quarters in 6/8-type meters). A first bar shorter than the next time
    # signature's bar is a pickup: its start is not a downbeat.
    beats = np.asarray(pm.get_beats(), dtype=float)
    downbeats = np.asarray(pm.get_downbeats(), dtype=float)
    ts = pm.time_signature_changes
    meters = {(t.numerator, t.denominator) for t in ts if t.time < dur}
    if grid is not None:
        beats, downbeats = grid
        item["notes"].append("beats and bar lines from the score's bars")
    elif pickup_q > 0 and len(downbeats) > 1:
        # Bar lines (and beats, for a pickup of part of a beat) of the first time signature
        # move by the pickup; a later signature starts where its bar truly starts.
        shift = float(pm.tick_to_time(int(round(pickup_q * pm.resolution))))
        until = float(ts[1].time) if len(ts) > 1 and ts[1].time > 0 else np.inf
        step = float(np.median(np.diff(beats[beats < until]))) if (beats < until).sum() > 1 else 0
        off = shift % step if step else 0.0
        if off > 0.02 * step and off < 0.98 * step:
            first_beats = beats[beats < until] + off
            beats = np.concatenate([first_beats[first_beats < until], beats[beats >= until]])
        first_bars = downbeats[downbeats < until] + shift
        downbeats = np.concatenate([first_bars[first_bars < until], downbeats[downbeats >= until]])
        item["notes"].append(f"pickup of {pickup_q:g} quarters: the first bar line after it")
    if (
        grid is None
        and len(ts) > 1
        and ts[1].time > 0
        and ts[0].time == 0
        and len(downbeats) > 1
        # A pickup signature gives way to the music's own at the end of the first bar.
        and abs(ts[1].time - downbeats[1]) < 0.01
    ):
        first_bar = downbeats[1] - downbeats[0]
        later = [t for t in ts[1:] if (t.numerator, t.denominator) != (ts[0].numerator, 0)]
        if later and first_bar < 0.95 * ts[1].numerator * 4 / ts[1].denominator * 60 / tempi[0]:
            item["notes"].append(
                f"pickup bar {ts[0].numerator}/{ts[0].denominator}: first downbeat dropped, "
                "beats of the pickup taken on the following meter's grid"
            )
            meters.discard((ts[0].numerator, ts[0].denominator))
            # Re-grid the pickup: beats of the following meter counted back from its start.
            step = 60 / tempi[0] * 4 / ts[1].denominator
            pick = np.arange(downbeats[1] - step, first_note - 0.02, -step)[::-1]
            beats = np.concatenate([pick, beats[beats >= downbeats[1] - 1e-6]])
            downbeats = downbeats[1:]
    tempo = 60.0 / float(np.median(np.diff(beats[beats < dur])))
    beat_unit = {d for _, d in meters}
    item.update(
        tempo=round(tempo, 4),
        tempo_steady=tempo_steady,
        # 2/2 (cut time): half-note or quarter-note beat, both defensible.
        tempo_level_certain=tempo_steady and beat_unit == {4},
        beats=np.round(beats[beats < dur - 0.05], 5).tolist(),
        downbeats=np.round(downbeats[downbeats < dur - 0.05], 5).tolist(),
        beats_exact=True,
        beat_level_certain=beat_unit == {4},
        downbeats_certain=True,
        meter=next(iter(meters))[0] if len(meters) == 1 else None,
        meter_certain=len(meters) == 1,
        time_signatures=sorted(f"{a}/{b}" for a, b in meters),
        tempo_range=[round(float(tempi.min()), 2), round(float(tempi.max()), 2)],
    )
    if not tempo_steady:
        item["notes"].append(
            f"tempo changes {tempi.min():.0f}-{tempi.max():.0f} BPM (quarter): beats only"
        )


def render_musescore(score: Path, out_dir: Path, licence: str) -> dict[str, Any]:
    import pretty_midi
    import soundfile as sf

    package = package_of(score) or "musescore3-common"
    source_id = f"{package}:{score.name}"
    item = base_item(source_id, "musescore", package, str(score), licence)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryDirectory() as tmp:
        wav, mid = Path(tmp) / "x.wav", Path(tmp) / "x.mid"
        for target in (wav, mid):
            subprocess.run(
                ["musescore3", "-o", str(target), str(score)],
                env=env,
                capture_output=True,
                timeout=600,
                check=True,
            )
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(mid))
        shutil.copy(mid, out_dir / f"{item['id']}.mid")
    assert sr == SR, sr
    y = y[: int(MAX_RENDER_SECONDS * sr)]
    dur = len(y) / sr
    notes = [(n.start, n.end, n.pitch) for i in pm.instruments if not i.is_drum for n in i.notes]
    first_note = min(n[0] for n in notes)
    item["render_latency_s"] = round(first_onset(y, sr) - first_note, 5)

    midi_grid_truth(item, pm, dur, first_note)
    # Key: concert key signature + mode from the final bass note.
    acc, mode_tag, why = concert_key_signature(score)
    if acc is None:
        item["notes"].append(f"no key: {why}")
    else:
        end = max(n[1] for n in notes)
        bass = min(n[2] for n in notes if n[1] > end - 0.1) % 12
        key_from_signature(item, acc, mode_tag, bass, "final bass")
    write_item_audio(item, y, sr, out_dir, ("ogg", "mp3", "flac"), dur)
    return item


# ------------------------------------------------------------------------------------------
# Tracker modules through libopenmpt
def _libopenmpt() -> ctypes.CDLL:
    lib = ctypes.CDLL("libopenmpt.so.0")
    vp, i32 = ctypes.c_void_p, ctypes.c_int32
    lib.openmpt_module_create_from_memory2.restype = vp
    lib.openmpt_module_create_from_memory2.argtypes = [vp, ctypes.c_size_t] + [vp] * 7
    for fn in (
        "get_current_order",
        "get_current_row",
        "get_current_pattern",
        "get_current_speed",
        "get_current_tempo",
        "get_num_channels",
        "get_num_patterns",
    ):
        f = getattr(lib, f"openmpt_module_{fn}")
        f.argtypes, f.restype = [vp], i32
    lib.openmpt_module_get_duration_seconds.argtypes = [vp]
    lib.openmpt_module_get_duration_seconds.restype = ctypes.c_double
    lib.openmpt_module_set_repeat_count.argtypes = [vp, i32]
    lib.openmpt_module_read_interleaved_float_stereo.argtypes = [vp, i32, ctypes.c_size_t, vp]
    lib.openmpt_module_read_interleaved_float_stereo.restype = ctypes.c_size_t
    lib.openmpt_module_get_pattern_num_rows.argtypes = [vp, i32]
    lib.openmpt_module_get_pattern_num_rows.restype = i32
    lib.openmpt_module_get_pattern_row_channel_command.argtypes = [vp, i32, i32, i32, ctypes.c_int]
    lib.openmpt_module_get_pattern_row_channel_command.restype = ctypes.c_uint8
    lib.openmpt_module_destroy.argtypes = [vp]
    return lib


def it_highlight(data: bytes) -> tuple[int, int] | None:
    """(rows per beat, rows per measure) of an IT file's pattern highlight, or None."""
    if data[:4] != b"IMPM" or len(data) < 0x20:
        return None
    rpb, rpm = data[0x1E], data[0x1F]
    return (rpb, rpm) if rpb > 0 and rpm > 0 else None


def trace_rows(
    lib: ctypes.CDLL, mod: int, length: float
) -> tuple[np.ndarray, int, list[tuple[float, int, int, int, int, int]]]:
    """Render ``length`` seconds and record each played row as it starts.

    Returns the interleaved stereo audio buffer, the frames rendered and, per row, ``(start s,
    pattern, row, speed, tempo, order)``. Rows are read in chunks of 16 frames and a row's
    start is the middle of the chunk it began in (0.0 for the first); the render and the
    section truth both call this, so their row times are the same.
    """
    chunk = 16
    total = int(length * SR)
    audio = np.zeros((total + chunk) * 2, dtype=np.float32)
    rows: list[tuple[float, int, int, int, int, int]] = []
    frames, last = 0, None
    get = lib.openmpt_module_get_current_pattern, lib.openmpt_module_get_current_row
    while frames < total:
        n = lib.openmpt_module_read_interleaved_float_stereo(
            mod, SR, chunk, audio[frames * 2 :].ctypes.data
        )
        if n == 0:
            break
        state = (get[0](mod), get[1](mod))
        if state != last:  # the row started inside this chunk: take its middle
            rows.append(
                (
                    (frames + n / 2) / SR,
                    state[0],
                    state[1],
                    lib.openmpt_module_get_current_speed(mod),
                    lib.openmpt_module_get_current_tempo(mod),
                    lib.openmpt_module_get_current_order(mod),
                )
            )
            last = state
        frames += n
    rows[0] = (0.0, *rows[0][1:])  # the first row starts with the render
    return audio, frames, rows


@contextlib.contextmanager
def traced_module(path: Path) -> Iterator[tuple[ctypes.CDLL, int, np.ndarray, int, list[Any]]]:
    """Open a module with libopenmpt and render it as the set does (``trace_rows``).

    Yields ``(lib, mod, audio, frames, rows)``; the module is freed on leaving.
    """
    lib = _libopenmpt()
    data = path.read_bytes()
    buf = ctypes.create_string_buffer(data, len(data))
    mod = lib.openmpt_module_create_from_memory2(buf, len(data), *([None] * 7))
    if not mod:
        raise ValueError("libopenmpt could not open it")
    try:
        song_seconds = lib.openmpt_module_get_duration_seconds(mod)
        length = min(MAX_SECONDS, max(MIN_SECONDS, song_seconds))
        lib.openmpt_module_set_repeat_count(mod, -1)  # short songs loop up to 30 s
        audio, frames, rows = trace_rows(lib, mod, length)
        yield lib, mod, audio, frames, rows
    finally:
        lib.openmpt_module_destroy(mod)


def render_module(args: tuple[Path, str, Path, str]) -> dict[str, Any]:
    """Render one module and record the start time of every played row."""
    path, package, out_dir, licence = args
    source_id = f"{package}:{path.name}"
    item = base_item(source_id, "tracker", package, str(path), licence)
    data = path.read_bytes()
    with traced_module(path) as (lib, mod, audio, frames, rows):
        song_seconds = lib.openmpt_module_get_duration_seconds(mod)
        length = min(MAX_SECONDS, max(MIN_SECONDS, song_seconds))
        # First row holding a note (for the render-latency spot check).
        first_note_t = None
        nch = lib.openmpt_module_get_num_channels(mod)
        for t, pat, row, _, _, _ in rows:
            if any(
                0 < lib.openmpt_module_get_pattern_row_channel_command(mod, pat, row, c, 0) <= 120
                for c in range(nch)
            ):
                first_note_t = t
                break
    y = audio[: frames * 2].reshape(-1, 2)
    dur = frames / SR
    hl = it_highlight(data)
    has_highlight = hl is not None and hl != (4, 16)
    times = np.array([r[0] for r in rows])
    rowno = np.array([r[2] for r in rows])
    # A composer's highlight fixes the bar; its "beat" is a beat only at a plausible tempo
    # (pingus-1: 2 rows = 345 BPM, a 6/8 bar of 12 rows; pingus-4: 4 rows = 300 BPM).
    level_certain = bool(has_highlight and 60 <= 60 / (hl[0] * np.median(np.diff(times))) <= 200)
    if has_highlight:
        rpb, rpm = hl
    else:
        # No composer's highlight: rows per beat assumed, a power of two putting the median
        # beat between 80 and 160 BPM (4 rows at speed 6 / 125 BPM: 125), four beats a bar.
        row_period = float(np.median(np.diff(times)))
        rpb = 4
        while 60 / (rpb * row_period) > 160 and rpb < 32:
            rpb *= 2
        while 60 / (rpb * row_period) < 80 and rpb > 1:
            rpb //= 2
        rpm = 4 * rpb
    beat_rows = np.flatnonzero(rowno % rpb == 0)
    beats = times[beat_rows]
    downbeats = times[rowno % rpm == 0]
    # Every beat must span exactly rpb played rows; odd pattern lengths or breaks shift it.
    regular = bool(np.all(np.diff(beat_rows) == rpb))
    is_steady, tempo = steady(beats)
    speeds = sorted({r[3] for r in rows})
    tempos = sorted({r[4] for r in rows})
    if not regular and len(speeds) == 1 and len(tempos) == 1:
        # One speed and tempo throughout: every row lasts the same, so the tempo at rpb rows
        # per beat is exact even where the beat grid's phase is not.
        row_period = float(np.median(np.diff(times)))
        is_steady, tempo = True, 60 / (rpb * row_period)
    item.update(
        tempo=round(tempo, 4),
        tempo_steady=is_steady,
        tempo_level_certain=level_certain and is_steady and regular,
        beats=np.round(beats[beats < dur - 0.05], 5).tolist(),
        downbeats=np.round(downbeats[downbeats < dur - 0.05], 5).tolist(),
        beats_exact=regular,
        beat_level_certain=level_certain and regular,
        downbeats_certain=has_highlight and regular and rpm % rpb == 0,
        meter=rpm // rpb if rpm % rpb == 0 else None,
        meter_certain=level_certain and regular and rpm % rpb == 0,
        rows_per_beat=rpb,
        rows_per_measure=rpm,
        highlight_from_file=hl is not None,
        speeds=speeds,
        module_tempos=tempos,
        song_seconds=round(song_seconds, 2),
        looped=song_seconds < length - 0.5,
    )
    if first_note_t is not None:
        item["render_latency_s"] = round(first_onset(y, SR) - first_note_t, 5)
    if len(speeds) > 1 or len(tempos) > 1:
        item["notes"].append(
            f"speed/tempo change in the render (speeds {speeds}, tempos {tempos}): row times "
            "are measured, so beats stay exact"
        )
    if not regular:
        item["notes"].append(
            f"some beats span other than {rpb} rows (odd pattern length or break): beat grid "
            "not trusted (beats_exact false)"
        )
    if not is_steady:
        item["notes"].append("beat periods vary by more than ±4 %: tempo unsteady, beats only")
    if has_highlight and not level_certain:
        item["notes"].append(
            f"IT highlight {rpb}/{rpm} rows: bars from it, beat level uncertain ({tempo:.0f} BPM)"
        )
    elif not level_certain:
        item["notes"].append(
            f"rows per beat/bar assumed {rpb}/{rpm} (beat in 80-160 BPM): metrical level uncertain"
        )
    else:
        item["notes"].append(f"rows per beat/bar {rpb}/{rpm} from the IT highlight")
    item["format"] = fmt_for(source_id)
    out = out_dir / f"{item['id']}.{item['format']}"
    peak = float(np.abs(y).max())
    if peak < 1e-4:
        raise ValueError("silent render")
    encode(y * (0.89 / peak), SR, out)
    item["duration"] = round(dur, 3)
    item["path"] = out.name
    return item


# ------------------------------------------------------------------------------------------
# music21 corpus scores rendered with FluidSynth
def corpus_paths() -> list[str]:
    """Corpus files of ``CORPUS_COMPOSERS``, a .krn dropped where an .mxl of it exists."""
    from music21 import corpus

    paths = sorted(str(p) for c in CORPUS_COMPOSERS for p in corpus.getComposer(c))
    stems = {p.rsplit(".", 1)[0] for p in paths if not p.endswith(".krn")}
    return [p for p in paths if not (p.endswith(".krn") and p.rsplit(".", 1)[0] in stems)]


def close_midi(path: Path, tail_s: float = 1.0) -> None:
    """End every track of a MIDI file ``tail_s`` after its last note, pedals released.

    Some music21 exports keep a track (or a held pedal) running far past the music, and
    FluidSynth then renders for hours.
    """
    import mido

    midi = mido.MidiFile(str(path))
    last = 0
    for track in midi.tracks:
        t = 0
        for msg in track:
            t += msg.time
            if msg.type in ("note_on", "note_off"):
                last = max(last, t)
    limit = last + int(tail_s * midi.ticks_per_beat * 2)  # ~1 s at 120 BPM
    for i, track in enumerate(midi.tracks):
        out, t = mido.MidiTrack(), 0
        prev = 0
        for msg in track:
            t += msg.time
            if msg.is_meta and msg.type == "end_of_track":
                continue
            if t > limit:
                break
            out.append(msg.copy(time=t - prev))
            prev = t
        if i == 0:
            for ch in range(16):
                for cc in (64, 123, 120):  # sustain off, all notes off, all sound off
                    out.append(
                        mido.Message(
                            "control_change",
                            channel=ch,
                            control=cc,
                            value=0,
                            time=max(0, limit - prev),
                        )
                    )
                    prev = max(prev, limit)
        out.append(mido.MetaMessage("end_of_track", time=max(0, limit - prev)))
        midi.tracks[i] = out
    midi.save(str(path))


def score_pickup(score: Any) -> float:
    """Length in quarters of the score's pickup (anacrusis) bar, 0.0 when it has none.

    music21 exports a pickup as a short first bar under the full bar's time signature, so the
    MIDI file's own grid (and pretty_midi's downbeats) would put a bar line on the pickup's
    first note; the true first downbeat comes this many quarters later.
    """
    from music21 import stream

    first = score.parts[0].getElementsByClass(stream.Measure).first() if score.parts else None
    if first is None:
        return 0.0
    have, full = float(first.duration.quarterLength), float(first.barDuration.quarterLength)
    return have if 0.0 < have < full - 1e-6 else 0.0


def score_grid(score: Any, pm: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Beats and downbeats (s) of a score's bars, placed through its MIDI export's tempo map.

    The MIDI file's own grid counts whole bars of each time signature from its start, so a bar
    the score makes longer or shorter than its signature (a cadenza-like first bar, a pickup,
    a bar of grace notes) shifts every later bar line and beat of that grid. Read from the
    score, each bar starts where it starts; beats are counted in the signature's unit (dotted
    quarters in 6/8-type meters, as pretty_midi does) from the bar line, or back from the bar's
    end in a pickup. None when the export expanded repeats (its time no longer follows the
    score's offsets), the parts' bars disagree, or the score has no bars.
    """
    from music21 import meter, stream

    if not score.parts:
        return None
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    if not measures:
        return None
    # The export lays each part's bars end to end, whatever the bars' declared offsets: a bar
    # longer than its signature in every part moves all later music. Parts whose bars end at
    # different places (one part's grace notes written as real durations) have no one grid.
    ends = []
    for part in score.parts:
        bars = list(part.getElementsByClass(stream.Measure))
        if len(bars) != len(measures):
            return None
        ends.append(np.cumsum([float(m.duration.quarterLength) for m in bars]))
    if np.ptp(np.asarray(ends), axis=0).max() > 0.05:
        return None
    first = float(measures[0].getOffsetInHierarchy(score))
    ends_q = first + np.median(np.asarray(ends), axis=0)
    starts_q = np.r_[first, ends_q[:-1]]
    # Expanded repeats: the export's last note starts much later than the score's.
    score_last = max(
        (float(n.getOffsetInHierarchy(score)) for n in score.flatten().notes), default=0.0
    )
    midi_last = max((n.start for i in pm.instruments for n in i.notes), default=0.0)
    if abs(pm.time_to_tick(midi_last) / pm.resolution - score_last) > 0.25:
        return None
    sigs = list(score.parts[0].recurse().getElementsByClass(meter.TimeSignature))
    if not sigs:
        return None
    # Each bar's beat unit: its own signature or the last one before it.
    units: list[float] = []
    ts = sigs[0]
    for m in measures:
        ts = m.timeSignature or ts
        num, den = int(ts.numerator), int(ts.denominator)
        units.append((3 if num % 3 == 0 and num > 3 else 1) * 4.0 / den)
    # Bar lines: a bar shorter than its signature that the next one completes (a bar split
    # at a repeat sign or a line end) is one bar; a first bar shorter than that is a pickup;
    # any other bar starts where the export puts it, whatever the length of the one before.
    bars: list[int] = []
    acc = 0.0
    for i, m in enumerate(measures):
        have, full = float(ends_q[i] - starts_q[i]), float(m.barDuration.quarterLength)
        if i == 0 and have < full - 1e-6:
            continue
        if not bars or acc >= full - 1e-6 or acc + have > full + 1e-6:
            bars.append(i)
            acc = 0.0
        acc += have
    beats_q: list[float] = []
    if bars and bars[0] > 0:  # the pickup's beats count back from its end
        u, lo, hi = units[0], float(starts_q[0]), float(ends_q[0])
        beats_q.extend(sorted(hi - u * np.arange(1, int((hi - lo) / u + 1e-6) + 1)))
    bars_q = [float(starts_q[i]) for i in bars]
    for i, lo, hi in zip(bars, bars_q, [*bars_q[1:], float(ends_q[-1])], strict=True):
        beats_q.extend(lo + units[i] * np.arange(int(np.ceil((hi - lo) / units[i] - 1e-6))))

    def seconds(q: list[float]) -> np.ndarray:
        return np.array([pm.tick_to_time(int(round(x * pm.resolution))) for x in q])

    return seconds(beats_q), seconds(bars_q)


def _corpus_midi(path: str, mid: Path) -> tuple[dict[str, Any], Any, int, float]:
    """Parse a corpus score and export the excerpt's measures as MIDI to ``mid``.

    Returns the new item (no truth yet), the excerpt's score, the movement's final bass pitch
    class and the pickup's length in quarters.
    """
    from music21 import converter, meter, repeat, stream, tempo

    rel = path.split("/corpus/", 1)[1]
    source_id = f"music21:{rel}"
    item = base_item(source_id, "corpus", "music21 (PyPI)", rel, "BSD-3-Clause / public domain")
    full = converter.parse(path)
    # The movement's final bass note (lowest pitch still sounding at the end), before cutting.
    flat = [n for n in full.flatten().notes if n.quarterLength > 0]
    end_q = max(float(n.offset + n.quarterLength) for n in flat)
    final = min(
        p.midi for n in flat if n.offset + n.quarterLength >= end_q - 0.25 for p in n.pitches
    )
    # Export only the measures the excerpt needs (at the first metronome mark, 120 if none):
    # whole movements are slow to expand and their MIDI files large.
    marks = full.flatten().getElementsByClass(tempo.MetronomeMark)
    qpm = float(marks[0].getQuarterBPM() or 120.0) if marks else 120.0
    sigs_ = full.flatten().getElementsByClass(meter.TimeSignature)
    bar_q = float(sigs_[0].barDuration.quarterLength) if sigs_ else 4.0
    n_bars = int(np.ceil((CORPUS_SECONDS + 10.0) * qpm / 60.0 / bar_q)) + 2
    score = full.measures(0, n_bars)
    try:
        score.write("midi", fp=str(mid))
    except repeat.ExpanderException:  # badly formed repeats: play it straight through
        for m in score.recurse().getElementsByClass(stream.Measure):
            m.leftBarline = m.rightBarline = None
        score.remove(
            list(score.recurse().getElementsByClass(repeat.RepeatExpression)), recurse=True
        )
        score.write("midi", fp=str(mid))
        item["notes"].append("repeats not expanded (badly formed in the file)")
    close_midi(mid)
    return item, score, final % 12, score_pickup(score)


def _corpus_truth(
    item: dict[str, Any],
    score: Any,
    final: int,
    pickup_q: float,
    mid: Path,
    excerpt: Callable[[float], float],
) -> tuple[float, float]:
    """Fill the grid and key truth of a corpus ``item`` from its MIDI export ``mid``.

    ``excerpt`` maps the first note's time to the excerpt's length (s). Returns both.
    """
    import warnings

    import pretty_midi
    from music21 import key

    # music21 writes 10080 ticks a quarter: a whole quartet movement passes pretty_midi's
    # "likely corrupt" limit of 1e7 ticks.
    pretty_midi.pretty_midi.MAX_TICK = max(pretty_midi.pretty_midi.MAX_TICK, 1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(mid))
    notes = sorted(
        (n.start, n.end, n.pitch) for i in pm.instruments if not i.is_drum for n in i.notes
    )
    if not notes:
        raise ValueError("no notes")
    first_note = float(notes[0][0])
    dur = excerpt(first_note)
    grid = score_grid(score, pm)
    midi_grid_truth(item, pm, dur, first_note, pickup_q=pickup_q, grid=grid)
    # Key signatures (concert pitch: parts of transposing instruments are skipped) in force over
    # the excerpt; one value, or no key.
    sigs, tags = set(), set()
    for part in score.parts:
        inst = part.getInstrument(returnDefault=True)
        if inst.transposition is not None and inst.transposition.semitones % 12:
            continue
        for ks in part.recurse().getElementsByClass(key.KeySignature):
            when = pm.tick_to_time(int(ks.getOffsetInHierarchy(part) * pm.resolution))
            if when < dur:
                sigs.add(int(ks.sharps))
                if isinstance(ks, key.Key) and ks.mode in ("major", "minor"):
                    tags.add(ks.mode)
    if len(sigs) != 1:
        item["notes"].append(f"no key: key signatures {sorted(sigs)} over the excerpt")
    else:
        acc = sigs.pop()
        mode_tag = tags.pop() if len(tags) == 1 else None
        key_from_signature(item, acc, mode_tag, final, "final bass")
    return first_note, dur


def render_corpus(args: tuple[str, Path]) -> dict[str, Any]:
    """Render the first CORPUS_SECONDS of a music21 corpus score with FluidSynth, with truth."""
    import soundfile as sf

    from truthset import fluidsynth_render

    path, out_dir = args
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        item, score, final, pickup_q = _corpus_midi(path, mid)
        fluidsynth_render(mid, wav, SR)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        # The excerpt: CORPUS_SECONDS from the first note (a render starts at MIDI time 0).
        first, dur = _corpus_truth(
            item, score, final, pickup_q, mid, lambda t: min(len(y) / sr, t + CORPUS_SECONDS)
        )
    y = y[: int(dur * sr)]
    item["render_latency_s"] = round(first_onset(y, sr) - first, 5)
    write_item_audio(item, y, sr, out_dir, ("ogg", "mp3", "flac", "wav"), dur)
    return item


#: Bump when the corpus scores' grid truth changes; their audio need not be rendered again.
#: 1: pickup bars (music21 exports them under the full bar's time signature); 2: a key's mode
#: tag is certain only when the movement ends on its tonic (``key_from_signature``); 3: beats
#: and bar lines from the score's bars (``score_grid``: bars longer or shorter than their
#: signature), tempo steadiness and meters over the excerpt only, and the pickup-signature rule
#: only where the next signature starts at the first bar line.
GRID_VERSION = 3


def update_corpus_grid(data: dict[str, Any], workers: int = 2) -> bool:
    """Recompute the grid and key truth of every corpus score of an older set in ``data``
    (``regrid_corpus``); True if changed."""
    if data.get("grid_version", 0) >= GRID_VERSION:
        return False
    corpus = [i for i in data["songs"] if i["kind"] == "corpus"]
    log(f"recomputing the grid truth of {len(corpus)} corpus scores (grid version {GRID_VERSION})")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as procs:
        fresh = list(procs.map(regrid_corpus, corpus))
    for item, new in zip(corpus, fresh, strict=True):
        item.update(new)
    data["grid_version"] = GRID_VERSION
    data.setdefault("upgrades", []).append(
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}: corpus grid truth, version {GRID_VERSION}"
    )
    return True


def regrid_corpus(item: dict[str, Any]) -> dict[str, Any]:
    """The grid and key truth of an already rendered corpus ``item``, recomputed from its score
    (the audio is not rendered again): ``GRID_VERSION`` upgrades use it."""
    path = next(p for p in corpus_paths() if p.split("/corpus/", 1)[1] == item["origin"])
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "x.mid"
        fresh, score, final, pickup_q = _corpus_midi(path, mid)
        _corpus_truth(fresh, score, final, pickup_q, mid, lambda _: float(item["duration"]))
    return fresh


# ------------------------------------------------------------------------------------------
# Frets on Fire: produced recordings with a chart tempo map
def fof_chart(notes_mid: Path) -> tuple[float, tuple[int, int] | None]:
    """(the one tempo of the chart in BPM, its time signature or None) from ``notes.mid``."""
    import mido

    midi = mido.MidiFile(str(notes_mid))
    tempi, signatures = set(), set()
    for track in midi.tracks:
        for msg in track:
            if msg.type == "set_tempo":
                tempi.add(round(mido.tempo2bpm(msg.tempo), 6))
            elif msg.type == "time_signature":
                signatures.add((msg.numerator, msg.denominator))
    if len(tempi) != 1:
        raise ValueError(f"tempo map with {len(tempi)} tempi")
    if len(signatures) > 1:
        raise ValueError(f"time signatures {sorted(signatures)}")
    return float(tempi.pop()), (signatures.pop() if signatures else None)


def fof_chart_offset(folder: Path, bpm: float, delay: float) -> tuple[float, float]:
    """Seconds the audio lags the chart, and the peak/median contrast of that estimate.

    The chart's expert gems (MIDI notes 96-100) were placed by hand on the lead guitar's notes:
    the lag (within ±0.4 s) that puts the guitar stem's onset strength highest at the gem times
    is the chart's offset against the audio.
    """
    import librosa
    import mido

    midi = mido.MidiFile(str(folder / "notes.mid"))
    ticks = sorted(
        {
            t
            for track in midi.tracks
            for t, msg in zip(np.cumsum([m.time for m in track]), track, strict=True)
            if msg.type == "note_on" and msg.velocity > 0 and 96 <= msg.note <= 100
        }
    )
    gems = delay + np.asarray(ticks, dtype=float) * 60.0 / bpm / midi.ticks_per_beat
    y, sr = librosa.load(str(folder / "guitar.ogg"), sr=22050, duration=PRODUCED_SECONDS)
    lags, scores = onset_lag_scores(y, sr, gems[gems < PRODUCED_SECONDS - 1], 0.4)
    best = int(np.argmax(scores))
    return float(lags[best]), scores[best] / max(float(np.median(scores)), 1e-9)


def render_fof(args: tuple[Path, str, Path, str]) -> dict[str, Any]:
    """Mix a Frets on Fire song's two stems and take its truth from the chart."""
    import configparser

    import soundfile as sf
    import soxr

    folder, package, out_dir, licence = args
    source_id = f"{package}:{folder.name}"
    item = base_item(source_id, "produced", package, str(folder), licence)
    bpm, signature = fof_chart(folder / "notes.mid")
    if signature not in (None, (4, 4)):
        raise ValueError(f"time signature {signature}")
    ini = configparser.ConfigParser(strict=False)
    ini.read(folder / "song.ini")
    delay = float(ini.get("song", "delay", fallback="0") or 0) / 1000.0
    stems = []
    for name in ("song.ogg", "guitar.ogg"):
        y, sr = sf.read(str(folder / name), dtype="float32", always_2d=True)
        if sr != SR:
            y = soxr.resample(y, sr, SR).astype(np.float32)
        stems.append(y)
    n = min(len(y) for y in stems)
    y = sum(st[:n] for st in stems)[: int(PRODUCED_SECONDS * SR)]
    dur = len(y) / SR
    period = 60.0 / bpm
    offset, contrast = fof_chart_offset(folder, bpm, delay)
    beats = delay + offset + period * np.arange(-1, int(dur / period) + 1)
    beats = beats[beats >= 0]
    beats = beats[beats < dur - 0.05]
    downbeats = delay + offset + 4 * period * np.arange(int(dur / period / 4) + 1)
    downbeats = downbeats[(downbeats >= 0) & (downbeats < dur - 0.05)]
    item.update(
        tempo=round(bpm, 4),
        tempo_steady=True,
        tempo_level_certain=False,
        beats=np.round(beats, 5).tolist(),
        downbeats=np.round(downbeats, 5).tolist(),
        beats_exact=True,
        beat_level_certain=False,
        downbeats_certain=True,
        meter=4,
        meter_certain=True,
        chart_delay_s=delay,
        chart_offset_s=round(offset, 4),
    )
    item["notes"].append(
        f"chart tempo {bpm:g} BPM, grid from {(delay + offset) * 1000:.0f} ms: the audio lags "
        f"the chart by {offset * 1000:.0f} ms (expert gems vs guitar onsets, contrast "
        f"{contrast:.2f})"
        + ("" if signature else "; no time signature in the chart (MIDI default 4/4)")
    )
    write_item_audio(item, y, SR, out_dir, ("mp3", "flac", "ogg"), dur)
    return item


def fof_jobs(root: Path, songs_dir: Path) -> list[tuple[Path, str, Path, str]]:
    jobs = []
    for package, folder in FOF_PACKAGES.items():
        fetch_package(package, root)
        lic = licence_of(root / "pkgroot", package)
        for song in sorted((root / "pkgroot" / folder).iterdir()):
            if (song / "notes.mid").exists() and (song / "guitar.ogg").exists():
                jobs.append((song, package, songs_dir, lic))
    return jobs


def corpus_copy_sources(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ten keyed, steady corpus pieces (by hash, both halves) as sources of Rubber Band copies."""
    keyed = [i for i in items if i["kind"] == "corpus" and i["key"] and i["tempo_steady"]]
    keyed.sort(key=lambda i: hashlib.sha1(i["source_id"].encode()).hexdigest())
    return keyed[:10]


def upgrade(manifest: Path, workers: int = 2) -> None:
    """Upgrade an older set in place, rendering only what is new.

    Version 3 -> 4 adds the Frets on Fire songs, 4 -> 5 the music21 corpus scores; each with
    its Rubber Band copies.
    """
    root = manifest.parent
    data = json.loads(manifest.read_text())
    songs_dir, copies_dir = root / "songs", root / "copies"
    spawn = multiprocessing.get_context("spawn")
    items: list[dict[str, Any]] = []
    failures = list(data["failures"])
    version = data["version"]
    with ProcessPoolExecutor(workers, mp_context=spawn) as procs:
        if version == 3:
            jobs: list[Any] = fof_jobs(root, songs_dir)
            what, render = "Frets on Fire songs", render_fof
        else:
            jobs = [(p, songs_dir) for p in corpus_paths()]
            what, render = "music21 corpus scores", render_corpus
        log(f"adding {len(jobs)} {what} ...")
        futs = {procs.submit(render, j): str(j[0]) for j in jobs}
        collect(futs, items, failures)
        with_beats = [i for i in items if i.get("beats")]
        lags = list(
            procs.map(
                onset_lag,
                [str(songs_dir / i["path"]) for i in with_beats],
                [i["beats"] for i in with_beats],
            )
        )
        bias = data.get("onset_lag_bias_s", 0.0)
        for i, lag in zip(with_beats, lags, strict=True):
            i["onset_lag_ms"] = round((lag - bias) * 1000, 1)
        sources = items if version == 3 else corpus_copy_sources(items)
        copy_jobs = [
            (s, tag, k, r, songs_dir, copies_dir) for s in sources for tag, k, r in COPY_PLAN
        ]
        log(f"making {len(copy_jobs)} Rubber Band copies ...")
        copies = list(procs.map(make_copy, copy_jobs))
    for i in items:
        i["path"] = f"songs/{i['path']}"
    for c in copies:
        c["path"] = f"copies/{c['path']}"
    known = {i["id"] for i in data["songs"]}
    data["songs"] = sorted(
        data["songs"] + [i for i in items if i["id"] not in known], key=lambda i: i["id"]
    )
    data["copies"] += [c for c in copies if c["source"] not in known]
    data["failures"] = failures
    data["version"] = version + 1
    data.setdefault("upgrades", []).append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {what} added")
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    tmp.replace(manifest)


# Section truth: from the order list of a module, the marks of a score
#: Bump when the section truth changes; the audio (BUILD_VERSION) need not be rebuilt for it.
SECTIONS_VERSION = 1
#: A played pattern starts a new section when the set of instruments it plays differs from the
#: previous pattern's by at least this Jaccard distance (half of the instruments in play come
#: or go). Fixed before any estimate was compared with it.
INSTRUMENT_CHANGE = 0.5


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return 1.0 - len(a & b) / len(a | b) if a | b else 0.0


def module_sections(path: Path, duration: float, bar: float) -> dict[str, Any]:
    """Section truth of a tracker module, traced through libopenmpt exactly as it was rendered.

    Every *order* (a played pattern; most are 2 or 4 bars of 64 rows) is a unit with its start
    time, its pattern id and the set of instruments its notes play (an instrument column, or
    the channel's last instrument for a bare note). A pattern change alone is no section: most
    songs change pattern every 64 rows. A section starts where the **instrumentation** changes:
    the instrument set differs from the previous order's by Jaccard distance >=
    ``INSTRUMENT_CHANGE`` (instruments enter or leave: drums drop out, a lead comes in). The
    same pattern id played again is the same material (the group truth of the orders). A
    section lasts at least a bar (``bar`` seconds): an order cut short after a row or two by a
    pattern break opens none.
    """
    with traced_module(path) as (lib, mod, _, frames, rows):
        lib.openmpt_module_get_num_orders.argtypes = [ctypes.c_void_p]
        lib.openmpt_module_get_num_orders.restype = ctypes.c_int32
        if abs(frames / SR - duration) > 0.01:
            raise ValueError(f"trace lasts {frames / SR:.2f} s, the render {duration:.2f} s")
        nch = lib.openmpt_module_get_num_channels(mod)
        cell = lib.openmpt_module_get_pattern_row_channel_command
        # Played orders: consecutive rows of one (order, pattern) run, in play order.
        units: list[dict[str, Any]] = []
        for t, pat, row, _, _, order in rows:
            if (
                not units
                or (units[-1]["order"], units[-1]["pattern"]) != (order, pat)
                or (row == 0 and units[-1]["rows"] and units[-1]["rows"][-1] != 0)
            ):
                units.append({"start": t, "order": order, "pattern": pat, "rows": []})
            units[-1]["rows"].append(row)
        last_instrument = [0] * nch
        for u in units:
            used: set[int] = set()
            for row in u.pop("rows"):
                for c in range(nch):
                    ins = cell(mod, u["pattern"], row, c, 1)
                    if ins:
                        last_instrument[c] = ins
                    if 0 < cell(mod, u["pattern"], row, c, 0) <= 120 and last_instrument[c]:
                        used.add(last_instrument[c])
            u["instruments"] = sorted(used)
    units = [u for u in units if u["start"] < duration - 0.05]
    starts = [0.0]
    for prev, u in itertools.pairwise(units):
        change = _jaccard(frozenset(prev["instruments"]), frozenset(u["instruments"]))
        if change >= INSTRUMENT_CHANGE and u["start"] - starts[-1] >= bar:
            starts.append(round(u["start"], 5))
    return {
        "kind": "instrumentation",
        "rule": f"instrument set changes by Jaccard >= {INSTRUMENT_CHANGE} between orders",
        "boundaries": starts,
        "units": [
            {"start": round(u["start"], 5), "pattern": u["pattern"], "order": u["order"],
             "instruments": u["instruments"]}
            for u in units
        ],
    }  # fmt: skip


def _unrolled_measures(measures: list[ET.Element]) -> list[int] | None:
    """Written measure indices in play order: repeats (with first/second endings), D.C./D.S.
    al Fine / al Coda. None when the score has anything else (nested repeats, jumps to
    unknown markers)."""
    n = len(measures)
    start_rep = {i for i, m in enumerate(measures) if m.find(".//startRepeat") is not None}
    end_rep = {}
    for i, m in enumerate(measures):
        e = m.find(".//endRepeat")
        if e is not None:
            end_rep[i] = int(e.text or 2)
    volta_end: dict[int, tuple[int, list[int]]] = {}  # first measure -> (last, endings)
    for i, m in enumerate(measures):
        for sp in m.iter("Spanner"):
            v = sp.find("Volta")
            if sp.get("type") != "Volta" or v is None:
                continue  # the end of a volta spanner, or another spanner
            endings = [int(x) for x in (v.findtext("endings") or "1").split(",") if x.strip()]
            span = sp.find("next/location/measures")
            last = i + (int(span.text) - 1 if span is not None and span.text else 0)
            volta_end[i] = (last, endings)
    markers = {}
    for i, m in enumerate(measures):
        for mk in m.iter("Marker"):
            markers[(mk.findtext("label") or mk.findtext("subtype") or "").lower()] = i
    jumps = {}
    for i, m in enumerate(measures):
        j = m.find(".//Jump")
        if j is not None:
            jumps[i] = (
                (j.findtext("jumpTo") or "").lower(),
                (j.findtext("playUntil") or "").lower(),
                (j.findtext("continueAt") or "").lower(),
            )
    out: list[int] = []
    i, rep_start, pass_no, jumped, stop_at, coda_from = 0, 0, 1, False, None, None
    guard = 0
    while i < n:
        guard += 1
        if guard > 10 * n:
            return None
        if i in start_rep and (not out or out[-1] != i - 1 or pass_no == 1):
            if rep_start != i:
                rep_start, pass_no = i, 1
        if i in volta_end and pass_no not in volta_end[i][1]:
            i = volta_end[i][0] + 1  # skip an ending not for this pass
            continue
        out.append(i)
        if stop_at is not None and i == stop_at:
            if coda_from is None:
                return out  # al Fine
            i, stop_at = coda_from, None
            continue
        if i in end_rep and pass_no < end_rep[i] and not jumped:
            pass_no += 1
            i = rep_start
            continue
        if i in end_rep and pass_no >= end_rep[i]:
            pass_no = 1
        if i in jumps and not jumped:
            to, until, cont = jumps[i]
            target = 0 if to in ("start", "") else markers.get(to)
            if target is None:
                return None
            jumped = True
            if until in ("end", ""):
                stop_at = None
            elif until in markers:
                stop_at = markers[until]
            else:
                return None
            coda_from = markers.get(cont) if cont else None
            if cont and coda_from is None:
                return None
            i, pass_no = target, 2  # repeats are not taken again after a jump
            continue
        i += 1
    return out


def score_sections(score: Path, midi: Path, duration: float) -> dict[str, Any] | None:
    """Section truth of a MuseScore score: where its author marks one.

    A section starts after a double or final barline, at a rehearsal mark, after a section
    break, and where the play goes back (a repeat, D.C./D.S.), in written measures; the score is unrolled (repeats, endings, D.C./D.S. al
    Coda/Fine) to played measures, each timed by the downbeats of the score's own MIDI export.
    None when the score marks no section or cannot be unrolled to the MIDI's measure count.
    """
    import warnings

    import pretty_midi

    root = ET.fromstring(mscx_text(score))
    staff = root.find("Score").find("Staff")
    measures = staff.findall("Measure")
    marked = set()
    for i, m in enumerate(measures):
        for b in m.iter("BarLine"):
            if (b.findtext("subtype") or "") in ("double", "end", "final") and i + 1 < len(
                measures
            ):
                marked.add(i + 1)
        if m.find(".//RehearsalMark") is not None:
            marked.add(i)
        for lb in m.iter("LayoutBreak"):
            if (lb.findtext("subtype") or "") == "section" and i + 1 < len(measures):
                marked.add(i + 1)
    if not marked:
        return None
    played = _unrolled_measures(measures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(midi))
    downbeats = pm.get_downbeats()
    end = pm.get_end_time()
    downbeats = downbeats[downbeats < end - 0.05]
    if played is None or len(played) != len(downbeats):
        raise ValueError(
            f"unrolled {None if played is None else len(played)} measures, MIDI has "
            f"{len(downbeats)}"
        )
    # A section starts at a marked measure and where the play goes back (a repeat, D.C. or
    # D.S.: the same music again); skipping a first ending forward continues the section.
    starts = [0.0]
    for k in range(1, len(played)):
        if played[k] in marked or played[k] < played[k - 1]:
            starts.append(round(float(downbeats[k]), 5))
    starts = [t for t in starts if t < duration - 0.05]
    return {
        "kind": "score marks",
        "rule": "double/final barlines, rehearsal marks and section breaks, unrolled",
        "boundaries": starts,
        "marked_measures": sorted(marked),
        "played_measures": played,
    }


def add_sections(data: dict[str, Any], root: Path) -> bool:
    """Record the section truth of every tracker module and MuseScore score in ``data``
    (``sections``: ``boundaries`` in seconds, 0.0 first, and the evidence); True if changed.

    Pieces whose sections cannot be read get ``sections: None`` and a note why.
    """
    if data.get("sections_version") == SECTIONS_VERSION:
        return False
    for item in data["songs"]:
        if item["kind"] not in ("tracker", "musescore"):
            continue
        item["notes"] = [n for n in item["notes"] if not n.startswith("sections:")]
        try:
            if item["kind"] == "tracker":
                db = np.diff(item["downbeats"] or [0.0, 2.0])
                bar = float(np.median(db)) if db.size else 2.0
                item["sections"] = module_sections(Path(item["origin"]), item["duration"], bar)
            else:
                midi = root / "songs" / (Path(item["path"]).stem + ".mid")
                item["sections"] = score_sections(Path(item["origin"]), midi, item["duration"])
                if item["sections"] is None:
                    item["notes"].append("sections: the score marks none")
        except (ValueError, OSError) as exc:
            item["sections"] = None
            item["notes"].append(f"sections: not read ({exc})")
    data["sections_version"] = SECTIONS_VERSION
    return True


# ------------------------------------------------------------------------------------------
# Plain recordings (copy sources only) and Rubber Band copies
def take_audio(args: tuple[Path, str, Path, str]) -> dict[str, Any]:
    """The first AUDIO_SECONDS of a game-music recording; no truth."""
    import soundfile as sf
    import soxr

    path, package, out_dir, licence = args
    source_id = f"{package}:{path.name}"
    item = base_item(source_id, "audio", package, str(path), licence)
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR:
        y = soxr.resample(y, sr, SR).astype(np.float32)
    y = y[: int(AUDIO_SECONDS * SR)]
    item["format"] = "ogg"
    out = out_dir / f"{item['id']}.ogg"
    encode(y, SR, out)
    item["duration"] = round(len(y) / SR, 3)
    item["path"] = out.name
    item["notes"].append("no truth: a source of Rubber Band copies (equivariance) only")
    return item


def make_copy(args: tuple[dict[str, Any], str, int, float, Path, Path]) -> dict[str, Any]:
    import pedalboard
    import soundfile as sf

    src, tag, k, r, songs_dir, out_dir = args
    y, sr = sf.read(str(songs_dir / src["path"]), dtype="float32", always_2d=True)
    mono = y.mean(axis=1).astype(np.float32)  # the whole source: same music as it
    z = pedalboard.time_stretch(
        mono[None, :], sr, stretch_factor=r, pitch_shift_in_semitones=float(k), high_quality=True
    )[0]
    out = out_dir / f"{src['id']}_{tag}.wav"
    sf.write(str(out), z, sr, subtype="PCM_16")
    item = {
        key: src[key]
        for key in ("source_id", "package", "licence", "origin", "split", "kind")
        if key in src
    }
    key = None if src["key"] is None else PITCH_CLASSES[(PITCH_CLASSES.index(src["key"]) + k) % 12]
    item.update(
        id=out.stem,
        source=src["id"],
        k=k,
        r=r,
        path=out.name,
        format="wav",
        duration=round(len(z) / sr, 3),
        tempo=None if src["tempo"] is None else round(src["tempo"] * r, 4),
        tempo_steady=src["tempo_steady"],
        tempo_level_certain=src["tempo_level_certain"],
        key=key,
        mode=src["mode"],
        key_certain=src["key_certain"],
        meter=src["meter"],
        meter_certain=src["meter_certain"],
        beats_exact=False,
        beat_level_certain=src["beat_level_certain"],
        notes=["Rubber Band copy: truth relative to the source; beat times approximate"],
    )
    return item


# ------------------------------------------------------------------------------------------
# Build
def build(force: bool = False, workers: int = 2) -> Path:
    """Build the set once; returns the path of ``truth.json``."""
    root = CACHE_ROOT
    manifest = root / "truth.json"
    if manifest.exists() and not force:
        data = json.loads(manifest.read_text())
        while data.get("version") in (3, 4):  # render only what the newer versions add
            upgrade(manifest, workers)
            data = json.loads(manifest.read_text())
        if data.get("version") == BUILD_VERSION:
            return manifest
    t0 = time.time()
    songs_dir, copies_dir = root / "songs", root / "copies"
    for d in (songs_dir, copies_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for tool in ("h2cli", "musescore3", "ffmpeg"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install hydrogen musescore3 ffmpeg")

    log("fetching packages (apt-get download + dpkg-deb -x) ...")
    pkgroot = root / "pkgroot"
    modules: list[tuple[Path, str, Path, str]] = []
    for package, folder in TRACKER_PACKAGES.items():
        fetch_package(package, root)
        lic = licence_of(pkgroot, package)
        for f in sorted((pkgroot / folder).iterdir()):
            if f.suffix.lower() in MODULE_EXT:
                modules.append((f, package, songs_dir, lic))
    recordings = []
    for package, (folder, names) in AUDIO_SOURCES.items():
        fetch_package(package, root)
        lic = licence_of(pkgroot, package)
        recordings += [(pkgroot / folder / n, package, songs_dir, lic) for n in names]

    items: list[dict[str, Any]] = []
    failures: list[str] = []
    # h2cli and musescore3 are slow to start (h2cli ~25 s a song, mostly waiting): threads.
    h2songs = sorted(HYDROGEN_SONGS.glob("*.h2song"))
    scores = sorted(MUSESCORE_DEMOS.glob("*.msc[xz]"))
    h2lic = licence_of(Path("/"), package_of(h2songs[0]) if h2songs else "hydrogen-data")
    mslic = licence_of(Path("/"), package_of(scores[0]) if scores else "musescore3-common")
    log(f"rendering {len(h2songs)} Hydrogen songs, {len(scores)} MuseScore scores, ")
    log(f"{len(modules)} tracker modules, {len(recordings)} recordings ...")
    spawn = multiprocessing.get_context("spawn")  # no fork while h2cli threads run
    with ThreadPoolExecutor(3) as threads, ProcessPoolExecutor(workers, mp_context=spawn) as procs:
        futs = {threads.submit(render_hydrogen, s, songs_dir, h2lic): s.name for s in h2songs}
        futs |= {threads.submit(render_musescore, s, songs_dir, mslic): s.name for s in scores}
        futs |= {procs.submit(render_module, m): m[0].name for m in modules}
        futs |= {procs.submit(take_audio, r): r[0].name for r in recordings}
        futs |= {procs.submit(render_fof, j): j[0].name for j in fof_jobs(root, songs_dir)}
        futs |= {procs.submit(render_corpus, (p, songs_dir)): p for p in corpus_paths()}
        collect(futs, items, failures)
    h2 = [i for i in items if i["kind"] == "hydrogen"]
    latency = float(np.median([i["render_latency_s"] for i in h2])) if h2 else 0.0
    for i in h2:
        finish_hydrogen(i, latency)
    items.sort(key=lambda i: i["id"])
    # Grid-vs-audio check: the lag of the onset envelope against the truth beats, relative to
    # the Hydrogen renders' (whose first-onset latency is ~1 ms: the envelope's own delay).
    # A tracker grid off by more than 50 ms (a row or more: the beat is not on row 0 of the
    # pattern) is not trusted for beat scoring.
    with_beats = [i for i in items if i.get("beats")]
    with ProcessPoolExecutor(workers, mp_context=spawn) as procs:
        lags = list(
            procs.map(
                onset_lag,
                [str(songs_dir / i["path"]) for i in with_beats],
                [i["beats"] for i in with_beats],
            )
        )
    bias = float(
        np.median(
            [lag for i, lag in zip(with_beats, lags, strict=True) if i["kind"] == "hydrogen"]
            or [0.0]
        )
    )
    for i, lag in zip(with_beats, lags, strict=True):
        i["onset_lag_ms"] = round((lag - bias) * 1000, 1)
        if i["kind"] == "tracker" and abs(lag - bias) > 0.05 and i["beats_exact"]:
            i["beats_exact"] = False
            i["beat_level_certain"] = False
            i["downbeats_certain"] = False
            i["notes"].append(
                f"onsets lag the row grid by {(lag - bias) * 1000:+.0f} ms: beat phase not on "
                "row 0, grid not trusted (beats_exact false)"
            )
    # Keep trackers that have something to score: drop near-duplicates of one id.
    seen: set[str] = set()
    for i in items:
        assert i["id"] not in seen, i["id"]
        seen.add(i["id"])

    # Rubber Band copies of ten sources: the five recordings, the MuseScore pieces with a key
    # and steady tempo, and steady trackers / Hydrogen songs to make up ten, spread over both
    # halves of the split.
    by_id = {i["id"]: i for i in items}
    sources = [i for i in items if i["kind"] == "audio"]
    sources += [i for i in items if i["kind"] == "musescore" and i["key"] and i["tempo_steady"]]
    steady_rest = [i for i in items if i["kind"] in ("tracker", "hydrogen") and i["tempo_steady"]]
    steady_rest.sort(key=lambda i: hashlib.sha1(i["source_id"].encode()).hexdigest())
    sources += steady_rest[: max(0, 10 - len(sources))]
    sources += [i for i in items if i["kind"] == "produced"] + corpus_copy_sources(items)
    jobs = [(s, tag, k, r, songs_dir, copies_dir) for s in sources for tag, k, r in COPY_PLAN]
    log(f"making {len(jobs)} Rubber Band copies of {len(sources)} sources ...")
    copies = []
    with ProcessPoolExecutor(workers, mp_context=spawn) as procs:
        for c in procs.map(make_copy, jobs):
            copies.append(c)
    for i in items:
        i["path"] = f"songs/{i['path']}"
    for c in copies:
        c["path"] = f"copies/{c['path']}"
        assert c["source"] in by_id

    data = {
        "version": BUILD_VERSION,
        "sr": SR,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.time() - t0, 1),
        "hydrogen_render_latency_s": latency,
        "onset_lag_bias_s": bias,
        "failures": failures,
        "songs": items,
        "copies": copies,
    }
    log("reading section truth (order lists, score marks) ...")
    add_sections(data, root)
    data["grid_version"] = GRID_VERSION  # fresh renders carry the current grid truth
    _write(manifest, data)
    log(f"built in {time.time() - t0:.0f} s")
    return manifest


def _write(manifest: Path, data: dict[str, Any]) -> None:
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    tmp.replace(manifest)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def load(force: bool = False) -> dict[str, Any]:
    """Build if needed, then load with absolute ``path`` fields."""
    manifest = build(force)
    data = json.loads(manifest.read_text())
    if add_sections(data, manifest.parent):  # a set built before its section truth: add it
        log("recorded section truth in", manifest)
        _write(manifest, data)
    if update_corpus_grid(data):  # a set built before the corpus grid's last fix
        log("recorded the corpus grid truth in", manifest)
        _write(manifest, data)
    for rec in data["songs"] + data["copies"]:
        rec["path"] = str(manifest.parent / rec["path"])
    return data


def summarize(data: dict[str, Any]) -> str:
    songs, copies = data["songs"], data["copies"]
    lines = [
        f"{len(songs)} source pieces ({sum(s['duration'] for s in songs) / 60:.1f} min), "
        f"{len(copies)} Rubber Band copies; build {data['build_seconds']} s",
        "by kind: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s["kind"] for s in songs).items())),
        "by split: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s["split"] for s in songs).items()))
        + " (copies: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(c["split"] for c in copies).items()))
        + ")",
        "by package: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s["package"] for s in songs).items())),
        "formats: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s["format"] for s in songs).items())),
    ]
    for field in (
        "tempo_steady",
        "tempo_level_certain",
        "beats_exact",
        "beat_level_certain",
        "downbeats_certain",
        "meter_certain",
    ):
        lines.append(f"{field}: {sum(bool(s.get(field)) for s in songs)}")
    lines.append(f"with a key: {sum(s['key'] is not None for s in songs)}")
    lat = [s.get("render_latency_s") for s in songs if s.get("render_latency_s") is not None]
    if lat:
        lines.append(
            "render latency (first onset - first note), ms: "
            + ", ".join(
                f"{k}: median {1000 * np.median([s['render_latency_s'] for s in songs if s['kind'] == k and s.get('render_latency_s') is not None]):.1f}"
                for k in ("hydrogen", "musescore", "tracker", "produced", "corpus")
                if any(s["kind"] == k and s.get("render_latency_s") is not None for s in songs)
            )
        )
    if data["failures"]:
        lines.append("failed: " + "; ".join(data["failures"]))
    return "\n".join(lines)


def onset_lag(path: str, beats: list[float]) -> float:
    """Lag (s, within ±120 ms) maximising the onset strength summed at the beat times + lag."""
    import librosa

    y, sr = librosa.load(path, sr=22050, mono=True)
    lags, scores = onset_lag_scores(y, sr, np.asarray(beats), 0.12)
    return float(lags[int(np.argmax(scores))])


def onset_lag_scores(
    y: np.ndarray, sr: int, times: np.ndarray, max_lag: float
) -> tuple[np.ndarray, list[float]]:
    """Mean onset strength (librosa, hop 128) at ``times`` + lag, for lags within ±``max_lag``."""
    import librosa

    hop = 128
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    fps = sr / hop
    lags = np.arange(-max_lag, max_lag + 1e-4, 1 / fps)
    scores = []
    for lag in lags:
        idx = np.round((times + lag) * fps).astype(int)
        idx = idx[(idx >= 0) & (idx < len(env))]
        scores.append(float(env[idx].mean()) if idx.size else 0.0)
    return lags, scores


def check(data: dict[str, Any]) -> str:
    """Audio-side spot checks of the truth, without ears.

    Beats: the lag (±120 ms) that maximises the onset strength summed at the truth beat times,
    and the ratio of onset strength on the beats to that half a beat later. Key: the rank of
    the truth key among the 24 Krumhansl-Kessler correlations of the render's summed chroma.
    """
    import librosa

    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
    minor = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
    lines = []
    lags_by_kind: dict[str, list[float]] = {}
    for s in data["songs"]:
        if not s.get("beats"):
            continue
        y, sr = librosa.load(s["path"], sr=22050, mono=True)
        hop = 128
        env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
        fps = sr / hop
        beats = np.asarray(s["beats"])
        lags = np.arange(-0.12, 0.1201, 1 / fps)

        def strength(times: np.ndarray, env: np.ndarray = env, fps: float = fps) -> float:
            idx = np.round(times * fps).astype(int)
            idx = idx[(idx >= 0) & (idx < len(env))]
            return float(env[idx].mean()) if idx.size else 0.0

        scores = [strength(beats + lag) for lag in lags]
        best = float(lags[int(np.argmax(scores))])
        half = np.median(np.diff(beats)) / 2
        contrast = strength(beats) / max(strength(beats + half), 1e-9)
        lags_by_kind.setdefault(s["kind"], []).append(best)
        line = (
            f"{s['id']:<34} {s['kind']:<9} best lag {best * 1000:+6.1f} ms, "
            f"on/off-beat onset ratio {contrast:4.2f}"
        )
        if s.get("key"):
            chroma = librosa.feature.chroma_cqt(y=y, sr=sr).sum(axis=1)
            x = (chroma - chroma.mean()) / chroma.std()
            corr = []
            for mode, prof in (("major", major), ("minor", minor)):
                for tonic in range(12):
                    pr = np.roll(prof, tonic)
                    corr.append((float(np.dot(x, (pr - pr.mean()) / pr.std())), tonic, mode))
            corr.sort(reverse=True)
            rank = [(PITCH_CLASSES[t], m) for _, t, m in corr].index((s["key"], s["mode"])) + 1
            line += f"; key {s['key']} {s['mode']}: rank {rank}/24 in chroma (top: "
            line += f"{PITCH_CLASSES[corr[0][1]]} {corr[0][2]})"
        lines.append(line)
    for kind, lags_ in sorted(lags_by_kind.items()):
        lines.append(
            f"{kind}: median best lag {np.median(lags_) * 1000:+.1f} ms, "
            f"|lag| > 35 ms on {sum(abs(v) > 0.035 for v in lags_)} of {len(lags_)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--check", action="store_true", help="audio-side spot checks of the truth")
    a = p.parse_args(argv)
    build(a.force, a.workers)
    data = load()
    print(summarize(data))
    if a.check:
        print(check(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
