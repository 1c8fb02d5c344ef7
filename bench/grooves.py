"""Tempo of the plain drum grooves of pop, rock and hip-hop, synthesized with known tempo.

A grid of grooves (numpy, no samples): kick patterns with the snare on 2 and 4, hats in eighths,
sixteenths, off-beats or none, a bass note a bar or in eighths, with or without chords on the
beats, at 96-140 BPM, 16 bars each. Prints how many are read at their tempo (±4 %) and lists
the others. Not a test set: the tests hold a few of these (``tests/analysis/test_backbeat.py``).

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


def groove(
    bpm: float, kicks: str, hats: str, bass: str, chords: bool, *, bars: int = 16, seed: int = 0
) -> np.ndarray:
    """One groove as float32 mono at :data:`SR`."""
    kit = _Kit(np.random.default_rng(seed))
    beat = 60.0 / bpm
    y = np.zeros(int((bars * 4 * beat + 1.0) * SR))

    def hit(at: float, sound: np.ndarray, gain: float = 1.0) -> None:
        i = int(round(at * SR))
        n = min(len(sound), len(y) - i)
        if n > 0:
            y[i : i + n] += gain * sound[:n]

    roots = (55.0, 41.2, 43.65, 49.0)
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
        r = roots[bar % 4]
        if bass == "bar":
            hit(t0, _tone(r, 4 * beat, 0.25))
        else:
            for e in range(8):
                hit(t0 + e * beat / 2, _tone(r, beat / 2, 0.2))
        if chords:
            for e in range(4):
                chord = sum(_tone(r * m, beat * 0.9, 0.04) for m in (4.0, 5.0, 6.0))
                hit(t0 + e * beat, np.asarray(chord))
    return y.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tempi", type=float, nargs="*", default=list(TEMPI))
    a = ap.parse_args(argv)
    right, wrong = 0, []
    by_tempo: dict[float, list[int]] = {}
    for bpm in a.tempi:
        for kicks in KICKS:
            for hats in HATS:
                for bass in BASS:
                    for chords in (False, True):
                        est = analyze_signal(groove(bpm, kicks, hats, bass, chords), sr=SR).tempo
                        ok = abs(est / bpm - 1.0) < 0.04
                        right += ok
                        by_tempo.setdefault(bpm, [0, 0])[0] += ok
                        by_tempo[bpm][1] += 1
                        if not ok:
                            wrong.append(f"{bpm:g} BPM, kick {kicks}, hats {hats}, bass {bass}, "
                                         f"chords {chords}: read {est:.1f}")  # fmt: skip
    total = sum(n for _, n in by_tempo.values())
    print(f"{right}/{total} grooves read at their tempo (±4 %)")
    print("  by tempo: " + ", ".join(f"{b:g}: {r}/{n}" for b, (r, n) in by_tempo.items()))
    for w in wrong:
        print("  " + w)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
