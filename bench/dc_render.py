"""What a DC offset does to a render, before and after render version 3 (``bench/README.md``).

Tracker modules whose samples are biased carry a DC offset: among the real-music set's
modules (``bench/realset.py``), those whose mean sits at 1 % of full scale or more (the
``dc_offset`` quality flag's threshold). For each, a 4-bar phrase is layered over another
4-bar phrase of the same piece (the worst case: both layers carry the offset) with
:func:`cratedig.render.engine.render_pair`, on the module's beats (tracker rows), at
+2 semitones, once as render version 2 did (``dc_cutoff_hz=None``) and once as now. Per
render: the mix limiter's largest gain reduction, the mix's integrated loudness (at the same
-1 dBTP ceiling: louder = headroom the offset no longer takes), the mix's mean, and the thump
of the partner's entry (the largest sub-20 Hz excursion of the partner layer in its first
100 ms).

Usage::

    .venv/bin/python bench/dc_render.py            # every such module, both splits (~1 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfiltfilt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from cratedig.audio import decode  # noqa: E402
from cratedig.render.engine import loudness_db, render_pair  # noqa: E402

SR = 22050
OUT_DIR = HERE / "out"
DC_SHARE = 0.01  # cratedig.analysis.quality's dc_offset threshold (mean, full scale 1)


def thump(partner: np.ndarray, start: float) -> float:
    lo = butter(2, 20.0, fs=SR, output="sos")
    y = sosfiltfilt(lo, partner.astype(np.float64))
    a = int(start * SR)
    return float(np.abs(y[a : a + int(0.1 * SR)]).max())


def _cut(
    y: np.ndarray, beats: np.ndarray, downs: np.ndarray, i0: int, pad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Four bars from bar line ``i0`` (``pad`` seconds wider each side), beats relative."""
    s, e = downs[i0], downs[i0 + 4]
    lo, hi = int(round((s - pad) * SR)), int(round((e + pad) * SR))
    b = beats[(beats >= s - 1e-6) & (beats < e - 1e-6)]
    return y[max(lo, 0) : hi].astype(np.float32), b - (s - pad)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    sys.path.insert(0, str(HERE))
    import realset

    rows = []
    for it in realset.load()["songs"]:
        if it.get("kind") != "tracker":
            continue
        a = decode(it["path"], sr=SR)
        y = a.samples if a.samples.ndim == 1 else a.samples.mean(axis=0)
        dc = float(y.mean())
        if abs(dc) < DC_SHARE:
            continue
        beats = np.asarray(it["beats"], float)
        downs = np.asarray(it["downbeats"], float)
        downs = downs[downs > 5.0]
        if len(downs) < 14:
            continue

        q, qb = _cut(y, beats, downs, 0, 0.0)
        c, cb = _cut(y, beats, downs, 8, 0.25)
        res = {}
        for name, cutoff in (("v2", None), ("v3", 5.0)):
            out = render_pair(q, SR, qb, c, cb, semitones=2, piece_beats=it.get("meter") or 4,
                              dc_cutoff_hz=cutoff)  # fmt: skip
            res[name] = {
                "limiter_db": out.limiter_db,
                "lufs": loudness_db(out.mix, SR)[0],
                "mean": float(out.mix.mean()),
                "thump": thump(out.partner, out.coverage[0]),
            }
        rows.append({"id": it["id"], "split": it["split"], "dc": dc, **res})
        print(f"  {it['id']:<36} DC {dc:+.3f}  limiter {res['v2']['limiter_db']:6.2f} -> "
              f"{res['v3']['limiter_db']:6.2f} dB  mix {res['v2']['lufs']:6.1f} -> "
              f"{res['v3']['lufs']:6.1f} LUFS  thump {res['v2']['thump']:.3f} -> "
              f"{res['v3']['thump']:.3f}")  # fmt: skip
    print(f"\n{len(rows)} modules with a DC offset >= {DC_SHARE:g} of full scale (medians):")
    for key, unit in (("limiter_db", "dB"), ("lufs", "LUFS"), ("thump", "")):
        v2 = statistics.median(r["v2"][key] for r in rows)
        v3 = statistics.median(r["v3"][key] for r in rows)
        d = statistics.median(r["v3"][key] - r["v2"][key] for r in rows)
        print(f"  {key:<11} v2 {v2:8.3f}  v3 {v3:8.3f}  {unit}  (median change {d:+.3f})")
    print(f"  |mix mean|  v2 {statistics.median(abs(r['v2']['mean']) for r in rows):.4f}  "
          f"v3 {statistics.median(abs(r['v3']['mean']) for r in rows):.4f}")  # fmt: skip
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "dc_render.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {OUT_DIR / 'dc_render.json'}")


if __name__ == "__main__":
    main()
