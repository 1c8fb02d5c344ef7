"""Small songs with the patterns produced music has and our demo songs lack, with exact truth.

Each pattern is a way real tracks fooled the analysis (MUSIC.md, "What produced music does that
our synthesized songs do not"):

- ``dotted_pluck``: a loud pluck on a continuous dotted-eighth grid (3 sixteenths) with a delay
  echo, over a quieter four-on-the-floor kick: the 3/16 period must not become the beat (140 BPM
  read as 105 or 187 is a 3:4 / 4:3 error no stretch repairs);
- ``tresillo``: kick and bass on the 3-3-2 eighths of each bar, snare on 2 and 4;
- ``offbeat_hats``: only off-beat open hats for drums, pads and a bass note on each bar's first
  beat (a breakdown): the hats' phase must not become the beat's;
- ``pickup``: a one-beat pickup before the first bar, chords changing every two bars, a kick on
  every beat: the bar phase must come from the harmony and the bass, not from the first onset;
- ``aeolian``: the i-VII-VI-VII loop (Dm-C-Bb-C, "All Along the Watchtower"): D minor, not
  C major;
- ``dorian``: a i-IV vamp (Dm-G): D minor (Dorian), not G major or C major;
- ``mixolydian``: I-bVII-IV-I (G-F-C-G): G major (Mixolydian), not C major.

:func:`pickup_piece` is apart from the patterns (and from the downbeat fit of
``bench/fit_downbeats.py``, which uses the patterns): a drumless minuet-like piece, plucked
chords and a bass note on every beat, a new chord each bar, that starts on a pickup (anacrusis)
of one or more beats, as classical pieces and songs often do: the first strong beat is not a
downbeat, and only the harmony says where the bar starts and how many beats it has.

Rendered with the instruments of :mod:`cratedig.synth` (additive voices, noise drums), mono.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cratedig.synth import _BASS, _LEAD, _PAD, _PLUCK, _drum_kit, _Renderer
from cratedig.theory import Key

SR = 22050
NOTE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "Bb": 10, "B": 11}


@dataclass
class HardSong:
    """A song and its truth (times in seconds)."""

    name: str
    audio: np.ndarray
    sr: int
    tempo: float
    key: Key
    meter: int
    beats: np.ndarray
    downbeats: np.ndarray


def _chord(root: str, minor: bool) -> list[int]:
    r = NOTE[root]
    return [r, r + (3 if minor else 4), r + 7]


#: name -> (tempo, key, chords one per bar as (root, minor?), bars per chord)
PATTERNS: dict[str, tuple[float, str, list[tuple[str, bool]], int]] = {
    "dotted_pluck": (140.0, "A minor", [("A", True), ("F", False), ("C", False), ("G", False)], 1),
    "tresillo": (120.0, "E minor", [("E", True), ("C", False), ("D", False), ("B", True)], 1),
    "offbeat_hats": (128.0, "F major", [("F", False), ("D", True), ("Bb", False), ("C", False)], 1),
    "pickup": (124.0, "G major", [("G", False), ("C", False), ("D", False), ("C", False)], 2),
    "aeolian": (118.0, "D minor", [("D", True), ("C", False), ("Bb", False), ("C", False)], 1),
    "dorian": (122.0, "D minor", [("D", True), ("G", False)], 2),
    "mixolydian": (126.0, "G major", [("G", False), ("F", False), ("C", False), ("G", False)], 1),
}


def hard_song(name: str, *, bars: int = 16, seed: int = 0, sr: int = SR) -> HardSong:
    """Render the pattern ``name`` (a key of :data:`PATTERNS`) for ``bars`` bars."""
    tempo, key_name, chords, per = PATTERNS[name]
    rng = np.random.default_rng(seed)
    spb = 60.0 / tempo
    six = spb / 4  # a sixteenth
    lead_in = spb if name == "pickup" else 0.25
    first_bar = lead_in
    n_beats = bars * 4
    beats = first_bar + spb * np.arange(n_beats)
    if name == "pickup":
        beats = np.r_[first_bar - spb, beats]  # the pickup beat is a beat, not a downbeat
    downbeats = first_bar + 4 * spb * np.arange(bars)
    end = first_bar + bars * 4 * spb
    n = int((end + 1.0) * sr)

    def at(t: float) -> int:
        return int(round(t * sr))

    ren = _Renderer(n, sr, rng)
    kit = _drum_kit(sr, rng)
    drums = np.zeros(n)

    def hit(name_: str, t: float, gain: float) -> None:
        x = kit[name_]
        s = at(t)
        m = min(len(x), n - s)
        drums[s : s + m] += gain * x[:m]

    pad, pluck, bass, lead = [], [], [], []
    for b in range(bars):
        t0 = first_bar + 4 * spb * b
        root, minor = chords[(b // per) % len(chords)]
        pcs = _chord(root, minor)
        voicing = sorted(55 + (pc - 55) % 12 for pc in pcs)
        r_bass = 33 + (NOTE[root] - 33) % 12
        bar_len = at(t0 + 4 * spb) - at(t0)
        if name in ("offbeat_hats", "pickup", "aeolian", "dorian", "mixolydian"):
            pad += [(at(t0), bar_len, m, 0.2) for m in voicing]
        if name == "tresillo":
            for e in (0, 3, 6):  # 3-3-2 in eighths
                hit("kick", t0 + e * spb / 2, 0.9)
                bass.append((at(t0 + e * spb / 2), at(spb * 0.9) - 1, r_bass, 0.5))
            for q in (1, 3):
                hit("snare", t0 + q * spb, 0.6)
            for e in range(8):
                hit("hat", t0 + e * spb / 2, 0.12 if e % 2 else 0.15)
            pluck += [(at(t0), at(spb), m, 0.15) for m in voicing]
        elif name == "offbeat_hats":
            for q in range(4):
                hit("open_hat", t0 + q * spb + spb / 2, 0.3)
            bass.append((at(t0), at(2 * spb), r_bass, 0.5))
            if b % 2 == 1:
                lead.append((at(t0 + 2 * spb), at(spb), 72 + (pcs[1] - 72) % 12, 0.12))
        elif name == "dotted_pluck":
            for q in range(4):
                hit("kick", t0 + q * spb, 0.45)
                hit("hat", t0 + q * spb + spb / 2, 0.08)
            bass.append((at(t0), at(3.5 * spb), r_bass, 0.35))
        else:  # pickup, modal loops: a plain four-on-the-floor groove
            for q in range(4):
                hit("kick", t0 + q * spb, 0.8)
                hit("hat", t0 + q * spb + spb / 2, 0.1)
                if q in (1, 3):
                    hit("clap", t0 + q * spb, 0.4)
            for q in range(4):
                bass.append((at(t0 + q * spb), at(0.8 * spb), r_bass, 0.45 if q else 0.55))
            if name != "pickup" and b % 2 == 0:
                # a melody on chord tones, the tonic of the chord on the downbeat
                for q, pc in enumerate((pcs[0], pcs[2], pcs[1], pcs[0])):
                    lead.append((at(t0 + q * spb), at(0.8 * spb), 72 + (pc - 72) % 12, 0.12))
    if name == "pickup":
        # the pickup: a melody note and a tom-like bass note one beat before the first bar
        lead.append((at(first_bar - spb), at(0.8 * spb), 74, 0.2))
        hit("snare", first_bar - spb / 2, 0.3)
        lead += [(at(t), at(0.4 * spb), 71, 0.1) for t in downbeats[1::2]]
    if name == "dotted_pluck":
        # a continuous dotted-eighth pluck line with a dotted-eighth delay echo, louder than
        # the kick: the period a naive onset-periodicity picks
        root_pcs = [_chord(r, m) for r, m in chords]
        t, k = first_bar, 0
        while t < end - 0.05:
            bar = int((t - first_bar) // (4 * spb))
            pcs = root_pcs[(bar // per) % len(root_pcs)]
            m = 67 + (pcs[k % 3] - 67) % 12
            pluck.append((at(t), at(2 * six), m, 0.45))
            if t + 3 * six < end:
                pluck.append((at(t + 3 * six), at(2 * six), m, 0.2))
            t += 3 * six
            k += 1
    mix = drums + ren.notes(_PAD, pad) + ren.notes(_PLUCK, pluck) + ren.notes(_BASS, bass)
    mix += ren.notes(_LEAD, lead)
    mix[: max(at(lead_in - spb) if name == "pickup" else at(lead_in), 0)] = 0.0
    mix = 0.89 * mix / np.max(np.abs(mix))
    return HardSong(
        name=name,
        audio=mix.astype(np.float32),
        sr=sr,
        tempo=tempo,
        key=Key.parse(key_name),
        meter=4,
        beats=beats,
        downbeats=downbeats,
    )


def _chord_on_beats(at, t0: float, spb: float, beats: int, root: str, voicing, bass, pluck) -> None:
    """A plucked chord and a bass note on each of ``beats`` beats from ``t0``."""
    for q in range(beats):
        bass.append((at(t0 + q * spb), at(0.9 * spb), 33 + (NOTE[root] - 33) % 12, 0.35))
        pluck += [(at(t0 + q * spb), at(0.6 * spb), m, 0.1) for m in voicing]


def _plucked_song(ren: _Renderer, pluck, bass, lead, **truth) -> HardSong:
    """Mix the pluck, bass and lead notes, normalise, and attach the truth."""
    mix = ren.notes(_PLUCK, pluck) + ren.notes(_BASS, bass) + ren.notes(_LEAD, lead)
    mix = 0.89 * mix / np.max(np.abs(mix))
    return HardSong(audio=mix.astype(np.float32), **truth)


#: Chords of :func:`pickup_piece`, one per bar: F major, a plain diatonic progression.
PICKUP_CHORDS = [
    ("F", False),
    ("C", False),
    ("D", True),
    ("A", True),
    ("Bb", False),
    ("F", False),
    ("G", True),
    ("C", False),
]


def pickup_piece(
    *,
    meter: int = 3,
    pickup: int = 1,
    tempo: float = 120.0,
    bars: int = 24,
    seed: int = 0,
    sr: int = SR,
) -> HardSong:
    """A drumless piece in ``meter`` beats a bar that starts with a ``pickup``-beat anacrusis.

    Every beat has the same plucked chord and bass note (no beat is louder), the chord changes
    on each bar line, and the melody holds a long note on the first beat of every other bar.
    The pickup beats sound like any other beat (a chord, a bass note and a melody note).
    """
    rng = np.random.default_rng(seed)
    spb = 60.0 / tempo
    first_bar = 0.25 + pickup * spb
    beats = first_bar + spb * np.arange(-pickup, bars * meter)
    downbeats = first_bar + meter * spb * np.arange(bars)
    end = first_bar + bars * meter * spb
    n = int((end + 1.0) * sr)

    def at(t: float) -> int:
        return int(round(t * sr))

    ren = _Renderer(n, sr, rng)
    pluck, bass, lead = [], [], []
    for b in range(bars):
        t0 = first_bar + meter * spb * b
        root, minor = PICKUP_CHORDS[b % len(PICKUP_CHORDS)]
        pcs = _chord(root, minor)
        voicing = sorted(55 + (pc - 55) % 12 for pc in pcs)
        _chord_on_beats(at, t0, spb, meter, root, voicing, bass, pluck)
        if b % 2 == 0:
            lead.append((at(t0), at((meter - 0.2) * spb), 72 + (pcs[0] - 72) % 12, 0.13))
        else:
            for q in range(meter):
                pc = pcs[int(rng.integers(3))]
                lead.append((at(t0 + q * spb), at(0.9 * spb), 72 + (pc - 72) % 12, 0.13))
    for k in range(pickup):
        t = first_bar - (pickup - k) * spb
        lead.append((at(t), at(0.9 * spb), 74, 0.16))
        pluck += [(at(t), at(0.6 * spb), m, 0.1) for m in (55, 60, 64)]
        bass.append((at(t), at(0.9 * spb), 31, 0.35))
    return _plucked_song(
        ren,
        pluck,
        bass,
        lead,
        name=f"pickup_{meter}_{pickup}",
        sr=sr,
        tempo=tempo,
        key=Key.parse("F major"),
        meter=meter,
        beats=beats,
        downbeats=downbeats,
    )


def modulating_piece(
    *,
    home: tuple[str, ...] = ("G", "C", "D", "G"),
    away: tuple[str, ...] = ("D", "G", "A", "D"),
    home_bars: int = 4,
    away_bars: int = 12,
    tempo: float = 110.0,
    seed: int = 0,
    sr: int = SR,
) -> HardSong:
    """A drumless excerpt that states its (major) key, then modulates and stays away to the end.

    ``home_bars`` bars cycle the major chords ``home`` (one a bar), then ``away_bars`` bars cycle
    ``away`` and end there, as a sonata exposition cut before its return does: G major moving to
    its dominant D for the rest of the excerpt. Plucked chords, a bass note on every beat, a
    melody on chord tones. The key a score gives, and a musician names, is the opening's.
    """
    rng = np.random.default_rng(seed)
    spb = 60.0 / tempo
    first_bar = 0.25
    bars = home_bars + away_bars
    beats = first_bar + spb * np.arange(bars * 4)
    downbeats = first_bar + 4 * spb * np.arange(bars)
    n = int((first_bar + bars * 4 * spb + 1.0) * sr)

    def at(t: float) -> int:
        return int(round(t * sr))

    ren = _Renderer(n, sr, rng)
    pluck, bass, lead = [], [], []
    for b in range(bars):
        t0 = first_bar + 4 * spb * b
        root = home[b % len(home)] if b < home_bars else away[(b - home_bars) % len(away)]
        pcs = _chord(root, False)
        voicing = sorted(55 + (pc - 55) % 12 for pc in pcs)
        _chord_on_beats(at, t0, spb, 4, root, voicing, bass, pluck)
        for q in range(4):
            pc = pcs[int(rng.integers(3))]
            lead.append((at(t0 + q * spb), at(0.9 * spb), 72 + (pc - 72) % 12, 0.13))
    return _plucked_song(
        ren,
        pluck,
        bass,
        lead,
        name=f"modulating_{home[0]}_{away[0]}",
        sr=sr,
        tempo=tempo,
        key=Key.parse(f"{home[0]} major"),
        meter=4,
        beats=beats,
        downbeats=downbeats,
    )
