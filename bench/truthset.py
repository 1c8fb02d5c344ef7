"""Held-out synthetic truth set for the analysis benchmark.

Songs are composed as MIDI with pretty_midi (random key over all 24, tempo 70-180 BPM, 4/4 or
3/4, 32-48 bars, a lead-in of silence, GM drums, a bass line on the chord roots, a chord
instrument and a melody over a diatonic progression that starts on the tonic), rendered with the
FluidSynth command line and the FluidR3 GM soundfont, and stored as WAV, MP3, FLAC or OGG. The
first songs also get Rubber Band copies (pedalboard, high quality): pitch shifts of k semitones
and time stretches of ratio r, with the truth moved accordingly, for the equivariance metrics.
Copies are made from the decoded song downmixed to mono at 22.05 kHz (what both analysers decode
to anyway; Rubber Band runs ~8x faster than on 44.1 kHz stereo) and stored as 22.05 kHz WAV.

The set is built once per parameter set and cached under ``bench/.cache/truthset/<key>/`` with
a ``truth.json`` manifest written last (an interrupted build is rebuilt). Nothing in ``tests/``
uses it, so it stays held out.

Usage::

    .venv/bin/python bench/truthset.py --n 40 --seed 2026

Timing truth
------------
About 30 % of songs open with a pickup (1 to meter-1 beats of snare fill and melody before the
first downbeat), so "downbeat = first beat" is not always right.

Beat and downbeat times are the MIDI grid (``lead_in + i * 60 / tempo``) plus FluidSynth's
measured onset latency (a kick/snare click render is analysed at build time: the first sample
within 20 dB of each hit's peak comes about 5 ms after the MIDI time at 44.1 kHz). Copies carry
``beats / r``; Rubber Band's high-quality engine does not keep time exactly (see
``timing_drift_ms`` in each copy's truth), so copy beat times are approximate and only their
tempo and key are used for scoring.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the composition, rendering or truth changes, so old caches are not reused.
GENERATOR_VERSION = 3
MIDI_RESOLUTION = 960
#: Rubber Band copies are made (and stored) mono at this rate.
COPY_SR = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "truthset"
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

#: Chord progressions as 0-based scale degrees, all starting on the tonic.
MAJOR_PROGRESSIONS = (
    (0, 4, 5, 3),  # I V vi IV
    (0, 3, 4, 3),  # I IV V IV
    (0, 5, 3, 4),  # I vi IV V
    (0, 3, 0, 4),  # I IV I V
    (0, 1, 4, 0),  # I ii V I
    (0, 2, 3, 4),  # I iii IV V
    (0, 3, 5, 4),  # I IV vi V
)
MINOR_PROGRESSIONS = (
    (0, 5, 2, 6),  # i VI III VII
    (0, 3, 4, 0),  # i iv v/V i
    (0, 6, 5, 4),  # i VII VI v/V
    (0, 3, 6, 2),  # i iv VII III
    (0, 5, 3, 4),  # i VI iv v/V
    (0, 3, 0, 4),  # i iv i v/V
)

#: Output formats cycle in this order (3 WAV, 2 MP3, 2 FLAC, 1 OGG per 8 songs).
FORMAT_CYCLE = ("wav", "mp3", "flac", "wav", "ogg", "mp3", "wav", "flac")
FFMPEG_CODEC = {
    "mp3": ["-c:a", "libmp3lame", "-q:a", "2"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "5"],
    "flac": ["-c:a", "flac"],
}

#: GM programs (0-based) per role.
BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39)
CHORD_PROGRAMS = {
    "piano": (0, 1, 2, 4, 5),
    "guitar": (24, 25, 26, 27),
    "organ": (16, 17, 19),
    "strings": (48, 49, 50),
    "pad": (88, 89, 90, 91, 92, 94, 95),
}
MELODY_PROGRAMS = (11, 13, 40, 56, 65, 68, 71, 73, 80, 81, 82)
DRUM_KITS = (0, 8, 16, 24, 25, 32)  # Standard, Room, Power, Electronic, TR-808, Jazz

# GM drum notes.
KICK, SIDESTICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = (
    36,
    37,
    38,
    39,
    42,
    44,
    46,
    49,
    51,
)
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50

#: Drum patterns on a 16th-note grid of one bar: {note: steps}.
DRUM_PATTERNS: dict[int, dict[str, dict[int, tuple[int, ...]]]] = {
    4: {
        "four_floor": {
            KICK: (0, 4, 8, 12),
            CLAP: (4, 12),
            OPEN_HAT: (2, 6, 10, 14),
            CLOSED_HAT: tuple(range(0, 16, 2)),
        },
        "rock": {KICK: (0, 8, 10), SNARE: (4, 12), CLOSED_HAT: tuple(range(0, 16, 2))},
        "backbeat16": {KICK: (0, 7, 8), SNARE: (4, 12), CLOSED_HAT: tuple(range(16))},
        "funk": {
            KICK: (0, 3, 8, 10),
            SNARE: (4, 12),
            CLOSED_HAT: tuple(range(0, 16, 2)),
            OPEN_HAT: (14,),
        },
        "ride": {KICK: (0, 8), SIDESTICK: (4, 12), RIDE: (0, 4, 6, 8, 12, 14)},
        "sparse": {KICK: (0,), CLOSED_HAT: (0, 4, 8, 12)},
        "sparse_rim": {KICK: (0, 10), SIDESTICK: (12,)},
    },
    3: {
        "waltz": {KICK: (0,), SNARE: (4, 8), CLOSED_HAT: tuple(range(0, 12, 2))},
        "rock3": {KICK: (0, 6), SNARE: (8,), CLOSED_HAT: tuple(range(0, 12, 2))},
        "jazz3": {KICK: (0,), RIDE: (0, 4, 7, 8), PEDAL_HAT: (4, 8)},
        "sparse": {KICK: (0,), CLOSED_HAT: (4, 8)},
    },
}
SPARSE_STYLES = ("sparse", "sparse_rim")

#: Melody rhythms for two bars, in beats (negative = rest).
MELODY_RHYTHMS = {
    4: (
        (1, 1, 1, 1, 2, 1, 1),
        (0.5, 0.5, 1, 1, 1, 2, 2),
        (1.5, 0.5, 1, 1, 1, 1, 2),
        (1, 0.5, 0.5, 2, 3, -1),
        (2, 1, 1, 0.5, 0.5, 0.5, 0.5, 2),
        (-1, 1, 1, 1, 1.5, 0.5, 2),
    ),
    3: (
        (1, 1, 1, 2, 1),
        (2, 1, 1, 1, 1),
        (1, 0.5, 0.5, 1, 3),
        (1.5, 0.5, 1, 2, -1),
    ),
}


# ------------------------------------------------------------------------------------------
# Song description
@dataclass
class SongSpec:
    """Everything random about one song, drawn from its own RNG stream ``[seed, index]``."""

    seed: int
    index: int
    name: str
    tonic: int
    mode: str
    harmonic_minor: bool
    tempo: float
    meter: int
    bars: int
    lead_in: float  # seconds before the first beat (of the pickup, if any)
    pickup: int  # beats of anacrusis before the first downbeat
    progression: tuple[int, ...]
    bars_per_chord: int
    drum_style: str
    drum_kit: int
    drums_in_intro: bool
    breakdown_phrase: int | None  # phrase index without drums
    bass_program: int
    bass_style: int
    chord_family: str
    chord_program: int
    chord_style: str
    melody_program: int
    format: str
    peak_db: float = -1.0
    extra: dict[str, Any] = field(default_factory=dict)


def draw_spec(seed: int, index: int) -> SongSpec:
    """Draw the parameters of song ``index`` from the RNG stream ``[seed, index]``."""
    rng = np.random.default_rng([seed, index])
    # Keys are dealt from shuffled decks of all 24, so every key appears once per 24 songs.
    key_index = int(np.random.default_rng([seed, 24, index // 24]).permutation(24)[index % 24])
    tonic, mode = key_index % 12, ("major" if key_index < 12 else "minor")
    # MIDI stores whole microseconds per quarter note: use the tempo the file really has.
    tempo = 60e6 / round(60e6 / float(rng.uniform(70.0, 180.0)))
    meter = 4 if rng.random() < 0.75 else 3
    # 32-48 bars in whole phrases of 4, aiming at 60-100 s.
    target = rng.uniform(60.0, 100.0)
    bars = int(np.clip(4 * round(target * tempo / 60.0 / meter / 4), 32, 48))
    tick = 60.0 / (tempo * MIDI_RESOLUTION)  # lead-in on whole MIDI ticks: the grid is exact
    lead_in = round(float(rng.uniform(0.0, 3.0)) / tick) * tick
    pickup = int(rng.integers(1, meter)) if rng.random() < 0.3 else 0
    progs = MAJOR_PROGRESSIONS if mode == "major" else MINOR_PROGRESSIONS
    progression = tuple(progs[int(rng.integers(len(progs)))])
    bars_per_chord = 2 if (tempo > 130 and rng.random() < 0.5) else 1
    styles = list(DRUM_PATTERNS[meter])
    sparse = [s for s in styles if s in SPARSE_STYLES]
    dense = [s for s in styles if s not in SPARSE_STYLES]
    drum_style = str(rng.choice(sparse) if rng.random() < 0.2 else rng.choice(dense))
    n_phrases = bars // 8
    breakdown = int(rng.integers(2, n_phrases)) if (n_phrases >= 4 and rng.random() < 0.3) else None
    family = str(rng.choice(list(CHORD_PROGRAMS)))
    if family in ("pad", "strings", "organ"):
        chord_style = "sustain" if rng.random() < 0.7 else "beats"
    else:
        chord_style = str(rng.choice(["beats", "offbeat", "arpeggio", "sustain"]))
    return SongSpec(
        seed=seed,
        index=index,
        name=f"song_{index:03d}",
        tonic=tonic,
        mode=mode,
        harmonic_minor=bool(mode == "minor" and rng.random() < 0.5),
        tempo=tempo,
        meter=meter,
        bars=bars,
        lead_in=lead_in,
        pickup=pickup,
        progression=progression,
        bars_per_chord=bars_per_chord,
        drum_style=drum_style,
        drum_kit=int(rng.choice(DRUM_KITS)),
        drums_in_intro=bool(rng.random() < 0.6),
        breakdown_phrase=breakdown,
        bass_program=int(rng.choice(BASS_PROGRAMS)),
        bass_style=int(rng.integers(3)),
        chord_family=family,
        chord_program=int(rng.choice(CHORD_PROGRAMS[family])),
        chord_style=chord_style,
        melody_program=int(rng.choice(MELODY_PROGRAMS)),
        format=FORMAT_CYCLE[index % len(FORMAT_CYCLE)],
        peak_db=round(float(rng.uniform(-6.0, -1.0)), 2),
    )


# ------------------------------------------------------------------------------------------
# Composition
def chord_pcs(spec: SongSpec, degree: int) -> list[int]:
    """Pitch classes (root, third, fifth) of the diatonic triad on ``degree``.

    In minor with ``harmonic_minor`` the chord on degree 5 (index 4) is major: the raised
    leading tone of the harmonic-minor dominant.
    """
    scale = MAJOR_SCALE if spec.mode == "major" else MINOR_SCALE
    pcs = [(spec.tonic + scale[(degree + i) % 7]) % 12 for i in (0, 2, 4)]
    if spec.mode == "minor" and spec.harmonic_minor and degree == 4:
        pcs[1] = (pcs[1] + 1) % 12
    return pcs


def scale_pcs(spec: SongSpec, degree: int) -> list[int]:
    """The melody's scale over the chord on ``degree`` (harmonic minor over its V)."""
    scale = list(MAJOR_SCALE if spec.mode == "major" else MINOR_SCALE)
    if spec.mode == "minor" and spec.harmonic_minor and degree == 4:
        scale[6] = 11
    return [(spec.tonic + s) % 12 for s in scale]


def bar_chords(spec: SongSpec) -> list[int]:
    """Scale degree of the chord of each bar; the song starts and ends on the tonic."""
    chords = [
        spec.progression[(bar // spec.bars_per_chord) % len(spec.progression)]
        for bar in range(spec.bars)
    ]
    chords[-1] = 0
    return chords


def _place(pc: int, lo: int) -> int:
    """The MIDI pitch of pitch class ``pc`` in the octave starting at ``lo``."""
    return lo + (pc - lo) % 12


def compose(spec: SongSpec):  # -> pretty_midi.PrettyMIDI
    """Build the MIDI of a song: drums (channel 10), bass, chords and melody."""
    import pretty_midi

    rng = np.random.default_rng([spec.seed, spec.index, 1])  # note-level choices
    spb = 60.0 / spec.tempo
    meter = spec.meter
    steps = 4 * meter  # 16th notes per bar
    pm = pretty_midi.PrettyMIDI(initial_tempo=spec.tempo, resolution=MIDI_RESOLUTION)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(meter, 4, 0.0))
    drums = pretty_midi.Instrument(program=spec.drum_kit, is_drum=True, name="drums")
    bass = pretty_midi.Instrument(program=spec.bass_program, name="bass")
    chords_i = pretty_midi.Instrument(program=spec.chord_program, name="chords")
    melody = pretty_midi.Instrument(program=spec.melody_program, name="melody")

    def t(beat: float) -> float:  # beat 0 is the first downbeat
        return spec.lead_in + (spec.pickup + beat) * spb

    def note(inst, pitch: int, b0: float, dur: float, vel: float) -> None:
        v = int(np.clip(vel + rng.normal(0, 5), 20, 127))
        inst.notes.append(pretty_midi.Note(v, int(pitch), t(b0), t(b0 + dur)))

    chords = bar_chords(spec)
    pattern = DRUM_PATTERNS[meter][spec.drum_style]
    sparse = spec.drum_style in SPARSE_STYLES
    rhythm_a = MELODY_RHYTHMS[meter][int(rng.integers(len(MELODY_RHYTHMS[meter])))]
    rhythm_b = MELODY_RHYTHMS[meter][int(rng.integers(len(MELODY_RHYTHMS[meter])))]
    mel_pitch = _place(spec.tonic, 67)

    # Pickup (anacrusis): a snare fill and a run up the dominant scale into the first downbeat.
    dominant_scale = scale_pcs(spec, 4)
    run = [_place(pc, 67) for pc in dominant_scale[4:7]][3 - spec.pickup :]
    for i in range(spec.pickup):
        b = i - spec.pickup
        note(drums, SNARE, b, 0.1, 70 + 10 * i)
        note(drums, SNARE, b + 0.5, 0.1, 66 + 10 * i)
        note(melody, run[i], b, 0.9, 85)

    for bar in range(spec.bars):
        phrase, in_phrase = divmod(bar, 8)
        b0 = bar * meter
        degree = chords[bar]
        pcs = chord_pcs(spec, degree)
        intro = phrase == 0
        breakdown = phrase == spec.breakdown_phrase
        last_bar = bar == spec.bars - 1

        # Drums: the pattern, crash at each phrase start, a fill closing each phrase.
        if last_bar:
            note(drums, KICK, b0, 0.5, 110)
            note(drums, CRASH, b0, 2.0, 100)
        elif not breakdown and (not intro or spec.drums_in_intro or in_phrase >= 4):
            thin = intro and in_phrase < 4
            for pitch, hits in pattern.items():
                if thin and pitch not in (KICK, CLOSED_HAT, PEDAL_HAT, RIDE):
                    continue
                for s in hits:
                    accent = 110 if s == 0 else (95 if s % 4 == 0 else 75)
                    if pitch in (CLOSED_HAT, PEDAL_HAT, RIDE, OPEN_HAT):
                        accent -= 20
                    note(drums, pitch, b0 + s / 4, 0.1, accent * (0.8 if sparse else 1.0))
            if in_phrase == 0 and not sparse and not thin:
                note(drums, CRASH, b0, 1.0, 100)
            if in_phrase == 7 and not sparse:
                for s in range(steps - 4, steps):
                    note(drums, (HIGH_TOM, MID_TOM, LOW_TOM, SNARE)[s % 4], b0 + s / 4, 0.1, 90)

        # Bass on the chord root (with fifths and octaves depending on the style).
        if not (intro and in_phrase < 2):
            root = _place(pcs[0], 28)
            fifth = _place(pcs[2], 28)
            if last_bar:
                note(bass, root, b0, meter, 100)
            elif spec.bass_style == 0:  # root on every beat
                for b in range(meter):
                    note(bass, root, b0 + b, 0.9, 100 if b == 0 else 88)
            elif spec.bass_style == 1:  # root on 1, then fifth (4/4) or octave (3/4)
                note(bass, root, b0, 1.9, 102)
                note(bass, fifth if meter == 4 else root + 12, b0 + 2, 0.9, 90)
                if meter == 4:
                    note(bass, root + 12 * int(rng.random() < 0.5), b0 + 3, 0.9, 90)
            else:  # eighth notes on the root
                for e in range(2 * meter):
                    note(bass, root, b0 + e / 2, 0.45, 100 if e == 0 else 82)

        # Chords: close voicing in the octave from G3.
        voicing = sorted(_place(pc, 55) for pc in pcs)
        style = "sustain" if last_bar else spec.chord_style
        if style == "sustain":
            for v in voicing:
                note(chords_i, v, b0, meter, 70)
        elif style == "beats":
            for b in range(meter):
                for v in voicing:
                    note(chords_i, v, b0 + b, 0.85, 78 if b == 0 else 66)
        elif style == "offbeat":
            for v in voicing:
                note(chords_i, v, b0, 0.9, 76)
            for b in range(1, meter):
                for v in voicing:
                    note(chords_i, v, b0 + b + 0.5, 0.4, 64)
        else:  # arpeggio in eighths
            seq = voicing + [voicing[0] + 12] + voicing[1:][::-1]
            for e in range(2 * meter):
                note(chords_i, seq[e % len(seq)], b0 + e / 2, 0.5, 72 if e == 0 else 62)

        # Melody: two-bar motifs, chord tones on beats, a scale walk in between.
        if not intro and not breakdown and bar % 2 == 0 and bar + 1 < spec.bars - 1:
            rhythm = rhythm_b if in_phrase in (4, 5) else rhythm_a
            beat = 0.0
            for dur in rhythm:
                if dur < 0:
                    beat += -dur
                    continue
                bar_of = bar + int(beat // meter)
                deg = chords[min(bar_of, spec.bars - 1)]
                scale = scale_pcs(spec, deg)
                step = int(rng.choice([-2, -1, -1, 1, 1, 2, 0]))
                cand = [p for p in range(60, 86) if p % 12 in scale]
                idx = min(range(len(cand)), key=lambda i: abs(cand[i] - mel_pitch))
                mel_pitch = cand[int(np.clip(idx + step, 0, len(cand) - 1))]
                if beat == int(beat):  # on a beat: snap to the nearest chord tone
                    tones = [p for p in range(60, 86) if p % 12 in chord_pcs(spec, deg)]
                    mel_pitch = min(tones, key=lambda p: abs(p - mel_pitch))
                if not 64 <= mel_pitch <= 84:
                    mel_pitch = _place(mel_pitch % 12, 67)
                note(melody, mel_pitch, b0 + beat, dur * 0.9, 92)
                beat += dur
        if last_bar:
            note(melody, _place(spec.tonic, 67), b0, meter, 90)

    # A silent controller two seconds after the end keeps the reverb tail in the render.
    end = t(spec.bars * meter) + 2.0
    chords_i.control_changes.append(pretty_midi.ControlChange(7, 100, end))
    pm.instruments.extend([drums, bass, chords_i, melody])
    return pm


def truth_grid(spec: SongSpec, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat times (s) of a song: the MIDI grid plus the render latency."""
    n = spec.pickup + spec.bars * spec.meter
    beats = spec.lead_in + offset + np.arange(n) * 60.0 / spec.tempo
    return beats, beats[spec.pickup :: spec.meter]


# ------------------------------------------------------------------------------------------
# Rendering
def fluidsynth_render(midi: Path, wav: Path, sr: int) -> None:
    """Render ``midi`` to a stereo WAV with the FluidSynth CLI (fast render, no audio driver)."""
    cmd = [
        "fluidsynth",
        "-ni",
        "-g",
        "0.6",
        "-r",
        str(sr),
        "-F",
        str(wav),
        str(SOUNDFONT),
        str(midi),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


def encode(wav: Path, out: Path, fmt: str) -> None:
    """Encode a WAV to ``fmt`` with ffmpeg."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(wav),
        *FFMPEG_CODEC[fmt],
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)


def measure_render_latency(sr: int, workdir: Path) -> float:
    """Seconds from a MIDI note-on to its audible onset in a FluidSynth render.

    Renders isolated kick and snare hits (the instruments beat trackers lock to) and takes,
    per hit, the first sample within 20 dB of that hit's peak; returns the median delay.
    """
    import pretty_midi
    import soundfile as sf

    times = 0.5 + 1.5 * np.arange(16) + 0.0131 * np.arange(16)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120, resolution=960)
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    for i, t0 in enumerate(times):
        kit.notes.append(pretty_midi.Note(110, KICK if i % 2 == 0 else SNARE, t0, t0 + 0.1))
    pm.instruments.append(kit)
    midi, wav = workdir / "latency.mid", workdir / "latency.wav"
    pm.write(str(midi))
    fluidsynth_render(midi, wav, sr)
    y, sr_file = sf.read(str(wav), dtype="float32", always_2d=True)
    y = np.abs(y.mean(axis=1))
    delays = []
    for t0 in times:
        a, b = int((t0 - 0.4) * sr_file), int((t0 + 0.6) * sr_file)
        seg = y[a:b]
        first = int(np.argmax(seg > seg.max() * 0.1))
        delays.append((a + first) / sr_file - t0)
    return float(np.median(delays))


def render_song(args: tuple[SongSpec, Path, int, float]) -> dict[str, Any]:
    """Compose, render, level and encode one song; return its truth record."""
    import soundfile as sf

    spec, root, sr, latency = args
    song_dir = root / "songs"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        midi, wav = Path(tmp) / f"{spec.name}.mid", Path(tmp) / f"{spec.name}.wav"
        compose(spec).write(str(midi))
        shutil.copy(midi, root / "midi" / midi.name)
        fluidsynth_render(midi, wav, sr)
        y, sr_file = sf.read(str(wav), dtype="float32", always_2d=True)
        y *= 10 ** (spec.peak_db / 20) / max(float(np.abs(y).max()), 1e-9)
        out = song_dir / f"{spec.name}.{spec.format}"
        if spec.format == "wav":
            sf.write(str(out), y, sr_file, subtype="PCM_16")
        else:
            sf.write(str(wav), y, sr_file, subtype="PCM_16")
            encode(wav, out, spec.format)
    beats, downbeats = truth_grid(spec, latency)
    return {
        "id": spec.name,
        "path": str(out.relative_to(root)),
        "format": spec.format,
        "duration": round(len(y) / sr_file, 3),
        "tempo": round(spec.tempo, 6),
        "key": PITCH_CLASSES[spec.tonic],
        "mode": spec.mode,
        "meter": spec.meter,
        "bars": spec.bars,
        "lead_in": round(spec.lead_in, 6),
        "pickup_beats": spec.pickup,
        "beats": np.round(beats, 6).tolist(),
        "downbeats": np.round(downbeats, 6).tolist(),
        "spec": {k: v for k, v in asdict(spec).items() if k != "extra"},
    }


# ------------------------------------------------------------------------------------------
# Rubber Band copies
def copy_plan(songs: list[dict[str, Any]], seed: int, n_sources: int) -> list[dict[str, Any]]:
    """For each of the first ``n_sources`` songs: two pitch shifts and one time stretch."""
    rng = np.random.default_rng([seed, 424242])
    plan = []
    for song in songs[:n_sources]:
        for k in rng.choice([-3, -2, -1, 1, 2, 3], size=2, replace=False):
            plan.append({"source": song["id"], "k": int(k), "r": 1.0})
        plan.append({"source": song["id"], "k": 0, "r": float(rng.choice([0.9, 0.95, 1.05, 1.1]))})
    return plan


def timing_drift_ms(orig: np.ndarray, copy: np.ndarray, sr: int, r: float) -> list[float]:
    """Measured offset (ms) of the copy against the ideal time map ``t -> t / r``, per 8 s.

    Onset-strength envelopes of the original (resampled onto the copy's time axis) and of the
    copy are cross-correlated in 8 s windows (lags up to +-200 ms).
    """
    import librosa

    hop = 64
    fps = sr / hop
    eo = librosa.onset.onset_strength(y=orig, sr=sr, hop_length=hop)
    ec = librosa.onset.onset_strength(y=copy, sr=sr, hop_length=hop)
    tc = np.arange(len(ec)) / fps
    eo_warp = np.interp(tc * r, np.arange(len(eo)) / fps, eo)
    win, max_lag = int(8 * fps), int(0.2 * fps)
    out = []
    for start in range(max_lag, len(ec) - win - max_lag, win):
        a = ec[start : start + win] - ec[start : start + win].mean()
        lags = np.arange(-max_lag, max_lag + 1)
        xc = [float(np.dot(a, eo_warp[start - lag : start - lag + win])) for lag in lags]
        out.append(round(float(lags[int(np.argmax(xc))]) / fps * 1000, 1))
    return out


def make_copy(args: tuple[dict[str, Any], dict[str, Any], Path]) -> dict[str, Any]:
    """Pitch-shift / time-stretch one song with Rubber Band and return the copy's truth."""
    import pedalboard
    import soundfile as sf
    import soxr

    item, song, root = args
    k, r = item["k"], item["r"]
    y, sr = sf.read(str(root / song["path"]), dtype="float32", always_2d=True)
    # Mono at 22.05 kHz, what both analysers decode to anyway: Rubber Band is ~8x faster.
    mono = soxr.resample(y.mean(axis=1), sr, COPY_SR).astype(np.float32)
    z = pedalboard.time_stretch(
        mono[None, :],
        COPY_SR,
        stretch_factor=r,
        pitch_shift_in_semitones=float(k),
        high_quality=True,
    )[0]
    tag = f"k{k:+d}" if r == 1.0 else f"r{r:.2f}"
    out = root / "copies" / f"{song['id']}_{tag}.wav"
    sf.write(str(out), z, COPY_SR, subtype="PCM_16")
    drift = timing_drift_ms(mono, z, COPY_SR, r)
    key = PITCH_CLASSES[(PITCH_CLASSES.index(song["key"]) + k) % 12]
    return {
        "id": out.stem,
        "source": song["id"],
        "k": k,
        "r": r,
        "path": str(out.relative_to(root)),
        "format": "wav",
        "duration": round(len(z) / COPY_SR, 3),
        "tempo": round(song["tempo"] * r, 4),
        "key": key,
        "mode": song["mode"],
        "meter": song["meter"],
        "beats": np.round(np.asarray(song["beats"]) / r, 6).tolist(),
        "downbeats": np.round(np.asarray(song["downbeats"]) / r, 6).tolist(),
        "beats_exact": False,
        "timing_drift_ms": drift,
        "max_abs_drift_ms": max((abs(d) for d in drift), default=0.0),
    }


# ------------------------------------------------------------------------------------------
# Cache
def cache_dir(n: int, seed: int, sr: int, n_copy_sources: int) -> Path:
    """Cache folder of one parameter set."""
    params = {
        "n": n,
        "seed": seed,
        "sr": sr,
        "copy_sources": n_copy_sources,
        "version": GENERATOR_VERSION,
        "soundfont": SOUNDFONT.name,
    }
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return CACHE_ROOT / f"n{n}-seed{seed}-sr{sr}-{digest}"


def build(
    n: int = 40,
    seed: int = 2026,
    sr: int = 44100,
    n_copy_sources: int = 15,
    workers: int = 2,
    force: bool = False,
    log=print,
) -> Path:
    """Build (or find) the truth set and return the path of its ``truth.json``."""
    root = cache_dir(n, seed, sr, n_copy_sources)
    manifest = root / "truth.json"
    if manifest.exists() and not force:
        return manifest
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(root.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same set: wait for it
        if manifest.exists() and not force:
            return manifest
        return _build(root, n, seed, sr, n_copy_sources, workers, log)


def _build(root: Path, n: int, seed: int, sr: int, n_copy_sources: int, workers: int, log) -> Path:
    """Build into ``root`` (under the caller's lock) and return the manifest path."""
    manifest = root / "truth.json"
    for tool in ("fluidsynth", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH; it is needed to build the truth set")
    if not SOUNDFONT.exists():
        raise SystemExit(f"soundfont {SOUNDFONT} not found")
    if root.exists():
        shutil.rmtree(root)
    for sub in ("songs", "midi", "copies"):
        (root / sub).mkdir(parents=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        latency = measure_render_latency(sr, Path(tmp))
    log(f"FluidSynth onset latency at {sr} Hz: {latency * 1000:.2f} ms (added to truth times)")
    specs = [draw_spec(seed, i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        songs = list(pool.map(render_song, [(s, root, sr, latency) for s in specs]))
        log(f"rendered {len(songs)} songs in {time.perf_counter() - t0:.1f} s")
        by_id = {s["id"]: s for s in songs}
        plan = copy_plan(songs, seed, min(n_copy_sources, n))
        copies = list(pool.map(make_copy, [(p, by_id[p["source"]], root) for p in plan]))
    log(f"made {len(copies)} Rubber Band copies; total {time.perf_counter() - t0:.1f} s")
    data = {
        "params": {
            "n": n,
            "seed": seed,
            "sr": sr,
            "copy_sources": n_copy_sources,
            "version": GENERATOR_VERSION,
            "soundfont": str(SOUNDFONT),
        },
        "render_latency_s": latency,
        "songs": songs,
        "copies": copies,
    }
    tmp_manifest = manifest.with_suffix(".tmp")
    tmp_manifest.write_text(json.dumps(data, indent=1))
    tmp_manifest.replace(manifest)
    return manifest


def load(
    n: int = 40, seed: int = 2026, sr: int = 44100, n_copy_sources: int = 15, **kwargs
) -> dict[str, Any]:
    """Build if needed, then load the truth set with absolute ``path`` fields."""
    manifest = build(n, seed, sr, n_copy_sources, **kwargs)
    data = json.loads(manifest.read_text())
    for rec in data["songs"] + data["copies"]:
        rec["path"] = str(manifest.parent / rec["path"])
    return data


def summarize(data: dict[str, Any]) -> str:
    """A few lines describing the composition of the set."""
    songs, copies = data["songs"], data["copies"]
    from collections import Counter

    def count(key: str) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s[key] for s in songs).items()))

    tempos = np.array([s["tempo"] for s in songs])
    durs = np.array([s["duration"] for s in songs])
    drifts = [c["max_abs_drift_ms"] for c in copies]
    return "\n".join(
        [
            f"{len(songs)} songs, {durs.sum() / 60:.1f} min of audio "
            f"({durs.min():.0f}-{durs.max():.0f} s each); {len(copies)} Rubber Band copies",
            f"tempo {tempos.min():.1f}-{tempos.max():.1f} BPM (median {np.median(tempos):.1f})",
            f"mode: {count('mode')}; meter: {count('meter')}; format: {count('format')}",
            f"keys used: {len({(s['key'], s['mode']) for s in songs})} of 24; songs with a pickup: "
            f"{sum(s['pickup_beats'] > 0 for s in songs)}",
            "drum styles: "
            + ", ".join(
                f"{k}: {v}"
                for k, v in sorted(Counter(s["spec"]["drum_style"] for s in songs).items())
            ),
            "copies: "
            + ", ".join(
                f"{k}: {v}"
                for k, v in sorted(
                    Counter(
                        f"k{c['k']:+d}" if c["r"] == 1.0 else f"r{c['r']}" for c in copies
                    ).items()
                )
            ),
            f"Rubber Band timing drift vs t/r: median max {np.median(drifts):.0f} ms, "
            f"worst {max(drifts, default=0):.0f} ms",
            f"render latency added to truth: {data['render_latency_s'] * 1000:.2f} ms",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: build the truth set and print its composition."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40, help="number of songs")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--sr", type=int, default=44100, help="render sample rate")
    p.add_argument(
        "--copy-sources",
        type=int,
        default=15,
        help="songs that get Rubber Band copies (2 pitch shifts + 1 stretch each)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    manifest = build(a.n, a.seed, a.sr, a.copy_sources, a.workers, a.force)
    data = load(a.n, a.seed, a.sr, a.copy_sources)
    print(f"truth set: {manifest} ({time.perf_counter() - t0:.1f} s)")
    print(summarize(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
