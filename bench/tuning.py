"""Tuning on real music: how far apart real tracks are tuned, and what the render's correction buys.

Suggestions name a semitone shift against each track's own tuning reference; since render
version 2 the render also shifts the candidate by ``query tuning - candidate tuning`` cents
(``cratedig.theory.tuning_correction``, 10 cents and up). This bench measures, on the real-music
set (``bench/realset.py``; not the Rubber Band copies, whose tuning is their source's):

1. **Our estimate against librosa's** (``librosa.estimate_tuning``, an independent estimator):
   median and 90th percentile of the circular difference in cents, per split.
2. **How many pairs need it**: the share of pairs of pieces whose tunings (ours) differ by
   ``TUNING_MIN_CENTS`` or more, and by 25 cents or more.
3. **What the correction does**, judged by librosa: for pairs 10 cents or more apart, 20 s of
   the candidate are shifted with Rubber Band (``render.engine.stretch_shift``) by the
   correction, and the tuning gap to the query is measured by librosa before and after
   (median and 90th percentile of |gap|, cents).

Usage::

    .venv/bin/python bench/tuning.py --split dev --pairs 40
    .venv/bin/python bench/tuning.py --split heldout --pairs 40
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent / "out"
SR = 22050
EXCERPT_S = 20.0


def _gap(a: float, b: float) -> float:
    """Signed difference a - b of two tunings in cents, folded into [-50, 50)."""
    return float((a - b + 50.0) % 100.0 - 50.0)


def _librosa_cents(y: np.ndarray) -> float:
    import librosa

    return 100.0 * float(librosa.estimate_tuning(y=y.astype(np.float32), sr=SR))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "heldout"), default="dev")
    ap.add_argument("--pairs", type=int, default=40, help="pairs rendered for part 3")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import realset
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.audio.decode import decode
    from cratedig.render.engine import stretch_shift
    from cratedig.theory import TUNING_MIN_CENTS, tuning_correction

    items = [
        s
        for s in realset.load()["songs"]
        if s["split"] == args.split and s["kind"] != "copy" and Path(s["path"]).exists()
    ]
    t0 = time.perf_counter()
    rows = []
    for it in items:
        try:
            a = analyze_file(it["path"], use_tags=False)
            y = decode(it["path"], sr=SR).samples
        except Exception as exc:  # a bench reports, it does not stop
            print(f"  {it['id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        lo = int(min(5.0, max(0.0, len(y) / SR - EXCERPT_S)) * SR)
        excerpt = y[lo : lo + int(EXCERPT_S * SR)]
        rows.append(
            {
                "id": it["id"],
                "kind": it["kind"],
                "ours": float(a.tuning),
                "librosa": _librosa_cents(y),
                "excerpt": excerpt,
            }
        )
    agree = np.array([abs(_gap(r["ours"], r["librosa"])) for r in rows])
    ours = np.array([r["ours"] for r in rows])
    pairs = list(itertools.combinations(range(len(rows)), 2))
    gaps = np.array([abs(tuning_correction(ours[i], ours[j])) for i, j in pairs])
    raw = np.array([abs(ours[i] - ours[j]) for i, j in pairs])

    rng = np.random.default_rng(args.seed)
    apart = [p for p, g in zip(pairs, gaps, strict=True) if g > 0]
    pick = [apart[k] for k in rng.permutation(len(apart))[: args.pairs]]
    before, after = [], []
    for i, j in pick:
        q, c = rows[i], rows[j]
        cents = tuning_correction(q["ours"], c["ours"])
        shifted = stretch_shift(c["excerpt"], SR, ratio=1.0, semitones=cents / 100.0)
        q_l = _librosa_cents(q["excerpt"])
        before.append(abs(_gap(_librosa_cents(c["excerpt"]), q_l)))
        after.append(abs(_gap(_librosa_cents(shifted), q_l)))

    def stats(x: list[float] | np.ndarray) -> dict[str, float]:
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return {"n": 0}
        return {
            "n": int(x.size),
            "median": round(float(np.median(x)), 1),
            "p90": round(float(np.percentile(x, 90)), 1),
        }

    out = {
        "split": args.split,
        "pieces": len(rows),
        "tuning_ours_minus_librosa_abs_cents": stats(agree),
        "tuning_ours_abs_cents": stats(np.abs(ours)),
        "pairs": len(pairs),
        f"pairs_apart_{TUNING_MIN_CENTS:g}_cents_or_more": round(
            float(np.mean(raw >= TUNING_MIN_CENTS)), 3
        ),
        "pairs_apart_25_cents_or_more": round(float(np.mean(raw >= 25.0)), 3),
        "rendered_pairs_gap_by_librosa_before": stats(before),
        "rendered_pairs_gap_by_librosa_after": stats(after),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out, indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / f"tuning_{args.split}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
