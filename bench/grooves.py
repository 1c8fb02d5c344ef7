"""Tempo of the plain drum grooves of pop, rock and hip-hop, synthesized with known tempo.

A grid of grooves (numpy, no samples): kick patterns with the snare on 2 and 4, hats in eighths,
sixteenths, off-beats or none, a bass note a bar or in eighths, with or without chords on the
beats, at 96-140 BPM, 16 bars each; then genre grooves (house, techno, drum and bass, dembow,
UK garage, funk, boom bap, breakbeat, half-time rock), straight and swung. Prints how many are
read at their tempo (±4 %), how many of those have their beats and bar lines on the groove's, and
lists the others; then four-on-the-floor grooves whose off-beat stabs, bass and open hats may
outweigh the kick (are the beats on the kicks?). Not a test set: the tests hold a few of these (``tests/analysis/test_backbeat.py``).

Usage::

    .venv/bin/python bench/grooves.py                          # this tree
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/grooves.py  # another tree, same grooves
"""

from __future__ import annotations

import argparse

import numpy as np

# cratedig as installed (or as PYTHONPATH names another tree: see the usage above)
from cratedig.analysis.pipeline import analyze_signal

SR = 22050
KICKS = {
    "1+3": (0.0, 2.0),
    "1+3+and3": (0.0, 2.0, 2.5),
    "1+and2+3": (0.0, 1.5, 2.0),
    "1": (0.0,),
}
HATS = ("8", "16", "off", "none")
BASS = ("bar", "8")
TEMPI = (96.0, 108.0, 118.0, 124.0, 132.0, 140.0)


class _Kit:
    def __init__(self, rng: np.random.Generator) -> None:
        t = np.arange(int(0.25 * SR)) / SR
        f = 50 + 100 * np.exp(-t * 30)
        self.kick = 0.9 * np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t * 12)
        t = np.arange(int(0.2 * SR)) / SR
        self.snare = 0.5 * rng.standard_normal(len(t)) * np.exp(-t * 20) + 0.3 * np.sin(
            2 * np.pi * 190 * t
        ) * np.exp(-t * 25)
        t = np.arange(int(0.05 * SR)) / SR
        self.hat = 0.2 * np.diff(rng.standard_normal(len(t)), prepend=0.0) * np.exp(-t * 80)


def _tone(f: float, dur: float, amp: float) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    return amp * np.sin(2 * np.pi * f * t) * np.exp(-t * 1.5)


#: The bass line's root per bar (A, E, F, G), one bar after another.
ROOTS = (55.0, 41.2, 43.65, 49.0)


class _Canvas:
    """``bars`` bars of 4 beats at ``bpm`` (and a second of tail), sounds added in place."""

    def __init__(self, bpm: float, bars: int) -> None:
        self.beat = 60.0 / bpm
        self.y = np.zeros(int((bars * 4 * self.beat + 1.0) * SR))

    def hit(self, at: float, sound: np.ndarray, gain: float = 1.0) -> None:
        i = int(round(at * SR))
        n = min(len(sound), len(self.y) - i)
        if n > 0:
            self.y[i : i + n] += gain * sound[:n]


def groove(
    bpm: float, kicks: str, hats: str, bass: str, chords: bool, *, bars: int = 16, seed: int = 0
) -> np.ndarray:
    """One groove as float32 mono at :data:`SR`."""
    kit = _Kit(np.random.default_rng(seed))
    c = _Canvas(bpm, bars)
    beat, hit = c.beat, c.hit
    for bar in range(bars):
        t0 = bar * 4 * beat
        for k in KICKS[kicks]:
            hit(t0 + k * beat, kit.kick)
        for s in (1, 3):
            hit(t0 + s * beat, kit.snare)
        if hats == "8":
            for e in range(8):
                hit(t0 + e * beat / 2, kit.hat, 1.0 if e % 2 == 0 else 0.8)
        elif hats == "16":
            for e in range(16):
                hit(t0 + e * beat / 4, kit.hat, 1.0 if e % 4 == 0 else 0.6)
        elif hats == "off":
            for e in range(4):
                hit(t0 + (e + 0.5) * beat, kit.hat)
        r = ROOTS[bar % 4]
        if bass == "bar":
            hit(t0, _tone(r, 4 * beat, 0.25))
        else:
            for e in range(8):
                hit(t0 + e * beat / 2, _tone(r, beat / 2, 0.2))
        if chords:
            for e in range(4):
                chord = sum(_tone(r * m, beat * 0.9, 0.04) for m in (4.0, 5.0, 6.0))
                hit(t0 + e * beat, np.asarray(chord))
    return c.y.astype(np.float32)


_E8 = tuple(i / 2 for i in range(8))
_E16 = tuple(i / 4 for i in range(16))
_OFF = tuple(i + 0.5 for i in range(4))
#: Genre grooves (positions in beats of a 4-beat bar: k kick, s snare/clap, h closed hat, oh open
#: hat) and the tempi they are played at. The tempo a DJ tool shows for them is the one here
#: (drum and bass at 170-175, not 85; UK garage at 130-135, not 65); the half-time rock groove's
#: 75 is a feel (150 is a defensible reading).
GENRES: dict[str, tuple[dict[str, tuple[float, ...]], tuple[float, ...]]] = {
    "house: four on the floor, clap 2 & 4, open hat off-beats": (
        {"k": (0, 1, 2, 3), "s": (1, 3), "oh": _OFF}, (118.0, 124.0, 128.0)),
    "techno: four on the floor, sixteenth hats": ({"k": (0, 1, 2, 3), "h": _E16}, (130.0, 135.0, 140.0)),
    "drum and bass two-step": ({"k": (0, 2.5), "s": (1, 3), "h": _E8}, (170.0, 174.0)),
    "drum and bass two-step, sixteenth hats": ({"k": (0, 2.5), "s": (1, 3), "h": _E16}, (172.0,)),
    "dembow (reggaeton)": ({"k": (0, 1, 2, 3), "s": (0.75, 1.5, 2.75, 3.5), "h": _E8}, (90.0, 95.0, 100.0)),
    "UK garage two-step": ({"k": (0, 2.5), "s": (1, 3), "h": _E8}, (130.0, 134.0)),
    "funk: sixteenth kick syncopation": ({"k": (0, 0.75, 2.5), "s": (1, 3), "h": _E16}, (100.0, 110.0)),
    "boom bap": ({"k": (0, 0.75, 2.5), "s": (1, 3), "h": _E8}, (88.0, 92.0)),
    "breakbeat": ({"k": (0, 1.75, 2.5), "s": (1, 3, 3.75), "h": _E8}, (128.0, 135.0)),
    "half-time rock (snare on 3)": ({"k": (0, 2.5), "s": (2,), "h": _E8}, (75.0,)),
    # The off-beat carries more than the kick: the beat must stay on the kick (analysis v24).
    "trance: four on the floor, off-beat bass and open hats": (
        {"k": (0, 1, 2, 3), "b": _OFF, "oh": _OFF}, (132.0, 138.0)),
    "house: four on the floor, off-beat chord stabs and bass": (
        {"k": (0, 1, 2, 3), "st": _OFF, "b": _OFF}, (124.0, 128.0)),
}  # fmt: skip


def genre_groove(
    bpm: float, pattern: dict[str, tuple[float, ...]], *, swing: float = 0.5, bars: int = 16
) -> np.ndarray:
    """One genre groove (``GENRES``), its off-beat eighths moved to ``swing`` of the beat."""
    kit = _Kit(np.random.default_rng(1))
    c = _Canvas(bpm, bars)
    beat, hit = c.beat, c.hit
    sounds = {"k": kit.kick, "s": kit.snare, "h": kit.hat,
              "oh": np.convolve(kit.hat, np.ones(40) / 6.0)[:3000]}  # fmt: skip
    for bar in range(bars):
        t0 = bar * 4 * beat
        root = ROOTS[bar % 4]
        # an off-beat bass note and a chord stab (root, minor third, fifth two octaves up)
        sounds["b"] = _tone(root, 0.45 * beat, 0.3) * np.exp(
            -np.arange(int(0.45 * beat * SR)) / SR * 2.5
        )
        sounds["st"] = (
            _tone(4 * root, 0.3 * beat, 0.3)
            + _tone(4 * root * 1.19, 0.3 * beat, 0.3)
            + _tone(6 * root, 0.3 * beat, 0.3)
        )
        for name, positions in pattern.items():
            for p in positions:
                if swing != 0.5 and abs(p % 1 - 0.5) < 1e-9:
                    p = p - 0.5 + swing
                hit(t0 + p * beat, sounds[name], 0.8 if name == "h" else 1.0)
        if "b" not in pattern:
            hit(t0, _tone(root, 4 * beat, 0.25))
    return c.y.astype(np.float32)


def offbeat_groove(
    bpm: float, kick: float, stab: float, bass: bool, open_hats: bool, *, bars: int = 16
) -> np.ndarray:
    """Four on the floor (kick gain ``kick``) with off-beat chord stabs (gain ``stab``), an
    off-beat bass note and open hats: the layers between the kicks may outweigh them."""
    kit = _Kit(np.random.default_rng(0))
    c = _Canvas(bpm, bars)
    beat, hit = c.beat, c.hit
    open_hat = np.convolve(kit.hat, np.ones(40) / 6.0)[:3000]

    def tone(freqs: tuple[float, ...], dur: float, amp: float, decay: float) -> np.ndarray:
        t = np.arange(int(dur * SR)) / SR
        return amp * sum(np.sin(2 * np.pi * f * t) for f in freqs) * np.exp(-t * decay)

    for bar in range(bars):
        t0 = bar * 4 * beat
        r = 2 * ROOTS[bar % 4]
        for b in range(4):
            hit(t0 + b * beat, kit.kick, kick)
            off = t0 + (b + 0.5) * beat
            if stab:
                hit(off, tone((2 * r, 2.52 * r, 3 * r), 0.3 * beat, stab, 12.0))
            if bass:
                hit(off, tone((r / 2,), 0.45 * beat, 0.3, 4.0))
            if open_hats:
                hit(off, open_hat)
    return c.y.astype(np.float32)


def offbeats() -> tuple[int, int, list[str]]:
    """Each off-beat groove (:func:`offbeat_groove`): (beats on the kicks, total, misses)."""
    right, total, misses = 0, 0, []
    for bpm in (124.0, 128.0, 138.0):
        for kick in (1.0, 0.5, 0.3):
            for stab in (0.0, 0.15, 0.3):
                for bass in (False, True):
                    for hats in (False, True):
                        a = analyze_signal(offbeat_groove(bpm, kick, stab, bass, hats), sr=SR)
                        ok = abs(a.tempo / bpm - 1.0) < 0.04
                        beat_off = _grid_offsets(a, bpm)[0] if ok else 1.0
                        right += beat_off < 0.15
                        total += 1
                        if beat_off >= 0.15:
                            misses.append(f"{bpm:g} BPM, kick {kick:g}, stabs {stab:g}, bass "
                                          f"{bass}, open hats {hats}: read {a.tempo:.1f}, beats "
                                          f"{beat_off:.2f} of a beat off")  # fmt: skip
    return right, total, misses


def _grid_offsets(a: object, bpm: float) -> tuple[float, float]:
    """Median distance of the beats from the groove's beats (in beats) and of the bar lines
    from its bars (in bars), after the first two seconds."""
    beat = 60.0 / bpm
    b = np.asarray(a.beats)  # type: ignore[attr-defined]
    d = np.asarray(a.downbeats)  # type: ignore[attr-defined]
    b, d = b[b > 2.0], d[d > 2.0]
    beat_off = float(np.median(np.abs((b / beat + 0.5) % 1.0 - 0.5))) if len(b) else 1.0
    bar_off = float(np.median(np.abs((d / (4 * beat) + 0.5) % 1.0 - 0.5))) if len(d) else 1.0
    return beat_off, bar_off


def genres() -> tuple[int, int, int, list[str]]:
    """Each genre groove at its tempi, straight and swung: (right tempo, beats on the groove's
    beats, total, lines)."""
    right, on_beat, total, lines = 0, 0, 0, []
    for name, (pattern, tempi) in GENRES.items():
        for bpm in tempi:
            for swing in (0.5, 0.62):
                a = analyze_signal(genre_groove(bpm, pattern, swing=swing), sr=SR)
                est = a.tempo
                ok = abs(est / bpm - 1.0) < 0.04
                beat_off = _grid_offsets(a, bpm)[0] if ok else 1.0
                right += ok
                on_beat += beat_off < 0.15
                total += 1
                where = "" if not ok or beat_off < 0.15 else f", beats {beat_off:.2f} of a beat off"
                lines.append(f"{'  ' if ok and not where else '✗ '}{name}, {bpm:g} BPM, "
                             f"swing {swing:g}: read {est:.1f}{where}")  # fmt: skip
    return right, on_beat, total, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tempi", type=float, nargs="*", default=list(TEMPI))
    a = ap.parse_args(argv)
    right, wrong = 0, []
    on_beat, on_bar = 0, 0
    by_tempo: dict[float, list[int]] = {}
    for bpm in a.tempi:
        for kicks in KICKS:
            for hats in HATS:
                for bass in BASS:
                    for chords in (False, True):
                        a = analyze_signal(groove(bpm, kicks, hats, bass, chords), sr=SR)
                        est = a.tempo
                        ok = abs(est / bpm - 1.0) < 0.04
                        if ok:
                            beat_off, bar_off = _grid_offsets(a, bpm)
                            on_beat += beat_off < 0.15
                            on_bar += bar_off < 0.05
                            if bar_off >= 0.05:
                                wrong.append(f"{bpm:g} BPM, kick {kicks}, hats {hats}, bass {bass}, "
                                             f"chords {chords}: bar lines {bar_off:.2f} of a bar off")  # fmt: skip
                        right += ok
                        by_tempo.setdefault(bpm, [0, 0])[0] += ok
                        by_tempo[bpm][1] += 1
                        if not ok:
                            wrong.append(f"{bpm:g} BPM, kick {kicks}, hats {hats}, bass {bass}, "
                                         f"chords {chords}: read {est:.1f}")  # fmt: skip
    total = sum(n for _, n in by_tempo.values())
    print(f"{right}/{total} grooves read at their tempo (±4 %); of those, {on_beat} with the "
          f"beats on the drums' beats, {on_bar} with the bar lines on the bars")  # fmt: skip
    print("  by tempo: " + ", ".join(f"{b:g}: {r}/{n}" for b, (r, n) in by_tempo.items()))
    for w in wrong:
        print("  " + w)
    r, b, n, lines = genres()
    print(f"{r}/{n} genre grooves read at their tempo (±4 %), {b} of them with the beats on the "
          f"groove's beats")  # fmt: skip
    for line in lines:
        print("  " + line)
    r, n, misses = offbeats()
    print(f"{r}/{n} off-beat grooves (four on the floor under off-beat stabs, bass, open hats) "
          f"with the beats on the kicks")  # fmt: skip
    for m in misses:
        print("  ✗ " + m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
