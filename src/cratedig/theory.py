"""Music theory: pitch classes, keys, modes, Camelot codes, key relations and tempo ratios.

This module is the one source of truth for key names and harmonic relations; nothing else in
cratedig hard-codes them.

Conventions
-----------
- A pitch class is an integer 0..11 with C = 0, C# = 1, ... B = 11.
- A key is a (tonic pitch class, mode) pair; mode is ``"major"`` or ``"minor"``.
- Key names use sharps ("F#", not "Gb"), as the ``analyze --json`` contract does; parsing accepts
  flats and the usual spellings ("Abm", "A minor", "8A").
- Camelot codes follow Mixed In Key's wheel: 8B = C major, 8A = A minor; +1 = up a fifth.

References
----------
Mixed In Key, "Camelot Wheel"; Krumhansl, C. (1990) *Cognitive Foundations of Musical Pitch*.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cratedig.errors import ParameterError

Mode = Literal["major", "minor"]
MODES: tuple[Mode, Mode] = ("major", "minor")

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"DB": 1, "EB": 3, "GB": 6, "AB": 8, "BB": 10, "CB": 11, "FB": 4, "E#": 5, "B#": 0}

# Major scale and natural-minor scale degrees in semitones above the tonic.
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


def pitch_class(name: str) -> int:
    """Parse a pitch-class name ("C", "c#", "Db", "A♭") into 0..11.

    Examples
    --------
    >>> pitch_class("Db")
    1
    """
    n = name.strip().upper().replace("♯", "#").replace("♭", "B")
    if n in PITCH_CLASSES:
        return PITCH_CLASSES.index(n)
    if n in _FLATS:
        return _FLATS[n]
    raise ParameterError(f"pitch class {name!r} is not a note name like 'C#' or 'Db'")


@dataclass(frozen=True, order=True)
class Key:
    """A musical key: tonic pitch class and mode.

    Examples
    --------
    >>> Key.parse("8A")
    Key(tonic=9, mode='minor')
    >>> Key(0, "major").camelot
    '8B'
    """

    tonic: int
    mode: Mode

    def __post_init__(self) -> None:
        if not isinstance(self.tonic, int) or not 0 <= self.tonic < 12:
            raise ParameterError(f"tonic={self.tonic!r} must be an integer pitch class 0..11")
        if self.mode not in MODES:
            raise ParameterError(f"mode={self.mode!r} must be 'major' or 'minor'")

    # -- names -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Tonic name with sharps: ``"A"``."""
        return PITCH_CLASSES[self.tonic]

    @property
    def camelot(self) -> str:
        """Camelot code, e.g. ``"8A"`` for A minor."""
        return camelot_code(self)

    @property
    def index(self) -> int:
        """0..23: major keys 0..11 by tonic, minor keys 12..23 by tonic (the key-profile order)."""
        return self.tonic + (12 if self.mode == "minor" else 0)

    @classmethod
    def from_index(cls, index: int) -> Key:
        """Inverse of :attr:`index`."""
        if not 0 <= index < 24:
            raise ParameterError(f"key index={index} must be in 0..23")
        return cls(index % 12, "minor" if index >= 12 else "major")

    def __str__(self) -> str:
        return f"{self.name} {self.mode}"

    @classmethod
    def parse(cls, text: str) -> Key:
        """Parse "A minor", "Am", "a", "F#m", "Gb major", "8A" or "12b".

        A bare lowercase letter is read as minor (the common shorthand), uppercase as major.
        """
        t = text.strip()
        m = re.fullmatch(r"(\d{1,2})\s*([ABab])", t)
        if m:
            return from_camelot(m.group(1) + m.group(2).upper())
        m = re.fullmatch(r"([A-Ga-g][#b♯♭]?)\s*(major|minor|maj|min|m|M)?", t)
        if not m:
            raise ParameterError(f"key {text!r} is not like 'A minor', 'F#m' or '8A'")
        note, suffix = m.group(1), m.group(2)
        if suffix in ("minor", "min", "m"):
            mode: Mode = "minor"
        elif suffix in ("major", "maj", "M"):
            mode = "major"
        else:
            mode = "minor" if note[0].islower() else "major"
        return cls(pitch_class(note), mode)

    # -- transformations ---------------------------------------------------------------------
    def transpose(self, semitones: int) -> Key:
        """The key after a pitch shift of ``semitones``."""
        return Key((self.tonic + semitones) % 12, self.mode)

    @property
    def relative(self) -> Key:
        """Relative major/minor: same notes (A minor <-> C major)."""
        if self.mode == "minor":
            return Key((self.tonic + 3) % 12, "major")
        return Key((self.tonic - 3) % 12, "minor")

    @property
    def parallel(self) -> Key:
        """Parallel major/minor: same tonic (A minor <-> A major)."""
        return Key(self.tonic, "major" if self.mode == "minor" else "minor")

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes of the (natural) scale."""
        degrees = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return frozenset((self.tonic + d) % 12 for d in degrees)


# Camelot number of each major tonic: C=8B, G=9B, D=10B... (up a fifth = +1 on the wheel).
def camelot_code(key: Key) -> str:
    """Camelot code of a key ("8A" = A minor, "8B" = C major)."""
    # Position on the circle of fifths of the major key with the same notes.
    major_tonic = key.tonic if key.mode == "major" else (key.tonic + 3) % 12
    number = (7 * major_tonic) % 12  # steps of a fifth from C
    number = (number + 7) % 12 + 1  # C major -> 8
    return f"{number}{'B' if key.mode == 'major' else 'A'}"


def from_camelot(code: str) -> Key:
    """Key of a Camelot code ("8A" -> A minor)."""
    m = re.fullmatch(r"\s*(\d{1,2})\s*([ABab])\s*", code)
    if not m or not 1 <= int(m.group(1)) <= 12:
        raise ParameterError(f"Camelot code {code!r} must be 1A..12A or 1B..12B")
    number, letter = int(m.group(1)), m.group(2).upper()
    fifths = (number - 8) % 12  # fifths above C major
    major_tonic = (7 * fifths) % 12
    if letter == "B":
        return Key(major_tonic, "major")
    return Key((major_tonic - 3) % 12, "minor")


def camelot_parts(key: Key) -> tuple[int, str]:
    """(number 1..12, letter 'A'|'B')."""
    code = camelot_code(key)
    return int(code[:-1]), code[-1]


# --------------------------------------------------------------------------------------------
# Key relations, best first. Shared-note counts from the natural scales; the ordering follows
# MUSIC.md ("What real DJs do") and the MIREX key evaluation.
RELATIONS: tuple[str, ...] = (
    "same",  # 7/7 notes
    "relative",  # 7/7 notes, other mode (8A <-> 8B)
    "fifth",  # Camelot +-1, same letter: 6/7 notes (dominant / subdominant)
    "diagonal",  # Camelot +-1 with letter switch: 6/7 notes
    "parallel",  # same tonic, other mode: 4/7 notes but a strong functional link
    "energy_boost",  # Camelot +2, same letter: 5/7 notes
    "other",
    "tritone",  # Camelot +6: the clash
)

# Compatibility of each relation in [0, 1], used as the label-level harmonic prior.
RELATION_SCORE: dict[str, float] = {
    "same": 1.0,
    "relative": 0.9,
    "fifth": 0.8,
    "diagonal": 0.6,
    "parallel": 0.4,
    "energy_boost": 0.4,
    "other": 0.1,
    "tritone": 0.0,
}


def key_relation(a: Key, b: Key) -> str:
    """Name the harmonic relation of ``b`` to ``a`` (symmetric except for direction-free names).

    Examples
    --------
    >>> key_relation(Key.parse("8A"), Key.parse("9A"))
    'fifth'
    >>> key_relation(Key.parse("Am"), Key.parse("C"))
    'relative'
    """
    if a == b:
        return "same"
    (na, la), (nb, lb) = camelot_parts(a), camelot_parts(b)
    step = min((na - nb) % 12, (nb - na) % 12)
    if step == 0:
        return "relative"
    if a.parallel == b:
        return "parallel"
    if step == 1:
        return "fifth" if la == lb else "diagonal"
    if step == 2 and la == lb:
        return "energy_boost"
    if step == 6:
        return "tritone"
    return "other"


def shared_notes(a: Key, b: Key) -> int:
    """Number of scale notes the two keys share (0..7)."""
    return len(a.scale & b.scale)


def mirex_key_score(reference: Key, estimate: Key) -> float:
    """MIREX key score of one estimate: same 1.0, fifth 0.5, relative 0.3, parallel 0.2, else 0.

    "Fifth" means the estimate's tonic is a perfect fifth *above* the reference tonic, in the same
    mode (MIREX 2005 "Audio Key Detection"; ``mir_eval.key.weighted_score`` with its default
    ``allow_descending_fifths=False``).
    """
    if reference == estimate:
        return 1.0
    if reference.mode == estimate.mode and (estimate.tonic - reference.tonic) % 12 == 7:
        return 0.5
    if reference.relative == estimate:
        return 0.3
    if reference.parallel == estimate:
        return 0.2
    return 0.0


# --------------------------------------------------------------------------------------------
# Tempo
TEMPO_RATIOS: tuple[float, ...] = (1.0, 2.0, 0.5)


def tempo_stretch(source_bpm: float, target_bpm: float, ratio: float = 1.0) -> float:
    """Relative speed change that makes ``source_bpm`` play at ``target_bpm`` under ``ratio``.

    ``ratio`` is the metrical ratio target:source (2.0 means the source's beat plays as half a
    target beat). Returns e.g. 0.016 for +1.6 %.
    """
    if source_bpm <= 0 or target_bpm <= 0:
        raise ParameterError(f"tempos must be > 0 BPM, got {source_bpm} and {target_bpm}")
    return target_bpm / (source_bpm * ratio) - 1.0


#: Metrical relations between two tempo readings of one track, as "alternative:estimate".
TEMPO_RELATIONS: tuple[tuple[int, int], ...] = ((1, 2), (2, 1), (3, 4), (4, 3), (2, 3), (3, 2))


def tempo_relation(estimate: float, alternative: float, *, tolerance: float = 0.04) -> str:
    """Name the ratio ``alternative / estimate`` as ``"3:4"``, ``"1:2"``..., or ``"other"``.

    Examples
    --------
    >>> tempo_relation(140.0, 105.0), tempo_relation(140.0, 70.2), tempo_relation(140, 139)
    ('3:4', '1:2', '1:1')
    """
    if estimate <= 0 or alternative <= 0:
        raise ParameterError(f"tempos must be > 0 BPM, got {estimate} and {alternative}")
    r = alternative / estimate
    if abs(r - 1.0) <= tolerance:
        return "1:1"
    for a, b in TEMPO_RELATIONS:
        if abs(r / (a / b) - 1.0) <= tolerance:
            return f"{a}:{b}"
    return "other"


def speed_to_semitones(speed: float) -> float:
    """Pitch change in semitones of playing back at ``speed`` (1.0595 -> +1) without key lock."""
    if speed <= 0:
        raise ParameterError(f"speed={speed} must be > 0")
    return 12.0 * math.log2(speed)


#: Tuning differences below this many cents are left alone by :func:`tuning_correction`: two
#: layers 10 cents apart beat at about 2.5 Hz on an A4 (slow, rarely heard in a dense mix),
#: and the tuning estimate of one track moves by a few cents between layers of the same song
#: (``bench/tuning.py``), so correcting less than this would mostly chase estimation noise.
TUNING_MIN_CENTS = 10.0


def tuning_correction(query_cents: float, candidate_cents: float) -> float:
    """Cents to shift a candidate by so that its tuning meets the query's (0 under
    :data:`TUNING_MIN_CENTS`).

    Each track's pitch classes (and so its key and the matcher's semitone shift) are named
    against its own tuning reference, ``tuning`` cents off A440 in [-50, 50). The shift that
    actually lays the candidate's notes on the query's is the suggested semitones plus
    ``query_cents - candidate_cents`` (up to +-100 cents): a tracker module tuned 45 cents
    sharp over a 432 Hz recording (-32 cents) is 77 cents out before any semitone is counted.

    Examples
    --------
    >>> tuning_correction(45.0, -32.0), tuning_correction(3.0, -4.0)
    (77.0, 0.0)
    """
    d = float(query_cents) - float(candidate_cents)
    if not math.isfinite(d):
        return 0.0
    return round(d, 1) if abs(d) >= TUNING_MIN_CENTS else 0.0


# --------------------------------------------------------------------------------------------
# Transform costs: how acceptable a time-stretch or a pitch shift is, in [0, 1].
# Knots from MUSIC.md "What real DJs do": DJ tools score < 2 % stretch ~ 1.0, 2-4 % ~ 0.8,
# 4-6 % ~ 0.5, > 9 % < 0.2 (86 % of tracks in 1,557 real mixes play within +-5 %, Kim et al.,
# ISMIR 2020). Linear between knots.
STRETCH_KNOTS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (0.0, 0.015, 0.03, 0.05, 0.07, 0.09, 0.15),
    (1.0, 0.98, 0.8, 0.5, 0.3, 0.18, 0.0),
)
# Pitch shift: 0 best, +-1 nearly free, +-2 fine, +-3 costly (vocals start to sound unnatural);
# only 2.5 % of tracks in real mixes are transposed, 94 % of those by one semitone.
SHIFT_SCORE: tuple[float, ...] = (1.0, 0.95, 0.85, 0.6, 0.35, 0.2, 0.1)


def stretch_score(stretch: float | np.ndarray) -> np.ndarray:
    """Acceptability in [0, 1] of a relative speed change (0.03 = +3 %), either direction.

    Examples
    --------
    >>> float(stretch_score(0.01)) > 0.95, float(stretch_score(-0.10)) < 0.2
    (True, True)
    """
    return np.interp(np.abs(np.asarray(stretch, dtype=np.float64)), *STRETCH_KNOTS)


def shift_score(semitones: int | np.ndarray) -> np.ndarray:
    """Acceptability in [0, 1] of a pitch shift by ``semitones`` (either direction).

    Examples
    --------
    >>> float(shift_score(0)), float(shift_score(-1)), float(shift_score(3))
    (1.0, 0.95, 0.6)
    """
    k = np.minimum(np.abs(np.asarray(semitones, dtype=np.int64)), len(SHIFT_SCORE) - 1)
    return np.asarray(SHIFT_SCORE, dtype=np.float64)[k]
