"""What a DJ's BPM range does (``rhythm.fold_into_range``): each piece analysed with no range,
then in the ranges DJ programs offer: tempo Acc1 (4 %) against the reference's level, and
against the reference's octave inside the range (what a DJ who set that range wants to see).

A range is a taste, not a truth: it helps where the reference counts at the range's level and
costs where it does not. This bench says how often the reference's level (the notated beat on
the real set; madmom and Essentia agreeing on the consensus set) lies in each range, and how
often the fold brings our reading to it or away from it.

- ``--set real``: the real set's pieces whose tempo level is certain (``bench/realset.py``);
- ``--set consensus``: produced game music where madmom and Essentia agree on the tempo
  (``bench/consensus.py``), their tempo the reference (a peer, not a truth).

Usage::

    .venv/bin/python bench/bpm_range.py --set consensus --split dev
    .venv/bin/python bench/bpm_range.py --set real --split heldout
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from tempo_hint import pieces  # noqa: E402

OUT_DIR = HERE / "out"
#: No range, then the ranges of rekordbox's analysis preferences (and Mixxx's default 70-140).
RANGES: dict[str, tuple[float, float] | None] = {
    "none": None,
    "58-115": (58.0, 115.0),
    "70-140": (70.0, 140.0),
    "78-155": (78.0, 155.0),
    "88-175": (88.0, 175.0),
    "98-195": (98.0, 195.0),
}


def _run(job: tuple[str, str]) -> tuple[str, dict[str, float]]:
    """id -> {range name: tempo}; a range the audio-only tempo already lies in is not run
    again (the fold leaves such a reading as it is)."""
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.analysis.rhythm import in_bpm_range
    from cratedig.audio import decode

    sid, path = job
    a = decode(path)
    own = analyze_signal(a.samples, sr=a.sr).tempo
    out = {"none": float(own)}
    for name, rng in RANGES.items():
        if rng is None:
            continue
        if in_bpm_range(own, *rng):
            out[name] = float(own)
        else:
            out[name] = float(analyze_signal(a.samples, sr=a.sr, bpm_range=rng).tempo)
    return sid, out


def main(argv: list[str] | None = None) -> int:
    from cratedig.analysis.rhythm import in_bpm_range

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("real", "consensus"), default="consensus")
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = pieces(args.set, args.split)
    ref = {sid: tempo for sid, _, tempo, *_ in todo}
    with ProcessPoolExecutor(args.workers) as ex:
        got = dict(ex.map(_run, [(sid, path) for sid, path, *_ in todo]))

    def right(t: float, r: float) -> bool:
        return abs(t / r - 1.0) <= 0.04

    def folded(r: float, rng: tuple[float, float] | None) -> float:
        """The reference at its octave in the range (as it is where none lies in it)."""
        if rng is None or in_bpm_range(r, *rng):
            return r
        inside = [r * 2.0**k for k in (-1, 1, -2, 2) if in_bpm_range(r * 2.0**k, *rng)]
        return inside[0] if inside else r

    rows: dict[str, Any] = {}
    print(f"{args.set} {args.split}: {len(todo)} pieces (reference level: "
          f"{'notated, certain' if args.set == 'real' else 'madmom and Essentia agreeing'})")  # fmt: skip
    print(f"{'range':>8} {'Acc1':>6} {'Acc1 folded':>12} {'ref in range':>13} {'moved':>6} "
          f"{'to ref':>7} {'off ref':>8}")  # fmt: skip
    for name, rng in RANGES.items():
        acc = sum(right(got[s][name], ref[s]) for s in ref) / max(len(ref), 1)
        acc_f = sum(right(got[s][name], folded(ref[s], rng)) for s in ref) / max(len(ref), 1)
        inside = sum(rng is None or in_bpm_range(ref[s], *rng) for s in ref)
        moved = [s for s in ref if abs(got[s][name] / got[s]["none"] - 1.0) > 0.01]
        gained = sum(
            right(got[s][name], ref[s]) and not right(got[s]["none"], ref[s]) for s in moved
        )
        lost = sum(right(got[s]["none"], ref[s]) and not right(got[s][name], ref[s]) for s in moved)
        rows[name] = {"acc1": acc, "acc1_reference_folded": acc_f,
                      "reference_in_range": inside, "moved": len(moved),
                      "to_reference": gained, "off_reference": lost}  # fmt: skip
        print(f"{name:>8} {acc:6.3f} {acc_f:12.3f} {inside:>13} {len(moved):>6} {gained:>7} "
              f"{lost:>8}")  # fmt: skip
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"bpm_range_{args.set}_{args.split}.json"
    out.write_text(json.dumps({"summary": rows, "tempi": got, "reference": ref}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
