"""A stems set of music no one here made: lead and accompaniment of the same song, with truth.

The retrieval bench (``bench/retrieval.py --set real``) asks whether a song's lead finds its own
accompaniment at the same bars among every other song's accompaniment and transposed copies
(issue 10). That needs songs whose layers exist as separate audio. Two kinds of source, both
Debian packages fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
``bench/.cache/stemset/`` (the pattern of ``bench/realset.py``; its RESERVED packages are never
used):

* **Frets on Fire songs** (``fretsonfire-songs-muldjord``, ``fretsonfire-songs-sectoid``): eight
  produced rock/metal songs, each a ``guitar.ogg`` (the lead guitar alone: the query) and a
  ``song.ogg`` (the band without it: the partner). ``notes.mid`` holds one tempo, which is the
  song's constant tempo with beat 0 at audio time 0; the build checks that phase by onset
  alignment (``realset.onset_lag`` of the partner's onsets against the MIDI beats) and records
  it.
* **Tracker modules** from the game packages of ``realset.TRACKER_PACKAGES`` plus a few more
  (``EXTRA_TRACKER_PACKAGES``), rendered through libopenmpt (ctypes) once per layer with
  channels muted (the ``interactive`` extension interface, ``set_channel_mute_status``). The
  channels are split from the pattern data (:func:`channel_stats`, :func:`split_channels`):
  **drum** channels play each of their instruments at one or two pitches (or carry a drum
  sample name), the **lead** channel is the melodic channel (at least ``LEAD_MIN_NOTES``
  notes, one instrument over ``LEAD_MIN_PITCHES`` or more pitches) with the highest median
  pitch. The query is lead + drums, the partner every channel but the lead (drums included), as in the synthesized bench.
  Modules where either layer is silent, or with no melodic channel besides the lead, are
  skipped with the reason. Truth (tempo, beats, downbeats, meter and their certainty flags)
  comes from the played rows' times as in ``realset.render_module``.

* **Freedoom's MIDI music** (``freedoom``, the set of ``bench/midiset.py``, BSD-3-Clause),
  **held out whole** (split ``freedoom``: ``retrieval.py --set real --split freedoom``; nothing
  is tuned on it): each MIDI file that passes midiset's grid rule is rendered twice with
  FluidSynth and the GM soundfont, the query = the **lead** instrument (the melodic track of at
  least ``LEAD_MIN_NOTES`` notes over ``LEAD_MIN_PITCHES`` pitches, mostly one note at a time,
  median note E3 or higher, no bass, pad, effect or percussive program, with the highest median
  pitch) + the GM drum tracks, the partner = every track but the lead.
  Truth from the MIDI grid (``realset.midi_grid_truth``, as midiset), the first ``EXCERPT_S``
  seconds from the first note.

Each song also records ``lead_onsets``: the times its lead plays a note (the lead channel's
notes on the played rows; the guitar chart of ``notes.mid``), so that the bench can tell a
phrase where the lead plays from one where only the drums do.

**Transposed copies** of the partner of about half the songs (Rubber Band through pedalboard;
+5 and +1 semitones, and +7 for a quarter of them) go into the library as decoys: a copy a
fourth up has its key a fifth from the query's, which the key rule calls fine.

Split: ``dev`` when the first byte of sha1(source id) is even, else ``heldout`` (as realset);
Freedoom's songs are all ``freedoom``.

Layout: ``bench/.cache/stemset/songs/<id>/{query,partner}.flac`` (mono, 22.05 kHz),
``copies/<id>_{+5,+1,+7}.flac``, ``stems.json`` (every song's source, split, channel choice,
truth and notes; the skipped modules with why).

Usage::

    .venv/bin/python bench/stemset.py            # build (cached) and print a summary
    .venv/bin/python bench/stemset.py --force    # rebuild
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realset  # noqa: E402

BUILD_VERSION = 1
#: Version of ``stems.json``: 2 added Freedoom's MIDI songs (the songs of version 1 are reused).
MANIFEST_VERSION = 2
#: A lead plays one note at a time for at least this share of its notes (a pad or a chord
#: track is no lead).
LEAD_MONO_SHARE = 0.8
#: GM programs that are no lead: basses (32-39), pads and synth effects (88-103), percussive
#: instruments and sound effects (112-127), timpani and orchestra hits (47, 55).
NOT_LEAD_PROGRAMS = frozenset([*range(32, 40), *range(88, 104), *range(112, 128), 47, 55])
#: A lead's median note is at least E3: a monophonic line below is a bass line.
LEAD_MIN_MEDIAN = 52
SR = 22050  # stems are stored at the analysis rate, mono
RENDER_SR = 44100
CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "stemset"
RESERVED = realset.RESERVED

FOF_PACKAGES = {
    "fretsonfire-songs-muldjord": "usr/share/games/fretsonfire/data/songs/muldjord",
    "fretsonfire-songs-sectoid": "usr/share/games/fretsonfire/data/songs/sectoid",
}
#: Tracker packages beyond realset's (none reserved).
EXTRA_TRACKER_PACKAGES = {
    "heroes-sound-tracks": "usr/share/games/heroes/mod",
    "open-invaders-data": "usr/share/open-invaders",
    "solarwolf": "usr/share/games/solarwolf/data/music",
    "criticalmass-data": "usr/share/games/criticalmass",
    "monsterz-data": "usr/share/games/monsterz/sound",
}
TRACKER_PACKAGES = {**realset.TRACKER_PACKAGES, **EXTRA_TRACKER_PACKAGES}
FREEDOOM_PACKAGE = "freedoom"
#: A lead channel plays at least this many notes over this many distinct pitches.
LEAD_MIN_NOTES = 12
LEAD_MIN_PITCHES = 5
#: Sample/instrument names that say "drum".
DRUM_NAMES = re.compile(
    r"(kick|bd|bass ?drum|snare|sd|hi.?hat|hh|hat|crash|ride|cymb|tom|drum|perc|clap|shaker|"
    r"tamb|cowbell|rim|conga|bongo|808|909)",
    re.I,
)
#: A layer quieter than this (dBFS RMS over the song) counts as silent.
SILENT_DB = -50.0
#: Copies: semitones and which songs get them (sha1 byte 2 of the source id, modulo 4).
COPY_SHIFTS = {5: (0, 1), 1: (0, 1), 7: (0,)}
FOF_SECONDS = 150.0  # produced songs: their first 150 s (analysis time on 2 shared cores)


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def split_of(source_id: str) -> str:
    return realset.split_of(source_id)


def copy_shifts(source_id: str) -> list[int]:
    """Semitone shifts of the transposed copies this song's partner gets (maybe none)."""
    b = hashlib.sha1(source_id.encode()).digest()[2] % 4
    return [k for k, which in COPY_SHIFTS.items() if b in which]


def fetch(package: str) -> Path:
    """The package unpacked under the cache (``realset.fetch_package``)."""
    assert not any(x in package for x in RESERVED), package
    return realset.fetch_package(package, CACHE_ROOT)


def to_mono_sr(y: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    mono = y.mean(axis=1) if y.ndim == 2 else y
    return np.asarray(soxr.resample(mono, sr, SR) if sr != SR else mono, np.float32)


def write_flac(y: np.ndarray, path: Path) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1.0, 1.0), SR, subtype="PCM_16", format="FLAC")


def level_db(y: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


# ------------------------------------------------------------------------------------------
# Frets on Fire
def fof_song(args: tuple[Path, str, str, Path, str]) -> dict[str, Any]:
    """Query (guitar.ogg) and partner (song.ogg) of one Frets on Fire song, with its tempo."""
    import pretty_midi
    import soundfile as sf

    folder, package, licence, out, sid = args
    source_id = f"{package}:{folder.name}"
    item = realset.base_item(source_id, "fretsonfire", package, str(folder), licence)
    item["id"] = sid
    pm = pretty_midi.PrettyMIDI(str(folder / "notes.mid"))
    _, tempi = pm.get_tempo_changes()
    if len(tempi) != 1:
        raise ValueError(f"{len(tempi)} tempi in notes.mid")
    tempo = float(tempi[0])
    layers = {}
    for name, f in (("query", "guitar.ogg"), ("partner", "song.ogg")):
        y, sr = sf.read(str(folder / f), dtype="float32", always_2d=True)
        layers[name] = to_mono_sr(y[: int(FOF_SECONDS * sr)], sr)
    n = min(len(v) for v in layers.values())
    dur = n / SR
    beats = np.arange(0.0, dur - 0.05, 60.0 / tempo)
    for name, y in layers.items():
        write_flac(y[:n], out / item["id"] / f"{name}.flac")
    # Phase check: the band's onsets against the MIDI beats (the partner has the drums).
    lag = realset.onset_lag(str(out / item["id"] / "partner.flac"), beats.tolist())
    onsets = sorted({round(n.start, 3) for i in pm.instruments for n in i.notes if n.start < dur})
    item.update(
        lead_onsets=onsets,
        tempo=round(tempo, 4),
        tempo_steady=True,
        tempo_level_certain=True,
        beats=np.round(beats, 5).tolist(),
        downbeats=np.round(beats[::4], 5).tolist(),
        beats_exact=abs(lag) <= 0.035,
        beat_level_certain=True,
        downbeats_certain=False,  # notes.mid has no bar phase of its own beyond 4/4 from 0
        meter=4,
        meter_certain=True,
        onset_lag_ms=round(lag * 1000, 1),
        duration=round(dur, 3),
        query_db=round(level_db(layers["query"]), 1),
        partner_db=round(level_db(layers["partner"]), 1),
        query_layer="guitar.ogg (lead guitar)",
        partner_layer="song.ogg (the band without the lead guitar)",
    )
    item["notes"].append(
        f"tempo {tempo:.2f} BPM from notes.mid, beat 0 at 0 s; band onsets lag the MIDI beats "
        f"by {lag * 1000:+.0f} ms; first {FOF_SECONDS:.0f} s"
    )
    return item


# ------------------------------------------------------------------------------------------
# Tracker modules
class _Interactive(ctypes.Structure):
    """libopenmpt_ext's ``openmpt_module_ext_interface_interactive`` (function pointers)."""

    _fields_ = [
        (name, ctypes.c_void_p)
        for name in (
            "set_current_speed",
            "set_current_tempo",
            "set_tempo_factor",
            "get_tempo_factor",
            "set_pitch_factor",
            "get_pitch_factor",
            "set_global_volume",
            "get_global_volume",
            "set_channel_volume",
            "get_channel_volume",
            "set_channel_mute_status",
            "get_channel_mute_status",
            "set_instrument_mute_status",
            "get_instrument_mute_status",
            "play_note",
            "stop_note",
        )
    ]


def _lib() -> ctypes.CDLL:
    lib = realset._libopenmpt()
    vp = ctypes.c_void_p
    lib.openmpt_module_ext_create_from_memory.restype = vp
    lib.openmpt_module_ext_create_from_memory.argtypes = [vp, ctypes.c_size_t] + [vp] * 7
    lib.openmpt_module_ext_get_module.restype = vp
    lib.openmpt_module_ext_get_module.argtypes = [vp]
    lib.openmpt_module_ext_get_interface.restype = ctypes.c_int
    lib.openmpt_module_ext_get_interface.argtypes = [vp, ctypes.c_char_p, vp, ctypes.c_size_t]
    lib.openmpt_module_ext_destroy.argtypes = [vp]
    lib.openmpt_module_get_num_instruments.argtypes = [vp]
    lib.openmpt_module_get_num_instruments.restype = ctypes.c_int32
    for fn in ("openmpt_module_get_instrument_name", "openmpt_module_get_sample_name"):
        getattr(lib, fn).argtypes = [vp, ctypes.c_int32]
        getattr(lib, fn).restype = ctypes.c_void_p
    lib.openmpt_free_string.argtypes = [vp]
    return lib


def _string(lib: ctypes.CDLL, ptr: int | None) -> str:
    if not ptr:
        return ""
    s = ctypes.string_at(ptr).decode("latin-1")
    lib.openmpt_free_string(ptr)
    return s


def render_layers(
    data: bytes, seconds: float, mutes: list[list[int]]
) -> tuple[list[np.ndarray], list[tuple[float, int, int]]]:
    """Render a module once per mute list; also the (time, pattern, row) of every played row."""
    lib = _lib()
    outs = []
    rows: list[tuple[float, int, int]] = []
    for muted in mutes:
        buf = ctypes.create_string_buffer(data, len(data))
        ext = lib.openmpt_module_ext_create_from_memory(buf, len(data), *([None] * 7))
        if not ext:
            raise ValueError("libopenmpt could not open it")
        try:
            mod = lib.openmpt_module_ext_get_module(ext)
            iface = _Interactive()
            if not lib.openmpt_module_ext_get_interface(
                ext, b"interactive", ctypes.byref(iface), ctypes.sizeof(iface)
            ):
                raise RuntimeError("libopenmpt has no interactive interface")
            mute = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int)(
                iface.set_channel_mute_status
            )
            for c in muted:
                mute(ext, c, 1)
            lib.openmpt_module_set_repeat_count(mod, -1)
            total, chunk = int(seconds * RENDER_SR), 64
            audio = np.zeros((total + chunk) * 2, np.float32)
            frames, last, track = 0, None, not rows
            while frames < total:
                n = lib.openmpt_module_read_interleaved_float_stereo(
                    mod, RENDER_SR, chunk, audio[frames * 2 :].ctypes.data
                )
                if n == 0:
                    break
                if track:
                    state = (
                        lib.openmpt_module_get_current_pattern(mod),
                        lib.openmpt_module_get_current_row(mod),
                    )
                    if state != last:
                        rows.append(((frames + n / 2) / RENDER_SR, *state))
                        last = state
                frames += n
            outs.append(audio[: frames * 2].reshape(-1, 2))
        finally:
            lib.openmpt_module_ext_destroy(ext)
    return outs, rows


def channel_stats(data: bytes, rows: list[tuple[float, int, int]]) -> list[dict[str, Any]]:
    """Per channel, over the rows as played: notes, pitches, instruments, drum-name hints."""
    lib = _lib()
    buf = ctypes.create_string_buffer(data, len(data))
    mod = lib.openmpt_module_create_from_memory2(buf, len(data), *([None] * 7))
    try:
        nch = lib.openmpt_module_get_num_channels(mod)
        n_inst = lib.openmpt_module_get_num_instruments(mod)
        name_of = (
            lib.openmpt_module_get_instrument_name if n_inst else lib.openmpt_module_get_sample_name
        )
        cmd = lib.openmpt_module_get_pattern_row_channel_command
        stats = []
        played = sorted({(p, r) for _, p, r in rows})
        for c in range(nch):
            notes: list[int] = []
            inst_pitches: dict[int, set[int]] = {}
            last_inst = 0
            for p, r in played:
                note, inst = cmd(mod, p, r, c, 0), cmd(mod, p, r, c, 1)
                last_inst = inst or last_inst
                if 1 <= note <= 120:
                    notes.append(note)
                    inst_pitches.setdefault(last_inst, set()).add(note)
            names = {i: _string(lib, name_of(mod, i - 1)) for i in inst_pitches if i > 0}
            stats.append(
                {
                    "channel": c,
                    "notes": len(notes),
                    "pitches": len(set(notes)),
                    "median_pitch": float(np.median(notes)) if notes else 0.0,
                    "instruments": len(inst_pitches),
                    "max_pitches_per_instrument": max(
                        (len(v) for v in inst_pitches.values()), default=0
                    ),
                    "drum_names": sorted(n for n in names.values() if DRUM_NAMES.search(n)),
                }
            )
    finally:
        lib.openmpt_module_destroy(mod)
    return stats


def split_channels(stats: list[dict[str, Any]]) -> tuple[list[int], list[int], str]:
    """(lead channels, drum channels, why): the choice the stems are rendered from.

    Raises
    ------
    ValueError
        No melodic channel to lead, or nothing melodic left for the accompaniment.
    """
    drums = [
        s["channel"]
        for s in stats
        if s["notes"] >= 4
        and (s["max_pitches_per_instrument"] <= 2 or (s["drum_names"] and s["pitches"] <= 4))
    ]
    # A melody is one instrument over several pitches (pitched drum kits spread their pitches
    # over many instruments).
    melodic = [
        s
        for s in stats
        if s["channel"] not in drums
        and s["notes"] >= LEAD_MIN_NOTES
        and s["max_pitches_per_instrument"] >= LEAD_MIN_PITCHES
    ]
    if not melodic:
        raise ValueError("no melodic channel to lead")
    lead = max(melodic, key=lambda s: (s["median_pitch"], s["pitches"]))
    rest = [s for s in stats if s["channel"] not in drums and s["channel"] != lead["channel"]]
    if not any(s["notes"] >= 4 and s["pitches"] >= 2 for s in rest):
        raise ValueError("nothing melodic besides the lead: no harmony to match")
    why = (
        f"lead: channel {lead['channel']} ({lead['notes']} notes, {lead['pitches']} pitches, "
        f"median note {lead['median_pitch']:.0f}, the highest of {len(melodic)} melodic); "
        f"drums: {drums or 'none found'}"
    )
    return [lead["channel"]], drums, why


def tracker_song(args: tuple[Path, str, str, Path, str]) -> dict[str, Any]:
    """Render one module's query (lead + drums) and partner (all but the lead) layers."""
    path, package, licence, out, sid = args
    source_id = f"{package}:{path.name}"
    with tempfile.TemporaryDirectory() as tmp:
        # Truth from the played rows, exactly as realset (it also renders the full mix).
        item = realset.render_module((path, package, Path(tmp), licence))
        mix_path = Path(tmp) / item["path"]
        mix_db = level_db(realset_mix(mix_path))
    assert item["source_id"] == source_id
    item["id"] = sid
    data = path.read_bytes()
    seconds = item["duration"]
    _, rows = render_layers(data, seconds, [[]])
    stats = channel_stats(data, rows)
    lead, drums, why = split_channels(stats)
    nch = len(stats)
    query_mute = [c for c in range(nch) if c not in lead and c not in drums]
    (query, partner), _ = render_layers(data, seconds, [query_mute, lead])
    peak = max(float(np.abs(query).max()), float(np.abs(partner).max()), 1e-9)
    layers = {"query": query, "partner": partner}
    levels = {}
    for name, y in layers.items():
        y = to_mono_sr(y * (0.89 / peak), RENDER_SR)
        levels[name] = level_db(y)
        if levels[name] < SILENT_DB:
            raise ValueError(f"{name} layer silent ({levels[name]:.0f} dB)")
        layers[name] = y
    for name, y in layers.items():
        write_flac(y, out / item["id"] / f"{name}.flac")
    item.pop("path", None)
    item.pop("format", None)
    item.update(
        lead_onsets=lead_onsets(data, rows, lead[0]),
        channels=nch,
        lead_channels=lead,
        drum_channels=drums,
        channel_choice=why,
        channel_stats=stats,
        query_db=round(levels["query"], 1),
        partner_db=round(levels["partner"], 1),
        mix_db=round(mix_db, 1),
        query_layer="lead + drum channels",
        partner_layer="every channel but the lead",
    )
    return item


def lead_onsets(data: bytes, rows: list[tuple[float, int, int]], channel: int) -> list[float]:
    """Times of the played rows where ``channel`` starts a note."""
    lib = _lib()
    buf = ctypes.create_string_buffer(data, len(data))
    mod = lib.openmpt_module_create_from_memory2(buf, len(data), *([None] * 7))
    try:
        cmd = lib.openmpt_module_get_pattern_row_channel_command
        return [round(t, 3) for t, p, r in rows if 1 <= cmd(mod, p, r, channel, 0) <= 120]
    finally:
        lib.openmpt_module_destroy(mod)


def realset_mix(path: Path) -> np.ndarray:
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return to_mono_sr(y, sr)


def song_id(package: str, name: str) -> str:
    """Folder name of a song: its package's first word and its file/folder name (unique)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{package.split('-')[0]}_{name}").strip("_")


def cached_song(fn: Any, args: tuple[Path, str, str, Path]) -> dict[str, Any]:
    """``fn(args)`` with the song's id set, cached in ``songs/<id>/item.json``."""
    sid = song_id(args[1], args[0].name)
    cache = args[3] / sid / "item.json"
    if cache.exists():
        item: dict[str, Any] = json.loads(cache.read_text())
        if item.get("build_version") == BUILD_VERSION:
            return item
    item = fn((*args[:3], args[3], sid))
    item["build_version"] = BUILD_VERSION
    cache.write_text(json.dumps(item, default=realset._json_default))
    return item


# ------------------------------------------------------------------------------------------
# Freedoom's MIDI music
def freedoom_midis(root: Path) -> list[Path]:
    """Extract every Freedoom MIDI lump (deduplicated by content) to ``freedoom_midi/*.mid``."""
    import midiset

    out_dir = CACHE_ROOT / "freedoom_midi"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, seen = [], set()
    for wad in midiset.WADS:
        for name, lump in midiset.wad_music(root / wad):
            digest = hashlib.sha1(lump).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            path = out_dir / f"{Path(wad).stem}_{name}.mid"
            if not path.exists():
                path.write_bytes(lump)
            paths.append(path)
    return sorted(paths)


def mono_share(notes: list[Any]) -> float:
    """Share of ``notes`` that start after the previous one has ended (within 30 ms)."""
    starts = sorted(notes, key=lambda n: n.start)
    ok = sum(1 for a, b in zip(starts, starts[1:], strict=False) if b.start >= a.end - 0.03)
    return (ok + 1) / max(len(starts), 1)


def freedoom_song(args: tuple[Path, str, str, Path, str]) -> dict[str, Any]:
    """Render one Freedoom MIDI file's query (lead + drums) and partner (all but the lead)."""
    import copy

    import soundfile as sf

    import midiset
    from truthset import fluidsynth_render

    path, package, licence, out, sid = args
    source_id = f"{package}:{path.stem}"
    item = realset.base_item(source_id, "midi", package, path.name, licence)
    item["id"] = sid
    item["split"] = "freedoom"
    pm, first, share = midiset.load_gridded(path)
    end = first + midiset.EXCERPT_S
    stats = []
    for k, inst in enumerate(pm.instruments):
        inside = [n for n in inst.notes if n.start < end]
        stats.append(
            {
                "track": k,
                "program": int(inst.program),
                "drum": bool(inst.is_drum),
                "notes": len(inside),
                "pitches": len({n.pitch for n in inside}),
                "median_pitch": float(np.median([n.pitch for n in inside])) if inside else 0.0,
                "mono_share": round(mono_share(inside), 3) if inside else 0.0,
            }
        )
    melodic = [
        t for t in stats
        if not t["drum"] and t["notes"] >= LEAD_MIN_NOTES and t["pitches"] >= LEAD_MIN_PITCHES
    ]  # fmt: skip
    leads = [
        t for t in melodic
        if t["mono_share"] >= LEAD_MONO_SHARE and t["program"] not in NOT_LEAD_PROGRAMS
        and t["median_pitch"] >= LEAD_MIN_MEDIAN
    ]  # fmt: skip
    if not leads:
        raise ValueError(
            "no melodic track above E3 plays one note at a time (basses, pads and effects "
            "excluded): no lead"
        )
    lead = max(leads, key=lambda t: t["median_pitch"])
    harmony = [t for t in stats if not t["drum"] and t["notes"] and t is not lead]
    if not harmony:
        raise ValueError("no pitched track beside the lead")
    drums = [t["track"] for t in stats if t["drum"]]
    layers: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, keep in (
            ("query", {lead["track"], *drums}),
            ("partner", {t["track"] for t in stats if t is not lead}),
        ):
            sub = copy.deepcopy(pm)
            sub.instruments = [i for k, i in enumerate(sub.instruments) if k in keep]
            mid, wav = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            sub.write(str(mid))
            fluidsynth_render(mid, wav, RENDER_SR)
            y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
            layers[name] = y.mean(axis=1)
    n = max(len(y) for y in layers.values())
    dur = min(n / RENDER_SR, end)
    if dur - first < midiset.MIN_SECONDS:
        raise ValueError(f"only {dur - first:.0f} s of music")
    realset.midi_grid_truth(item, pm, dur, first)
    if any(t.numerator in midiset.COMPOUND for t in pm.time_signature_changes if t.time < dur):
        item.update(tempo_level_certain=False, beat_level_certain=False)
    if not [t for t in pm.time_signature_changes if t.time < dur]:
        item.update(downbeats=None, downbeats_certain=False, meter=None, meter_certain=False)
    m = int(dur * RENDER_SR)
    for name in layers:
        layers[name] = np.pad(layers[name], (0, max(0, m - len(layers[name]))))[:m]
    peak = max(float(np.abs(y).max()) for y in layers.values())
    levels = {}
    for name, y in layers.items():
        y = to_mono_sr(y * (0.89 / max(peak, 1e-9)), RENDER_SR)
        levels[name] = level_db(y)
        if levels[name] < SILENT_DB:
            raise ValueError(f"{name} layer silent ({levels[name]:.0f} dB)")
        write_flac(y, out / sid / f"{name}.flac")
    item.update(
        duration=round(dur, 3),
        grid_share=round(share, 3),
        lead_onsets=sorted(
            round(float(x.start), 3) for x in pm.instruments[lead["track"]].notes if x.start < dur
        ),
        lead_channels=[lead["track"]],
        drum_channels=drums,
        channel_choice=(
            f"lead: track {lead['track']} (program {lead['program']}, {lead['notes']} notes, "
            f"{lead['pitches']} pitches, median note {lead['median_pitch']:.0f}, the highest of "
            f"{len(leads)} monophonic melodic); drums: {drums}"
        ),
        channel_stats=stats,
        query_db=round(levels["query"], 1),
        partner_db=round(levels["partner"], 1),
        query_layer="lead + GM drum tracks",
        partner_layer="every track but the lead",
    )
    return item


# ------------------------------------------------------------------------------------------
# Copies and build
def make_copy(args: tuple[Path, int, Path]) -> str:
    import pedalboard
    import soundfile as sf

    src, k, out = args
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out.name  # a copy is a pure function of its source: made once
    y, sr = sf.read(str(src), dtype="float32")
    z = pedalboard.time_stretch(
        y[None, :], sr, stretch_factor=1.0, pitch_shift_in_semitones=float(k), high_quality=True
    )[0]
    write_flac(z[: len(y)], out)
    return out.name


def build(force: bool = False, workers: int = 2, limit: int | None = None) -> Path:
    """Build the set once; returns the path of ``stems.json``."""
    from concurrent.futures import as_completed

    manifest = CACHE_ROOT / "stems.json"
    if manifest.exists() and not force:
        if json.loads(manifest.read_text()).get("version") == MANIFEST_VERSION:
            return manifest
    t0 = time.time()
    songs_dir, copies_dir = CACHE_ROOT / "songs", CACHE_ROOT / "copies"
    for d in (songs_dir, copies_dir):
        if d.exists() and force:
            shutil.rmtree(d)
        d.mkdir(parents=True, exist_ok=True)
    pkgroot = CACHE_ROOT / "pkgroot"
    jobs: list[tuple[Any, tuple[Path, str, str, Path]]] = []
    for package, folder in FOF_PACKAGES.items():
        fetch(package)
        lic = realset.licence_of(pkgroot, package)
        for d in sorted((pkgroot / folder).iterdir()):
            if (d / "guitar.ogg").exists() and (d / "song.ogg").exists():
                jobs.append((fof_song, (d, package, lic, songs_dir)))
    for package, folder in TRACKER_PACKAGES.items():
        fetch(package)
        lic = realset.licence_of(pkgroot, package)
        for f in sorted((pkgroot / folder).iterdir()):
            if f.suffix.lower() in realset.MODULE_EXT:
                jobs.append((tracker_song, (f, package, lic, songs_dir)))
    fetch(FREEDOOM_PACKAGE)
    lic = realset.licence_of(pkgroot, FREEDOOM_PACKAGE) or "BSD-3-Clause"
    for f in freedoom_midis(pkgroot):
        jobs.append((freedoom_song, (f, FREEDOOM_PACKAGE, lic, songs_dir)))
    if limit:
        jobs = jobs[:limit]
    log(f"building stems of {len(jobs)} sources ...")
    items, skipped = [], []
    with ProcessPoolExecutor(workers) as pool:
        futs = {pool.submit(cached_song, fn, a): f"{a[1]}:{a[0].name}" for fn, a in jobs}
        for fut in as_completed(futs):
            try:
                items.append(fut.result())
            except Exception as exc:
                skipped.append({"source_id": futs[fut], "why": f"{type(exc).__name__}: {exc}"})
    items.sort(key=lambda i: i["id"])
    ids = [i["id"] for i in items]
    assert len(set(ids)) == len(ids), "duplicate ids"
    copy_jobs = []
    for i in items:
        i["copies"] = []
        for k in copy_shifts(i["source_id"]):
            out = copies_dir / f"{i['id']}_+{k}.flac"
            i["copies"].append({"semitones": k, "path": f"copies/{out.name}"})
            copy_jobs.append((songs_dir / i["id"] / "partner.flac", k, out))
        i["query_path"] = f"songs/{i['id']}/query.flac"
        i["partner_path"] = f"songs/{i['id']}/partner.flac"
    log(f"making {len(copy_jobs)} Rubber Band copies ...")
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_copy, copy_jobs))
    data = {
        "version": MANIFEST_VERSION,
        "sr": SR,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.time() - t0, 1),
        "songs": items,
        "skipped": sorted(skipped, key=lambda s: s["source_id"]),
    }
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=realset._json_default))
    tmp.replace(manifest)
    log(f"built in {time.time() - t0:.0f} s")
    return manifest


def load(force: bool = False, workers: int = 2) -> dict[str, Any]:
    """Build if needed, then load with absolute paths."""
    manifest = build(force, workers)
    data = json.loads(manifest.read_text())
    root = manifest.parent
    for s in data["songs"]:
        s["query_path"] = str(root / s["query_path"])
        s["partner_path"] = str(root / s["partner_path"])
        for c in s["copies"]:
            c["path"] = str(root / c["path"])
    return data


def summarize(data: dict[str, Any]) -> str:
    songs = data["songs"]
    by = Counter((s["kind"], s["split"]) for s in songs)
    lines = [
        f"{len(songs)} songs with stems ({sum(s['duration'] for s in songs) / 60:.1f} min), "
        f"{sum(len(s['copies']) for s in songs)} transposed copies; build {data['build_seconds']} s",
        "by kind and split: " + ", ".join(f"{k}/{sp}: {v}" for (k, sp), v in sorted(by.items())),
        f"held-out songs: {sum(s['split'] == 'heldout' for s in songs)}, dev: "
        f"{sum(s['split'] == 'dev' for s in songs)}, Freedoom (held out whole): "
        f"{sum(s['split'] == 'freedoom' for s in songs)}",
        f"skipped: {len(data['skipped'])}",
    ]
    for s in data["skipped"]:
        lines.append(f"  {s['source_id']}: {s['why']}")
    for s in songs:
        if s["kind"] == "fretsonfire":
            lines.append(
                f"  {s['id']}: {s['tempo']:.0f} BPM, band onsets vs MIDI beats "
                f"{s['onset_lag_ms']:+.0f} ms"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="first N sources only (debugging)")
    a = p.parse_args(argv)
    build(a.force, a.workers, a.limit)
    print(summarize(load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
