"""Synthesized multi-instrument songs with exactly known tempo, key, meter, beats and sections.

Everything is rendered with numpy alone (additive wavetables and filtered noise; no soundfonts),
deterministically from a seed, so that the demo library and the test fixtures carry their ground
truth by construction:

- the beat grid is exact: every drum hit starts on ``round(time * sr)`` of its grid time;
- the harmony is diatonic and tonic-centred: one triad per bar from a progression that starts
  on the tonic chord and gives it the most bars; in minor keys the cadential V is major (the
  harmonic-minor leading tone) so that the tonic, not the relative major, is heard as home;
- bass plays chord roots in octave 1-2 (55-110 Hz), chords sit in octave 3-4 and the lead
  melody (octave 4-5) lands on chord tones on every downbeat; tuning is A4 = 440 Hz;
- sections (intro, verse, chorus, break, build, drop, outro) change on bar boundaries and differ in
  instrumentation and energy, so a novelty detector has something to find.

Examples
--------
>>> from cratedig.theory import Key
>>> song = synthesize_song(tempo=124, key=Key.parse("A minor"), bars=8, seed=1)
>>> song.meter, len(song.downbeats), sorted(song.stems)
(4, 8, ['bass', 'chords', 'drums', 'lead'])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.audio.tags import write_tags
from cratedig.errors import ParameterError
from cratedig.theory import MAJOR_SCALE, MINOR_SCALE, Key

__all__ = ["STEMS", "Song", "default_sections", "demo_library", "synthesize_song", "write_song"]

#: Names of the stems every :class:`Song` carries; their sum is the mix.
STEMS: tuple[str, ...] = ("drums", "bass", "chords", "lead")

# Eight-bar progressions in scale degrees, one chord per bar, each with the tonic on bars 0 and 4
# (so every 4-bar phrase starts on it) and giving it the most bars. In minor, a 5 that resolves
# to 1 is played as the major V.
_MAJOR_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (1, 5, 6, 4, 1, 5, 4, 1),  # I-V-vi-IV, I-V-IV-I
    (1, 4, 5, 1, 1, 4, 5, 1),  # I-IV-V-I
    (1, 6, 4, 5, 1, 6, 5, 1),  # I-vi-IV-V
    (1, 4, 1, 5, 1, 4, 5, 1),
)
_MINOR_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (1, 6, 3, 7, 1, 6, 5, 1),  # i-VI-III-VII, i-VI-V-i
    (1, 4, 5, 1, 1, 4, 5, 1),  # i-iv-V-i
    (1, 7, 6, 7, 1, 6, 5, 1),  # i-VII-VI-VII, i-VI-V-i
    (1, 6, 4, 5, 1, 4, 5, 1),  # i-VI-iv-V
)

_EXTS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}
_PEAK = 0.89  # mix peak after normalisation (the contract says <= 0.9)
_TABLE_N = 4096  # wavetable length


@dataclass(eq=False)
class Song:
    """A synthesized song and its ground truth.

    Attributes
    ----------
    audio : numpy.ndarray
        float32, shape (n,): the mono mix, peak <= 0.9.
    sr : int
        Sample rate in Hz.
    tempo : float
        Beats per minute.
    key : Key
        The key the harmony establishes.
    meter : int
        Beats per bar.
    beats : numpy.ndarray
        Time in seconds of every beat while music plays (``lead_in`` included).
    downbeats : numpy.ndarray
        Time in seconds of the first beat of each bar.
    sections : list of (float, float, str)
        ``(start, end, label)`` in seconds; they tile ``[lead_in, end of the last bar]`` and
        start on downbeats.
    stems : dict of str to numpy.ndarray
        ``"drums"``, ``"bass"``, ``"chords"``, ``"lead"``: float32, shape (n,), summing to
        ``audio`` up to float32 rounding.
    lead_in : float
        Seconds of digital silence (exact zeros) before the first beat.
    """

    audio: np.ndarray
    sr: int
    tempo: float
    key: Key
    meter: int
    beats: np.ndarray
    downbeats: np.ndarray
    sections: list[tuple[float, float, str]]
    stems: dict[str, np.ndarray]
    lead_in: float

    @property
    def duration(self) -> float:
        """Length of ``audio`` in seconds (the last bar's end plus a release tail < 1 beat)."""
        return len(self.audio) / self.sr

    @property
    def bars(self) -> int:
        """Number of bars."""
        return len(self.downbeats)


# ---------------------------------------------------------------------------------------------
# Arrangement


@dataclass(frozen=True)
class _Style:
    """What plays in a section, and how loud."""

    gain: float
    kick: bool = True
    snare: bool = True
    clap: bool = False
    hats: bool = True
    open_hats: bool = False
    crash: bool = False
    bass: str | None = "quarter"  # None, "half", "quarter", "eighth"
    pad: bool = False
    stabs: str | None = None  # None, "beats", "offbeats"
    arp: bool = False
    lead: str | None = None  # None, "sparse", "full"
    progression: int = 0  # 0: main progression, 1: the alternative one
    roll: bool = False  # a snare roll: quarters, then eighths, sixteenths in the last bar
    ramp: float = 0.0  # the gain rises by this share of itself over the section


_STYLES: dict[str, _Style] = {
    "intro": _Style(gain=0.7, snare=False, bass=None, pad=True),
    "verse": _Style(gain=0.8, stabs="beats", lead="sparse", progression=1),
    "chorus": _Style(
        gain=1.0, clap=True, open_hats=True, crash=True, bass="eighth", pad=True, lead="full"
    ),
    "break": _Style(
        gain=0.65,
        kick=False,
        snare=False,
        hats=False,
        bass="half",
        pad=True,
        arp=True,
        lead="sparse",
        progression=1,
    ),
    "drop": _Style(
        gain=1.0,
        clap=True,
        open_hats=True,
        crash=True,
        bass="eighth",
        stabs="offbeats",
        lead="full",
    ),
    "outro": _Style(gain=0.7, snare=False, crash=True, bass="quarter", pad=True),
    # A dance build-up: no kick and no bass, a snare roll that speeds up and a rising level
    # into the drop.
    "build": _Style(
        gain=0.6,
        kick=False,
        hats=True,
        bass=None,
        pad=True,
        arp=True,
        lead="sparse",
        roll=True,
        ramp=0.6,
    ),
}
_STYLES["main"] = _STYLES["verse"]


def default_sections(bars: int) -> list[tuple[str, int]]:
    """Default arrangement of ``bars`` bars as ``(label, bars)`` pairs.

    Sections are whole 4-bar phrases (the remainder goes to the last one): under 8 bars one
    ``"verse"``; under 16 an intro and a chorus; from 16 bars intro, verse, (chorus,) break,
    drop (, outro), lengthened phrase by phrase.

    Examples
    --------
    >>> default_sections(24)
    [('intro', 4), ('verse', 4), ('chorus', 4), ('break', 4), ('drop', 4), ('outro', 4)]
    """
    if bars < 1:
        raise ParameterError(f"bars={bars} must be >= 1")
    if bars < 8:
        return [("verse", bars)]
    phrases, rest = divmod(bars, 4)
    if phrases < 4:
        labels = ["intro", "chorus"]
    elif phrases == 4:
        labels = ["intro", "verse", "break", "drop"]
    elif phrases == 5:
        labels = ["intro", "verse", "chorus", "break", "drop"]
    elif phrases < 14:
        labels = ["intro", "verse", "chorus", "break", "drop", "outro"]
    else:
        labels = ["intro", "verse", "chorus", "verse", "chorus", "break", "drop", "outro"]
    counts = [1] * len(labels)
    # Extra phrases go to the high-energy sections first, then verses, then the ends.
    order = sorted(
        range(len(labels)),
        key=lambda i: (["chorus", "drop", "verse", "intro", "outro", "break"].index(labels[i]), i),
    )
    for k in range(phrases - len(labels)):
        counts[order[k % len(order)]] += 1
    out = [(lab, 4 * c) for lab, c in zip(labels, counts, strict=True)]
    out[-1] = (out[-1][0], out[-1][1] + rest)
    return out


def _triad(key: Key, degree: int, *, major_dominant: bool) -> tuple[int, int, int]:
    """Pitch classes (root, third, fifth) of the diatonic triad on ``degree`` (1..7)."""
    scale = MAJOR_SCALE if key.mode == "major" else MINOR_SCALE
    i = degree - 1
    root, third, fifth = scale[i], scale[(i + 2) % 7], scale[(i + 4) % 7]
    if key.mode == "minor" and degree == 5 and major_dominant:
        third = scale[6] + 1  # the raised 7th: leading tone
    return tuple((key.tonic + x) % 12 for x in (root, third, fifth))  # type: ignore[return-value]


def _scale_pcs(key: Key, *, leading_tone: bool) -> list[int]:
    scale = list(MAJOR_SCALE if key.mode == "major" else MINOR_SCALE)
    if key.mode == "minor" and leading_tone:
        scale[6] += 1
    return sorted((key.tonic + x) % 12 for x in scale)


def _midis_in(pcs: list[int] | tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """All MIDI notes in [lo, hi] whose pitch class is in ``pcs``, ascending."""
    m = np.arange(lo, hi + 1)
    return m[np.isin(m % 12, list(pcs))]


def _into(pc: int, lo: int) -> int:
    """The MIDI note of pitch class ``pc`` in [lo, lo + 12)."""
    return lo + (pc - lo) % 12


# Lead rhythms: (onset, length) in eighth notes, one bar each; every one starts on the downbeat.
_LEAD_RHYTHMS: dict[int, tuple[tuple[tuple[int, int], ...], ...]] = {
    4: (
        ((0, 3), (3, 1), (4, 2), (6, 2)),
        ((0, 2), (2, 2), (4, 3), (7, 1)),
        ((0, 1), (1, 1), (2, 2), (4, 4)),
        ((0, 4), (4, 2), (6, 1), (7, 1)),
        ((0, 2), (2, 1), (3, 3), (6, 2)),
    ),
    3: (
        ((0, 2), (2, 2), (4, 2)),
        ((0, 3), (3, 1), (4, 2)),
        ((0, 4), (4, 1), (5, 1)),
        ((0, 2), (2, 1), (3, 1), (4, 2)),
    ),
}


def _lead_line(
    key: Key,
    chords: list[tuple[int, int, int]],
    dominant: list[bool],
    meter: int,
    rng: np.random.Generator,
) -> list[list[tuple[int, int, int]]]:
    """One melody per progression bar: lists of (onset, length, midi) in eighth notes."""
    slots = 2 * meter
    pool = _LEAD_RHYTHMS.get(meter, (tuple((2 * i, 2) for i in range(meter)),))
    motif = [pool[int(j)] for j in rng.choice(len(pool), size=2, replace=len(pool) < 2)]
    lo, hi = 67, 84  # G4..C6
    prev = _into(chords[0][0], 69) if _into(chords[0][0], 69) <= hi else _into(chords[0][0], 67)
    line = []
    for b, chord in enumerate(chords):
        scale = _midis_in(_scale_pcs(key, leading_tone=dominant[b]), lo, hi)
        tones = _midis_in(chord, lo, hi)
        bar = []
        for onset, length in motif[b % 2]:
            last = b == len(chords) - 1 and onset == motif[b % 2][-1][0]
            if chord[0] == key.tonic and (onset == 0 or last):
                # Tonic bars start (and the line ends) on the tonic nearest the previous note.
                roots = tones[tones % 12 == key.tonic]
                note = int(roots[np.argmin(np.abs(roots - prev))])
            elif onset == 0 or (onset % 2 == 0 and rng.random() < 0.5):
                # A chord tone near the previous note (the downbeat always lands on one),
                # preferring the root on downbeats.
                dist = np.abs(tones - prev).astype(np.float64)
                w = 1.0 / (1.0 + dist / 3.0)
                if onset == 0:
                    w[tones % 12 == chord[0]] *= 3.0
                note = int(tones[rng.choice(len(tones), p=w / w.sum())])
            else:
                i = int(np.searchsorted(scale, prev))
                i = min(i, len(scale) - 1)
                step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
                j = i + step
                if not 0 <= j < len(scale):
                    j = i - step
                note = int(scale[int(np.clip(j, 0, len(scale) - 1))])
            bar.append((onset, min(length, slots - onset), note))
            prev = note
        line.append(bar)
    return line


def _sparse(bar: list[tuple[int, int, int]], slots: int) -> list[tuple[int, int, int]]:
    """The notes of a bar that fall on beats, each held until the next one."""
    kept = [(o, m) for o, _, m in bar if o % 2 == 0]
    ends = [o for o, _ in kept[1:]] + [slots]
    return [(o, e - o, m) for (o, m), e in zip(kept, ends, strict=True)]


# ---------------------------------------------------------------------------------------------
# Sound


@dataclass(frozen=True)
class _Voice:
    """An additive instrument: a bright and a dark harmonic spectrum, crossfaded over time."""

    name: str
    bright: tuple[float, ...]  # harmonic amplitudes of the attack
    dark: tuple[float, ...]  # harmonic amplitudes of the body
    attack: float
    tau_bright: float
    tau_dark: float
    sustain: float
    release: float
    brightness: float
    detune: tuple[float, ...] = (0.0,)  # cents, one oscillator each


def _saw(k: int, tilt: float = 1.0) -> tuple[float, ...]:
    return tuple(1.0 / h**tilt for h in range(1, k + 1))


_PAD = _Voice(
    "pad",
    _saw(6, 1.5),
    (1.0, 0.3, 0.1),
    attack=0.08,
    tau_bright=0.5,
    tau_dark=1.5,
    sustain=0.65,
    release=0.15,
    brightness=0.5,
    detune=(-5.0, 5.0),
)
_PLUCK = _Voice(
    "pluck",
    _saw(8, 1.2),
    (1.0, 0.35, 0.1),
    attack=0.002,
    tau_bright=0.05,
    tau_dark=0.3,
    sustain=0.0,
    release=0.04,
    brightness=0.9,
)
_BASS = _Voice(
    "bass",
    (1.0, 0.6, 0.3, 0.18, 0.1, 0.06),
    (1.0, 0.3, 0.06),
    attack=0.004,
    tau_bright=0.08,
    tau_dark=0.6,
    sustain=0.6,
    release=0.04,
    brightness=0.6,
)
_LEAD = _Voice(
    "lead",
    (1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.1),
    (1.0, 0.15, 0.1),
    attack=0.01,
    tau_bright=0.25,
    tau_dark=0.8,
    sustain=0.7,
    release=0.06,
    brightness=0.7,
    detune=(-3.0, 3.0),
)


class _Renderer:
    """Renders notes with cached band-limited wavetables and envelopes."""

    def __init__(self, n: int, sr: int, rng: np.random.Generator) -> None:
        self.n, self.sr, self.rng = n, sr, rng
        self.ramp = np.arange(n + 1, dtype=np.float64)
        self._tables: dict[tuple[tuple[float, ...], int], np.ndarray] = {}
        self._envs: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def table(self, amps: tuple[float, ...], f: float) -> np.ndarray:
        k = max(1, min(len(amps), int(0.45 * self.sr / f)))  # no partial above 0.45 sr
        key = (amps, k)
        if key not in self._tables:
            ph = 2 * np.pi * np.arange(_TABLE_N) / _TABLE_N
            t = sum(a * np.sin((h + 1) * ph) for h, a in enumerate(amps[:k]) if a)
            t = np.asarray(t, dtype=np.float64)
            self._tables[key] = t / np.max(np.abs(t))
        return self._tables[key]

    def envelopes(self, v: _Voice, gate: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        key = (v.name, gate, n)
        if key not in self._envs:
            t = self.ramp[:n] / self.sr
            rel = max(1, int(v.release * self.sr))
            env = np.minimum(t / v.attack, 1.0) * np.clip((gate + rel - self.ramp[:n]) / rel, 0, 1)
            wb = v.brightness * np.exp(-t / v.tau_bright) * env
            wd = (v.sustain + (1 - v.sustain) * np.exp(-t / v.tau_dark)) * env
            self._envs[key] = (wb, wd)
        return self._envs[key]

    def notes(self, v: _Voice, notes: list[tuple[int, int, float, float]]) -> np.ndarray:
        """Sum of ``(start sample, gate samples, midi, gain)`` notes played on ``v``."""
        out = np.zeros(self.n)
        rel = int(v.release * self.sr)
        for start, gate, midi, gain in notes:
            n = min(gate + rel, self.n - start)
            if n <= 0 or gain <= 0:
                continue
            wb, wd = self.envelopes(v, gate, n)
            f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
            acc = np.zeros(n)
            for cents in v.detune:
                f = f0 * 2.0 ** (cents / 1200)
                tb, td = self.table(v.bright, f), self.table(v.dark, f)
                phase = self.ramp[:n] * (f * _TABLE_N / self.sr) + self.rng.random() * _TABLE_N
                idx = phase.astype(np.int64) & (_TABLE_N - 1)
                acc += wb * tb[idx] + wd * td[idx]
            out[start : start + n] += (gain / len(v.detune)) * acc
        return out


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise with a smooth band-pass ``lo``..``hi`` Hz applied in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    hi = min(hi, 0.47 * sr)
    lo = min(lo, 0.5 * hi)
    mask = 1 / (1 + np.exp(-(f - lo) / (0.12 * lo))) / (1 + np.exp((f - hi) / (0.12 * hi)))
    x = np.fft.irfft(spec * mask, n)
    return x / np.max(np.abs(x))


def _drum_kit(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot drum samples, each peaking at 1 and starting with its transient at sample 0."""

    def t_(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    t = t_(0.5)
    f = 50 + 100 * np.exp(-t / 0.03)  # pitch sweep 150 -> 50 Hz
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.14)
    click = _band_noise(rng, len(t), sr, 1500, 6000) * np.exp(-t / 0.002)
    kick = kick + 0.35 * click

    t = t_(0.25)
    snare = _band_noise(rng, len(t), sr, 1000, 5000) * np.exp(-t / 0.06)
    snare += 0.6 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)

    t = t_(0.3)
    bursts = sum(((t >= d) * np.exp(-np.maximum(t - d, 0) / 0.006)) for d in (0.0, 0.011, 0.022))
    clap = _band_noise(rng, len(t), sr, 900, 3500) * (bursts + 0.6 * np.exp(-t / 0.09))

    t = t_(0.06)
    hat = _band_noise(rng, len(t), sr, 7000, 16000) * np.exp(-t / 0.012)
    t = t_(0.35)
    open_hat = _band_noise(rng, len(t), sr, 6000, 16000) * np.exp(-t / 0.1)
    t = t_(2.0)
    crash = _band_noise(rng, len(t), sr, 3500, 16000) * np.exp(-t / 0.7)

    kit = {
        "kick": kick,
        "snare": snare,
        "clap": clap,
        "hat": hat,
        "open_hat": open_hat,
        "crash": crash,
    }
    for name, x in kit.items():
        x = x / np.max(np.abs(x))
        m = len(x) // 3  # a smooth fade over the last third: no click, no offset "onset"
        x[-m:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, m))
        kit[name] = x
    return kit


# ---------------------------------------------------------------------------------------------
# The song


def synthesize_song(
    *,
    tempo: float,
    key: Key,
    meter: int = 4,
    bars: int = 16,
    sr: int = 22050,
    lead_in: float = 0.0,
    seed: int = 0,
    sections: list[tuple[str, int]] | None = None,
    drums: bool = True,
    progression: list[int] | None = None,
    fills: bool = False,
) -> Song:
    """Synthesize a short song with exactly known tempo, key, meter, beats and sections.

    Parameters
    ----------
    tempo : float
        Beats per minute, 30..300.
    key : Key
        Key of the song; the harmony is diatonic in it.
    meter : int, default 4
        Beats per bar, 2..12 (3 and 4 have hand-made patterns; others get generic ones).
    bars : int, default 16
        Number of bars.
    sr : int, default 22050
        Sample rate in Hz (>= 8000).
    lead_in : float, default 0.0
        Seconds of exact digital silence before the first beat.
    seed : int, default 0
        Seed of every random choice (progression, melody, drum noise, velocities).
    sections : list of (str, int), optional
        ``(label, bars)`` pairs summing to ``bars``; labels ``intro``, ``verse``, ``chorus``,
        ``break``, ``build`` (no kick or bass, a snare roll, the level rising), ``drop``,
        ``outro`` (others play like a verse). Default
        :func:`default_sections`.
    drums : bool, default True
        Whether to play drums at all (the ``drums`` stem is then silent).
    fills : bool, default False
        A drum fill (snare sixteenths over the second half of the bar, the kick left out) in
        the last bar of every section that another follows, as produced tracks lead into a
        change; the section still starts on the next bar.
    progression : list of int, optional
        Chord progression as scale degrees 1..7, one chord per bar, cycling from the first bar
        (sections on 4-bar boundaries then start on its bar 0 or 4). In minor keys a 5 followed
        by a 1 is the major V (harmonic minor). Default: two 8-bar tonic-centred progressions
        picked by ``seed``, one for intro/chorus/drop/outro and one for verse/break.

    Returns
    -------
    Song
        The mix, its stems and its ground truth. ``len(audio)`` is the end of the last bar plus
        a release tail of half a beat (faded out); no beat is listed in the tail.

    Raises
    ------
    ParameterError
        On a value outside the documented domain.
    """
    if not isinstance(key, Key):
        raise ParameterError(f"key={key!r} must be a cratedig.theory.Key")
    if not 30 <= tempo <= 300:
        raise ParameterError(f"tempo={tempo} must be within 30..300 BPM")
    if not 2 <= meter <= 12:
        raise ParameterError(f"meter={meter} must be within 2..12 beats per bar")
    if bars < 1:
        raise ParameterError(f"bars={bars} must be >= 1")
    if sr < 8000:
        raise ParameterError(f"sr={sr} must be >= 8000 Hz")
    if lead_in < 0:
        raise ParameterError(f"lead_in={lead_in} must be >= 0 s")
    if sections is None:
        sections = default_sections(bars)
    if sum(b for _, b in sections) != bars or any(b < 1 for _, b in sections):
        raise ParameterError(
            f"section lengths {[b for _, b in sections]} must be >= 1 and sum to bars={bars}"
        )
    if progression is not None and (not progression or any(not 1 <= d <= 7 for d in progression)):
        raise ParameterError(f"progression={progression} must be scale degrees 1..7")

    rng = np.random.default_rng(seed)
    spb = 60.0 / tempo  # seconds per beat
    n_beats = bars * meter
    beats = lead_in + spb * np.arange(n_beats)
    downbeats = beats[::meter].copy()
    end = lead_in + spb * n_beats
    tail = int(0.5 * spb * sr)
    n = int(round(end * sr)) + tail
    slots = 2 * meter  # eighth notes per bar

    def sample(eighth: float) -> int:
        """Sample index of an eighth-note position counted from the first beat."""
        return int(round((lead_in + eighth * spb / 2) * sr))

    # -- harmony and melody -------------------------------------------------------------------
    pool = _MAJOR_PROGRESSIONS if key.mode == "major" else _MINOR_PROGRESSIONS
    if progression is not None:
        progs = [tuple(progression)] * 2
    else:
        i, j = rng.choice(len(pool), size=2, replace=False)
        progs = [pool[int(i)], pool[int(j)]]

    def harmony(prog: tuple[int, ...]) -> tuple[list[tuple[int, int, int]], list[bool]]:
        dom = [d == 5 and prog[(k + 1) % len(prog)] == 1 for k, d in enumerate(prog)]
        return [_triad(key, d, major_dominant=x) for d, x in zip(prog, dom, strict=True)], dom

    harmonies = [harmony(p) for p in progs]
    lines = [_lead_line(key, ch, dom, meter, rng) for ch, dom in harmonies]

    # -- arrangement: notes per instrument ----------------------------------------------------
    pad: list[tuple[int, int, float, float]] = []
    pluck: list[tuple[int, int, float, float]] = []
    bass: list[tuple[int, int, float, float]] = []
    lead: list[tuple[int, int, float, float]] = []
    hits: dict[str, list[tuple[int, float]]] = {
        k: [] for k in ("kick", "snare", "clap", "hat", "open_hat", "crash")
    }
    vel = rng.normal(1.0, 0.04, size=(n_beats * 2 + 1, 8)).clip(0.85, 1.15)
    kick_beats = _kick_beats(meter, tempo)

    sec_out: list[tuple[float, float, str]] = []
    bar0 = 0
    for label, n_bars in sections:
        style = _STYLES.get(label, _STYLES["verse"])
        sec_out.append(
            (float(downbeats[bar0]), float(lead_in + spb * meter * (bar0 + n_bars)), label)
        )
        chords, _ = harmonies[style.progression]
        line = lines[style.progression]
        for b in range(bar0, bar0 + n_bars):
            k = b % len(chords)  # the progression runs on across sections
            g = style.gain * (1.0 + style.ramp * (b - bar0) / max(1, n_bars - 1))
            root, third, fifth = chords[k]
            e0 = b * slots  # first eighth of the bar
            bar_len = sample(e0 + slots) - sample(e0)
            voicing = sorted(_into(pc, 55) for pc in (root, third, fifth))  # G3..F#4
            if style.pad:
                pad += [(sample(e0), bar_len, m, 0.22 * g) for m in voicing]
            if style.stabs:
                on = range(0, slots, 2) if style.stabs == "beats" else range(1, slots, 2)
                for s in on:
                    acc = 1.0 if s == 0 else 0.8
                    pluck += [
                        (sample(e0 + s), sample(e0 + s + 1) - sample(e0 + s), m, 0.2 * g * acc)
                        for m in voicing
                    ]
            if style.arp:
                arp = sorted(_into(pc, 60) for pc in (root, third, fifth))
                arp = arp + [arp[0] + 12]
                seq = [0, 1, 2, 3, 2, 1]
                for s in range(slots):
                    m = arp[seq[s % len(seq)]]
                    pluck.append(
                        (
                            sample(e0 + s),
                            sample(e0 + s + 1) - sample(e0 + s),
                            m,
                            0.16 * g * (1.0 if s == 0 else 0.75),
                        )
                    )
            if style.bass:
                r = _into(root, 33)  # A1..G#2: 55..104 Hz
                for s, length, interval, acc in _bass_pattern(style.bass, meter):
                    bass.append(
                        (
                            sample(e0 + s),
                            sample(e0 + s + length) - sample(e0 + s) - 1,
                            r + interval,
                            0.5 * g * acc,
                        )
                    )
            if style.lead:
                notes = line[k] if style.lead == "full" else _sparse(line[k], slots)
                lg = 0.3 if style.lead == "full" else 0.2
                for s, length, m in notes:
                    gate = int(0.9 * (sample(e0 + s + length) - sample(e0 + s)))
                    lead.append((sample(e0 + s), gate, m, lg * g * (1.0 if s == 0 else 0.85)))
            if not drums:
                continue
            phrase_start = b == bar0 or (b - bar0) % 8 == 0
            fill_bar = fills and b == bar0 + n_bars - 1 and b + 1 < bars and n_bars >= 4
            for beat in range(meter):
                e = e0 + 2 * beat
                v = vel[b * meter + beat]
                strong = 1.0 if beat == 0 else 0.85
                if fill_bar and 2 * beat >= meter:
                    for j in range(4):  # sixteenths, rising
                        hits["snare"].append((sample(e + 0.5 * j), g * (0.45 + 0.05 * j) * v[1]))
                    continue
                if style.kick and beat in kick_beats:
                    accent = 1.1 if beat == 0 and phrase_start else 1.0
                    hits["kick"].append((sample(e), g * strong * accent * v[0]))
                if style.roll:
                    # quarters in the first half, eighths after, sixteenths in the last bar
                    step = 2.0 if b - bar0 < n_bars / 2 else 1.0 if b < bar0 + n_bars - 1 else 0.5
                    for j in range(int(round(2 / step))):
                        hits["snare"].append((sample(e + j * step), g * 0.5 * v[1]))
                elif style.snare and _is_backbeat(beat, meter):
                    w = 0.7 if meter != 3 else 0.45
                    hits["snare"].append((sample(e), g * w * v[1]))
                    if style.clap:
                        hits["clap"].append((sample(e), g * 0.45 * v[2]))
                if style.hats:
                    hits["hat"].append((sample(e), g * 0.16 * v[3]))
                    if style.open_hats:
                        hits["open_hat"].append((sample(e + 1), g * 0.12 * v[4]))
                    else:
                        hits["hat"].append((sample(e + 1), g * 0.11 * v[5]))
            if style.crash and phrase_start:
                hits["crash"].append((sample(e0), g * 0.22))
        bar0 += n_bars

    # -- render ------------------------------------------------------------------------------
    ren = _Renderer(n, sr, rng)
    stems = {
        "drums": np.zeros(n),
        "bass": ren.notes(_BASS, bass),
        "chords": ren.notes(_PAD, pad) + ren.notes(_PLUCK, pluck),
        "lead": ren.notes(_LEAD, lead),
    }
    if drums:
        kit = _drum_kit(sr, rng)
        for name, events in hits.items():
            x = kit[name]
            for start, gain in events:
                m = min(len(x), n - start)
                stems["drums"][start : start + m] += gain * x[:m]

    start = int(round(lead_in * sr))
    fade = np.linspace(1.0, 0.0, tail) if tail else np.ones(0)
    peak = float(np.max(np.abs(stems["drums"] + stems["bass"] + stems["chords"] + stems["lead"])))
    scale = _PEAK / peak if peak > 0 else 1.0
    out: dict[str, np.ndarray] = {}
    for name in STEMS:
        x = stems[name] * scale
        x[:start] = 0.0
        x[n - tail :] *= fade
        out[name] = x.astype(np.float32)
    audio = (out["drums"] + out["bass"]) + (out["chords"] + out["lead"])
    return Song(
        audio=audio,
        sr=sr,
        tempo=float(tempo),
        key=key,
        meter=meter,
        beats=beats,
        downbeats=downbeats,
        sections=sec_out,
        stems=out,
        lead_in=float(lead_in),
    )


def _kick_beats(meter: int, tempo: float) -> set[int]:
    """Beats (0-based) of a bar that carry a kick."""
    if meter == 4:
        # Four on the floor from house tempos up (so fast songs are not heard at half tempo);
        # kick on 1 and 3 (snare on 2 and 4) below, as in hip-hop and pop.
        return {0, 1, 2, 3} if tempo >= 112 else {0, 2}
    if meter % 2 == 0:
        return {0, meter // 2}
    return {0}


def _is_backbeat(beat: int, meter: int) -> bool:
    if meter == 4:
        return beat in (1, 3)
    if meter == 3:
        return beat in (1, 2)
    if meter % 2 == 0:
        return beat not in (0, meter // 2)
    return beat != 0


def _bass_pattern(kind: str, meter: int) -> list[tuple[int, int, int, float]]:
    """(onset eighth, length in eighths, interval above the root, accent) for one bar."""
    slots = 2 * meter
    if kind == "half":
        if meter % 2 == 0:
            return [(0, meter, 0, 1.0), (meter, meter, 0, 0.8)]
        return [(0, slots, 0, 1.0)]
    if kind == "eighth":
        return [(s, 1, 12 if s % 4 == 3 else 0, 1.0 if s == 0 else 0.75) for s in range(slots)]
    # quarter notes, the root held on the downbeat, a fifth or octave pickup at the end
    out = [(0, 3, 0, 1.0)] + [(s, 2, 0, 0.8) for s in range(4, slots - 2, 2)]
    if meter >= 3:
        out += [(3, 1, 0, 0.6)] if meter == 4 else []
        out += [(slots - 2, 1, 7, 0.75), (slots - 1, 1, 12, 0.7)]
    else:
        out = [(0, 2, 0, 1.0), (2, 1, 7, 0.75), (3, 1, 12, 0.7)]
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# Files


def write_song(
    song: Song, path: str | os.PathLike[str], *, stems_dir: str | os.PathLike[str] | None = None
) -> None:
    """Write the mix to ``path`` (WAV, FLAC, OGG Vorbis or MP3, chosen by the suffix).

    Parameters
    ----------
    song : Song
        What to write.
    path : str or path-like
        Destination; its parent folder is created.
    stems_dir : str or path-like, optional
        When given, each stem is also written there as ``<stem>.wav``.

    Raises
    ------
    ParameterError
        If the suffix is not ``.wav``, ``.flac``, ``.ogg`` or ``.mp3``.
    """
    import soundfile as sf

    from cratedig.fileio import write_sound

    p = Path(path)
    fmt = _EXTS.get(p.suffix.lower())
    if fmt is None:
        raise ParameterError(f"{p.name}: suffix must be one of {sorted(_EXTS)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    write_sound(p, song.audio, song.sr, format=fmt)
    if stems_dir is not None:
        d = Path(stems_dir)
        d.mkdir(parents=True, exist_ok=True)
        for name, x in song.stems.items():
            sf.write(str(d / f"{name}.wav"), x, song.sr, format="WAV")


def demo_library(
    folder: str | os.PathLike[str],
    *,
    n: int = 6,
    seed: int = 0,
    seconds: float = 30.0,
    sr: int = 22050,
    stems: bool = False,
) -> list[dict[str, Any]]:
    """Write ``n`` synthesized songs with varied tempo, key, meter and format, and their truth.

    Tempos spread over 85..175 BPM, keys over both modes, one song in 3/4 (when ``n >= 2``),
    some with a lead-in of silence; files cycle through WAV, FLAC and OGG, tagged with artist
    ("cratedig demo"), title ("Demo 01"...), album, genre, their true BPM and key. Like a DJ's crate,
    songs come in mixable pairs: song ``2k + 1`` (4/4) is within 3 % of song ``2k``'s tempo
    and a Camelot neighbour of its key (the relative minor, or one step from it).

    Parameters
    ----------
    folder : str or path-like
        Created if missing; receives ``demo_XX.<ext>`` files and ``truth.json``.
    n : int, default 6
        Number of songs (>= 1).
    seed : int, default 0
        Seed of all choices.
    seconds : float, default 30.0
        Approximate length of each song (whole bars, at least 4).
    sr : int, default 22050
        Sample rate.
    stems : bool, default False
        Also write each song's stems (drums, bass, chords, lead) as WAV files in a
        ``demo_XX.stems/`` folder beside it, which ingest records as the track's stems.

    Returns
    -------
    list of dict
        One truth dict per song: ``path``, ``tempo``, ``key`` (tonic name, e.g. ``"F#"``),
        ``mode``, ``camelot``, ``meter``, ``lead_in``. The same list is written to
        ``truth.json``.
    """
    if n < 1:
        raise ParameterError(f"n={n} must be >= 1")
    if seconds <= 0:
        raise ParameterError(f"seconds={seconds} must be > 0")
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tempos = np.linspace(85, 175, n) if n > 1 else np.array([124.0])
    tempos = np.clip(np.round(tempos + rng.uniform(-3, 3, n)), 85, 175)
    tempos = tempos[rng.permutation(n)]
    tonics = np.concatenate([rng.permutation(12) for _ in range(n // 12 + 1)])
    modes = ["major", "minor"] * (n // 2 + 1)
    waltz = n // 2 if n >= 2 else -1
    keys = [Key(int(tonics[i]), modes[i]) for i in range(n)]  # type: ignore[arg-type]
    # A crate, not a random draw: songs 2k and 2k+1 (both 4/4) mix, as a DJ's crate has
    # neighbours. The odd one is within 3 % in tempo and on the Camelot wheel next to its
    # partner (the relative minor, or one step either way from it).
    for i in range(1, n, 2):
        if waltz in (i, i - 1):
            continue
        tempos[i] = np.clip(np.round(tempos[i - 1] * (1 + rng.uniform(-0.03, 0.03))), 85, 175)
        keys[i] = keys[i - 1].relative.transpose(int(rng.choice([0, 7, 5])))
    truth = []
    for i in range(n):
        key = keys[i]
        meter = 3 if i == waltz else 4
        tempo = float(tempos[i])
        lead_in = float(np.round(rng.uniform(0.2, 1.5), 2)) if i % 2 else 0.0
        bars = max(4, int(round(seconds / (meter * 60 / tempo))))
        song = synthesize_song(
            tempo=tempo,
            key=key,
            meter=meter,
            bars=bars,
            sr=sr,
            lead_in=lead_in,
            seed=seed * 1000 + i,
        )
        path = folder / f"demo_{i + 1:02d}.{('wav', 'flac', 'ogg')[i % 3]}"
        write_song(song, path, stems_dir=path.with_suffix(".stems") if stems else None)
        # Tagged as a DJ's files are: the page and `tracks` name them by artist and title.
        write_tags(
            path,
            {
                "artist": "cratedig demo",
                "title": f"Demo {i + 1:02d}",
                "album": "cratedig demo crate",
                "genre": "Electronic",
                "bpm": f"{tempo:g}",
                "key": f"{key.name}{'m' if key.mode == 'minor' else ''}",
            },
        )
        truth.append(
            {
                "path": str(path),
                "tempo": tempo,
                "key": key.name,
                "mode": key.mode,
                "camelot": key.camelot,
                "meter": meter,
                "lead_in": lead_in,
            }
        )
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
