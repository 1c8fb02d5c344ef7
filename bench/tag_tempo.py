"""What a BPM tag does to the grid (``rhythm.follow_tag_tempo``): each piece analysed with no
tags, then with a BPM tag written four ways, as a DJ's files carry them:

- ``right``: the reference tempo rounded to a whole BPM (most tag writers round);
- ``half`` / ``double``: half or twice it (the tag writer's octave, followed: the tag names a
  reading the audio allows, so tempo is scored against the tag's level);
- ``wrong``: 13 % off, related to nothing the audio allows (a wrong tag, another edit): not
  followed, so the figures must equal those with no tag.

Reported per variant: tempo Acc1 (4 %) against the level the tag asks for (the reference's for
``right`` and ``wrong``), beat F (70 ms, after 5 s) against the reference beats scaled to that
level where the reference is a whole-number ratio of it, and how many pieces followed their tag.

- ``--set real``: the real set's pieces whose tempo level is certain (``bench/realset.py``);
- ``--set consensus``: produced game music where madmom and Essentia agree on the tempo
  (``bench/consensus.py``), madmom's beats and tempo the reference (no truth: a peer).

Usage::

    .venv/bin/python bench/tag_tempo.py --set real --split dev
    .venv/bin/python bench/tag_tempo.py --set consensus --split heldout
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from tempo_hint import pieces  # noqa: E402

OUT_DIR = HERE / "out"
VARIANTS = {"none": None, "right": 1.0, "half": 0.5, "double": 2.0, "wrong": 1.13}


def _tag_of(variant: str, tempo: float) -> float | None:
    factor = VARIANTS[variant]
    return None if factor is None else float(round(tempo * factor))


def _run(job: tuple[str, str, float]) -> tuple[str, dict[str, Any]]:
    """id -> {variant: (beats, tempo, followed)}."""
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.audio import decode

    sid, path, tempo = job
    a = decode(path)
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        tag = _tag_of(variant, tempo)
        if tag is not None and not 30.0 <= tag <= 300.0:
            continue
        r = analyze_signal(
            a.samples, sr=a.sr, path=path, track_id="x", tags={"bpm": tag} if tag else None
        )
        used = bool(((r.estimates.get("tempo") or {}).get("tags") or {}).get("used"))
        out[variant] = (np.asarray(r.beats), float(r.tempo), used)
    return sid, out


def _level_beats(beats: np.ndarray, factor: float) -> list[np.ndarray]:
    """Reference beats at ``factor`` times their tempo: every other beat (both phases: either
    may be the half-time beat), or each beat halved; none where the level is not 1:2 or 2:1."""
    if factor == 1.0:
        return [beats]
    if factor == 0.5:
        return [beats[::2], beats[1::2]]
    if factor == 2.0:
        mids = (beats[:-1] + beats[1:]) / 2.0
        return [np.sort(np.r_[beats, mids])]
    return []


def main(argv: list[str] | None = None) -> int:
    import mir_eval

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("real", "consensus"), default="real")
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = pieces(args.set, args.split)
    ref = {sid: (tempo, np.asarray(b, float)) for sid, _, tempo, b, _, _ in todo}

    def f(refs: np.ndarray, est: np.ndarray) -> float:
        return float(mir_eval.beat.f_measure(refs[refs >= 5.0], est[est >= 5.0]))

    rows: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(args.workers) as ex:
        for sid, runs in ex.map(_run, [(s, path, t) for s, path, t, *_ in todo]):
            tempo, beats = ref[sid]
            row: dict[str, Any] = {}
            for variant, (est_beats, est_tempo, used) in runs.items():
                factor = VARIANTS[variant] or 1.0
                level = 1.0 if variant == "wrong" else factor
                target = tempo * level
                lb = _level_beats(beats, level)
                row[variant] = {
                    "tempo": round(est_tempo, 2),
                    "acc1": abs(est_tempo / target - 1.0) <= 0.04,
                    "beat_f": max(f(x, est_beats) for x in lb) if lb else None,
                    "followed": used,
                }
            rows[sid] = row
            none, right = row["none"], row.get("right")
            if right and (
                none["acc1"] != right["acc1"] or abs(none["beat_f"] - right["beat_f"]) > 0.05
            ):
                print(f"  {sid[:44]:<44} {none['tempo']:6.1f} -> {right['tempo']:6.1f} BPM"
                      f" (ref {tempo:.1f}) beat F {none['beat_f']:.2f} -> {right['beat_f']:.2f}")  # fmt: skip
    summary: dict[str, Any] = {}
    print(f"{args.set} {args.split}, {len(rows)} pieces")
    print(f"  {'tag':<8}{'pieces':>7}{'Acc1':>7}{'beat F':>8}{'followed':>10}")
    for variant in VARIANTS:
        have = [r[variant] for r in rows.values() if variant in r]
        fs = [x["beat_f"] for x in have if x["beat_f"] is not None]
        s = {
            "pieces": len(have),
            "acc1": float(np.mean([x["acc1"] for x in have])) if have else None,
            "beat_f": float(np.mean(fs)) if fs else None,
            "followed": int(sum(x["followed"] for x in have)),
        }
        summary[variant] = s
        print(
            f"  {variant:<8}{s['pieces']:>7}{s['acc1']:>7.3f}{s['beat_f']:>8.3f}{s['followed']:>10}"
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"tag_tempo_{args.set}_{args.split}.json"
    path.write_text(json.dumps({"summary": summary, "pieces": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
