"""Drum grooves of many styles over syncopated accompaniment, rendered with FluidSynth, with
exact beats and bar lines: training audio for the beat network (``bench/beatset.py``).

What the beat network must learn is which sounds mark the beat: the kick on 1 (and often 3),
the snare or clap on 2 and 4, hats and stabs between, in every common groove, including those
where the between is the louder (off-beat open hats, stabs and bass; a kick on the "and" of
2). Real music with exact beats is scarce and mostly tracker modules; these loops add the
groove families DJs play, each drawn with others (seed :data:`SEED` + index):

- drums: rock, pop, funk, house, techno, trance, drum and bass, breakbeat, hip-hop, UK
  garage, reggae one drop, dembow, baiao, ska, shuffle (triplet grid), waltz (3/4), or none
  for a few bars (a breakdown); one of the GM kits (standard, room, power, electronic, TR-808,
  jazz, brush) of one of two soundfonts (FluidR3, MuseScore General);
- bass on the beats, on the off-beats, 3-3-2, pumping eighths, syncopated or held;
- chords as pads, off-beat stabs, on-beat stabs, skank, sixteenth arpeggios or a dotted-eighth
  pluck with its echo; a syncopated melody;
- every layer's level drawn (the kick often below the stabs), a lead-in of 0-2 s.

Nothing here is used by a bench's judged set (``grooves.py`` has its own numpy kit) or by
``tests/``. Truth: the quarter note (the dotted quarter's thirds for the shuffle are the
triplet grid under quarter beats), bars of 4 (3 for the waltz).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SEED = 51000
SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
)
#: FluidSynth's render latency (``bench/truthset.py`` measures it the same way: 4.8 ms).
LATENCY_S = 0.0048
SECONDS = 32.0
KITS = (0, 8, 16, 24, 25, 32, 40)

# Drum patterns on a grid of `steps` per beat (4: sixteenths; 3: triplets), one bar each.
# K kick, S snare, C clap, R rim, H closed hat, O open hat, P pedal hat, D ride, B shaker,
# T tambourine, W cowbell, G low conga, g high conga. "x" loud, "o" soft.
DRUM_NOTES = {
    "K": 36, "S": 38, "C": 39, "R": 37, "H": 42, "O": 46, "P": 44, "D": 51,
    "B": 70, "T": 54, "W": 56, "G": 64, "g": 63,
}  # fmt: skip
STYLES: dict[str, dict[str, Any]] = {
    "rock": {
        "bpm": (90, 150),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8, 16),
        "p": [
            {"K": "x.......x.x.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x."},
            {"K": "x......x..x.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x."},
            {"K": "x.x.....x.......", "S": "....x.......x...", "D": "x.x.x.x.x.x.x.x."},
        ],
    },
    "pop": {
        "bpm": (80, 125),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8, 24),
        "p": [
            {"K": "x.....x...x.....", "S": "....x.......x...", "H": "xoxoxoxoxoxoxoxo"},
            {
                "K": "x.......x.....x.",
                "C": "....x.......x...",
                "H": "x.x.x.x.x.x.x.x.",
                "T": "....x.......x...",
            },
        ],
    },
    "funk": {
        "bpm": (88, 115),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8),
        "p": [
            {"K": "x..x..x...x..x..", "S": "....x..o.o..x..o", "H": "xoxoxoxoxoxoxoxo"},
            {"K": "x.x...x..x......", "S": "....x.o.....x.o.", "H": "x.xxx.xxx.xxx.xx"},
        ],
    },
    "house": {
        "bpm": (118, 128),
        "steps": 4,
        "beats": 4,
        "kits": (24, 25),
        "p": [
            {
                "K": "x...x...x...x...",
                "C": "....x.......x...",
                "O": "..x...x...x...x.",
                "H": "x.x.x.x.x.x.x.x.",
            },
            {
                "K": "x...x...x...x...",
                "C": "....x.......x...",
                "H": "..x...x...x...x.",
                "B": "xxxxxxxxxxxxxxxx",
            },
        ],
    },
    "techno": {
        "bpm": (124, 138),
        "steps": 4,
        "beats": 4,
        "kits": (24, 25),
        "p": [
            {"K": "x...x...x...x...", "H": "xoxoxoxoxoxoxoxo", "R": "...x..x....x.x.."},
            {"K": "x...x...x...x...", "O": "..x...x...x...x.", "C": "............x..."},
        ],
    },
    "trance": {
        "bpm": (132, 142),
        "steps": 4,
        "beats": 4,
        "kits": (24, 25),
        "p": [
            {"K": "x...x...x...x...", "O": "..x...x...x...x.", "C": "....x.......x..."},
        ],
    },
    "dnb": {
        "bpm": (164, 178),
        "steps": 4,
        "beats": 4,
        "kits": (0, 24, 25),
        "p": [
            {"K": "x.........x.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x."},
            {"K": "x.........xx....", "S": "....x..o.o..x..o", "H": "x.x.x.x.x.x.x.x."},
        ],
    },
    "breakbeat": {
        "bpm": (125, 140),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8, 25),
        "p": [
            {"K": "x.x.......xx....", "S": "....x..x.x..x..x", "D": "x.x.x.x.x.x.x.x."},
            {"K": "x.........x..x..", "S": "....x.......x...", "H": "x.xxx.xxx.xxx.xx"},
        ],
    },
    "hiphop": {
        "bpm": (80, 100),
        "steps": 4,
        "beats": 4,
        "kits": (0, 25),
        "p": [
            {"K": "x......x.xx.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x."},
            {"K": "x..x......x..x..", "C": "....x.......x...", "H": "xxxxxxxxxxxxxxxx"},
        ],
    },
    "garage": {
        "bpm": (128, 136),
        "steps": 4,
        "beats": 4,
        "kits": (24, 25),
        "p": [
            {
                "K": "x.........x.....",
                "S": "....x.......x...",
                "H": "..x...x...x...x.",
                "B": "x.xxx.xxx.xxx.xx",
            },
        ],
    },
    "onedrop": {
        "bpm": (70, 90),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8),
        "p": [
            {"K": "........x.......", "R": "........x.......", "H": "x.x.x.x.x.x.x.x."},
        ],
    },
    "dembow": {
        "bpm": (88, 100),
        "steps": 4,
        "beats": 4,
        "kits": (24, 25),
        "p": [
            {"K": "x...x...x...x...", "S": "...x..x....x..x.", "H": "x.x.x.x.x.x.x.x."},
        ],
    },
    "baiao": {
        "bpm": (90, 120),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8),
        "p": [
            {
                "K": "x..x....x..x....",
                "R": "....x..x....x..x",
                "T": "x.xxx.xxx.xxx.xx",
                "G": "......x.......x.",
            },
        ],
    },
    "ska": {
        "bpm": (140, 170),
        "steps": 4,
        "beats": 4,
        "kits": (0, 8),
        "p": [
            {
                "K": "x.......x.......",
                "S": "....x.......x...",
                "H": "x.x.x.x.x.x.x.x.",
                "O": "..x...x...x...x.",
            },
        ],
    },
    "shuffle": {
        "bpm": (96, 140),
        "steps": 3,
        "beats": 4,
        "kits": (0, 32, 40),
        "p": [
            {"K": "x.....x.....", "S": "...x.....x..", "D": "x.xx.xx.xx.x"},
            {"K": "x..x..x..x..", "P": "...x.....x..", "D": "x.xx.xx.xx.x"},
        ],
    },
    "waltz": {
        "bpm": (90, 180),
        "steps": 4,
        "beats": 3,
        "kits": (0, 32, 40),
        "p": [
            {"K": "x...........", "S": "....x...x...", "H": "x.x.x.x.x.x."},
            {"K": "x.......x...", "P": "....x...x...", "D": "x...x.x.x..."},
        ],
    },
}
# Bass rhythms on a sixteenth grid of one 4/4 bar (3/4 and triplet grids use their own).
BASS = {
    "beats": "x...x...x...x...",
    "offbeats": "..x...x...x...x.",
    "332": "x..x..x.x..x..x.",
    "eighths": "x.x.x.x.x.x.x.x.",
    "synco": "x..x..x...x..x..",
    "held": "x...............",
}
CHORDS = ("pad", "offstabs", "onstabs", "skank", "arp", "dotted", "none")


def _grid(pattern: str, steps_per_beat: int, beat: float) -> list[tuple[float, int]]:
    return [
        (i * beat / steps_per_beat, 110 if ch == "x" else 60)
        for i, ch in enumerate(pattern)
        if ch in "xo"
    ]


def groove_midi(index: int) -> tuple[Any, dict[str, Any]]:
    """One groove (its MIDI and its spec: style, tempo, meter, lead-in, bars)."""
    import pretty_midi

    rng = np.random.default_rng([SEED, index])
    style_name = list(STYLES)[index % len(STYLES)]
    style = STYLES[style_name]
    tempo = float(rng.uniform(*style["bpm"]))
    beat = 60.0 / tempo
    steps, meter = style["steps"], style["beats"]
    bar = meter * beat
    bars = int(np.ceil(SECONDS / bar))
    lead_in = float(rng.uniform(0.0, 2.0))
    kit = int(rng.choice(style["kits"] if rng.random() < 0.7 else KITS))
    pattern = style["p"][int(rng.integers(len(style["p"])))]
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    drums = pretty_midi.Instrument(program=kit, is_drum=True)
    tonic = int(rng.integers(40, 52))
    minor = bool(rng.random() < 0.5)
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    prog = [0] + [int(d) for d in rng.choice(7, size=3)]
    per = int(rng.choice([1, 2]))
    gains = {k: float(rng.uniform(0.35, 1.0)) for k in "KSCRHOPDBTWGg"}
    # A breakdown: a few bars where the drums drop out (the layers must carry the beat).
    drop = set()
    if rng.random() < 0.3:
        s = int(rng.integers(2, max(3, bars - 4)))
        drop = set(range(s, min(bars, s + int(rng.choice([2, 4])))))

    def vel(v: int, g: float) -> int:
        return int(np.clip(v * g + rng.integers(-8, 9), 15, 127))

    def add(inst: Any, pitch: int, t: float, dur: float, v: int) -> None:
        inst.notes.append(pretty_midi.Note(v, int(pitch), lead_in + t, lead_in + t + dur))

    for b in range(bars):
        if b in drop:
            continue
        t0 = b * bar
        for name, pat in pattern.items():
            g = gains[name] * (1.2 if name == "K" else 1.0)
            for t, v in _grid(pat, steps, beat):
                add(drums, DRUM_NOTES[name], t0 + t, 0.1, vel(v, g))
    pm.instruments.append(drums)

    def chord(b: int) -> list[int]:
        d = prog[(b // per) % len(prog)]
        return [tonic + 12 + scale[(d + k) % 7] + 12 * ((d + k) // 7) for k in (0, 2, 4)]

    # Bass.
    bass = pretty_midi.Instrument(program=int(rng.choice([33, 34, 35, 38, 39, 87])))
    bass_rhythm = str(rng.choice(list(BASS)))
    bgain = float(rng.uniform(0.5, 1.0))
    for b in range(bars):
        root = chord(b)[0] - 12
        if meter == 3 or steps == 3:
            hits = [(k * beat, 100) for k in range(meter)]
            if bass_rhythm in ("offbeats", "eighths"):
                hits = [
                    (k * beat + (2 if steps == 3 else 2) * beat / steps, 90) for k in range(meter)
                ]
        else:
            hits = _grid(BASS[bass_rhythm], 4, beat)
        for i, (t, v) in enumerate(hits):
            nxt = hits[i + 1][0] if i + 1 < len(hits) else bar
            add(bass, root, b * bar + t, max(0.08, min(nxt - t, beat) * 0.9), vel(v, bgain))
    pm.instruments.append(bass)
    # Chords.
    kind = str(rng.choice(CHORDS))
    cprog = {
        "pad": [48, 50, 89, 90, 91, 94], "offstabs": [0, 4, 5, 16, 62, 81],
        "onstabs": [0, 4, 16, 61, 62], "skank": [27, 28, 16, 4], "arp": [80, 81, 84, 11, 8],
        "dotted": [25, 46, 80, 81, 105], "none": [0],
    }[kind]  # fmt: skip
    ch = pretty_midi.Instrument(program=int(rng.choice(cprog)))
    cg = float(rng.uniform(0.4, 1.0))
    for b in range(bars):
        c = chord(b)
        t0 = b * bar
        if kind == "pad":
            for p in c:
                add(ch, p, t0, bar * 0.98, vel(80, cg))
        elif kind in ("offstabs", "skank"):
            offs = [(k + 0.5) * beat for k in range(meter)]
            if kind == "skank":
                offs = (
                    [(k + 0.5) * beat for k in range(meter)]
                    if rng.random() < 0.5
                    else [k * beat for k in range(1, meter, 2)]
                )
            for t in offs:
                for p in c:
                    add(ch, p, t0 + t, beat * 0.25, vel(105, cg))
        elif kind == "onstabs":
            for k in range(meter):
                for p in c:
                    add(ch, p, t0 + k * beat, beat * 0.3, vel(100, cg))
        elif kind == "arp":
            for k in range(meter * 4):
                add(ch, c[k % 3] + 12 * ((k // 3) % 2), t0 + k * beat / 4, beat / 4, vel(85, cg))
        elif kind == "dotted":
            t, k = 0.0, 0
            while t < bar - 0.02:
                add(ch, c[k % 3] + 12, t0 + t, beat / 2, vel(110, cg))
                add(ch, c[k % 3] + 12, t0 + t + 0.75 * beat, beat / 2, vel(55, cg))
                t, k = t + 0.75 * beat, k + 1
    if kind != "none":
        pm.instruments.append(ch)
    # A syncopated melody, sometimes.
    if rng.random() < 0.6:
        mel = pretty_midi.Instrument(program=int(rng.choice([73, 56, 65, 80, 81, 11, 24])))
        mg = float(rng.uniform(0.4, 1.0))
        for b in range(bars):
            c = chord(b)
            pos = sorted(rng.choice(meter * 4, size=int(rng.integers(2, 7)), replace=False))
            for i, s in enumerate(pos):
                nxt = pos[i + 1] if i + 1 < len(pos) else meter * 4
                pitch = c[int(rng.integers(3))] + 12 + int(rng.choice([0, 0, 2, -1]))
                add(mel, pitch, b * bar + s * beat / 4, (nxt - s) * beat / 4 * 0.9, vel(95, mg))
        pm.instruments.append(mel)
    spec = {
        "style": style_name,
        "tempo": tempo,
        "meter": meter,
        "lead_in": lead_in,
        "bars": bars,
        "kit": kit,
        "soundfont": str(SOUNDFONTS[int(rng.integers(len(SOUNDFONTS)))]),
    }
    return pm, spec


def render(index: int, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(mono float32 audio at ``sr``, beats, downbeats, spec) of groove ``index``."""
    import soundfile as sf

    pm, spec = groove_midi(index)
    with tempfile.TemporaryDirectory() as d:
        mid, wav = Path(d) / "g.mid", Path(d) / "g.wav"
        pm.write(str(mid))
        subprocess.run(
            ["fluidsynth", "-ni", "-g", "0.5", "-r", str(sr), "-F", str(wav), spec["soundfont"],
             str(mid)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        y, got = sf.read(wav, dtype="float32", always_2d=True)
    assert got == sr, got
    y = y.mean(axis=1)
    beat = 60.0 / spec["tempo"]
    n = spec["bars"] * spec["meter"]
    beats = spec["lead_in"] + LATENCY_S + np.arange(n) * beat
    return y, beats, beats[:: spec["meter"]], spec
