"""Loops as producers have them (``rhythm.fit_loop``): short files cut on bar lines, a whole
number of bars long, sounding end to end.

Each loop is cut sample-exactly from a numpy-synthesized song (``cratedig.synth``: drums,
bass, chords, lead; seeds from 5200, which no test uses), ``--bars`` bars long from bar 2 on
(so that notes of the bar before ring into its start, as in a loop cut from a track), over
``--tempi`` in 4/4 and some in 3/4. Each is analysed twice in one run, with the loop fit off
(``LOOP_MAX_S = 0``: the analysis before it) and on. Reported for both:

- tempo exact (within 0.1 %: a loop's tempo must be sample-true to repeat without drift), Acc1
  (4 %) and Acc2 (octaves allowed);
- bar 1 at the start (the first downbeat within 30 ms of 0) and downbeat F (70 ms);
- beat F (70 ms, at the estimate's level against the truth's where they are the same level);
- files read as loops.

Usage::

    .venv/bin/python bench/loops.py                      # 96 loops, about a minute on 2 cores
    .venv/bin/python bench/loops.py --seeds 5300 5301    # other loops
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

OUT = HERE / "out" / "loops.json"
SR = 22050


def one(job: tuple[float, int, int, int]) -> dict[str, Any]:
    import mir_eval

    import cratedig.analysis.rhythm as rhythm
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key, mirex_key_score

    tempo, bars, meter, seed = job
    keys = ["A minor", "C major", "F# minor", "Eb major"]
    song = synthesize_song(
        tempo=tempo, key=Key.parse(keys[seed % 4]), meter=meter, bars=bars + 3, sr=SR, seed=seed
    )
    bar = meter * 60.0 / tempo
    i0, i1 = int(round(1 * bar * SR)), int(round((1 + bars) * bar * SR))
    y = song.audio[i0:i1]
    dur = len(y) / SR
    beats = np.arange(bars * meter) * 60.0 / tempo
    downbeats = beats[::meter]
    out: dict[str, Any] = {"tempo": tempo, "bars": bars, "meter": meter, "seed": seed}
    for name, limit in (("before", 0.0), ("after", rhythm.LOOP_MAX_S)):
        saved = rhythm.LOOP_MAX_S
        rhythm.LOOP_MAX_S = limit
        try:
            a = analyze_signal(y, sr=SR, track_id="x")
        finally:
            rhythm.LOOP_MAX_S = saved
        est_b, est_d = np.asarray(a.beats), np.asarray(a.downbeats)
        ratio = a.tempo / tempo
        out[name] = {
            "tempo": round(float(a.tempo), 3),
            "exact": abs(ratio - 1.0) <= 0.001,
            "acc1": abs(ratio - 1.0) <= 0.04,
            "acc2": any(abs(ratio / m - 1.0) <= 0.04 for m in (0.5, 1.0, 2.0, 1 / 3, 3.0)),
            "bar1_at_start": bool(len(est_d) and abs(est_d[0]) <= 0.03),
            # mir_eval drops nothing here: the loop is short, every beat counts
            "downbeat_f": float(mir_eval.beat.f_measure(downbeats, est_d, 0.07))
            if len(est_d)
            else 0.0,
            "beat_f": float(mir_eval.beat.f_measure(beats, est_b, 0.07)) if len(est_b) else 0.0,
            "loop": bool((a.estimates.get("grid") or {}).get("loop")),
            "seconds": round(dur, 3),
            # the song's key (its loop may dwell on other chords); the phrases' keys are what
            # the matcher and the page use
            "key_track": mirex_key_score(song.key, a.key),
            "key_phrase": float(np.mean([mirex_key_score(song.key, g.key) for g in a.segments]))
            if a.segments
            else 0.0,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tempi", type=float, nargs="+", default=[84, 96, 110, 124, 128, 140, 150, 174])
    p.add_argument("--bars", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seeds", type=int, nargs="+", default=[5200, 5201])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    jobs = [(t, b, 4, s) for t, b, s in itertools.product(args.tempi, args.bars, args.seeds)]
    # and some waltz loops (3/4)
    jobs += [
        (t, b, 3, s) for t, b, s in itertools.product(args.tempi[::2], args.bars, args.seeds[:1])
    ]
    with ProcessPoolExecutor(args.workers) as ex:
        rows = list(ex.map(one, jobs))
    summary: dict[str, Any] = {}
    print(f"{len(rows)} loops ({sum(r['meter'] == 3 for r in rows)} in 3/4)")
    print(
        f"  {'':8}{'exact':>7}{'Acc1':>7}{'Acc2':>7}{'bar 1 at 0':>12}{'downbeat F':>12}{'beat F':>8}{'loops':>7}"
    )
    for name in ("before", "after"):
        s = {k: float(np.mean([r[name][k] for r in rows])) for k in
             ("exact", "acc1", "acc2", "bar1_at_start", "downbeat_f", "beat_f", "loop")}  # fmt: skip
        summary[name] = s
        print(f"  {name:<8}{s['exact']:>7.3f}{s['acc1']:>7.3f}{s['acc2']:>7.3f}{s['bar1_at_start']:>12.3f}"
              f"{s['downbeat_f']:>12.3f}{s['beat_f']:>8.3f}{s['loop']:>7.3f}")  # fmt: skip
    for bars in args.bars:
        sub = [r for r in rows if r["bars"] == bars]
        print(f"  {bars} bar(s): exact {np.mean([r['before']['exact'] for r in sub]):.2f} -> "
              f"{np.mean([r['after']['exact'] for r in sub]):.2f}, bar 1 at 0 "
              f"{np.mean([r['before']['bar1_at_start'] for r in sub]):.2f} -> "
              f"{np.mean([r['after']['bar1_at_start'] for r in sub]):.2f}")  # fmt: skip
    after = [r["after"] for r in rows if r["after"]["loop"]]
    print(f"  keys of the {len(after)} files read as loops (MIREX against the song's key): "
          f"track {np.mean([r['key_track'] for r in after]):.3f}, its phrases "
          f"{np.mean([r['key_phrase'] for r in after]):.3f}")  # fmt: skip
    worse = [r for r in rows if r["after"]["acc1"] < r["before"]["acc1"]]
    for r in worse:
        print(
            f"  worse: {r['tempo']} BPM {r['bars']} bars {r['meter']}/4 seed {r['seed']}: "
            f"{r['before']['tempo']} -> {r['after']['tempo']}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "loops": rows}, indent=1))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
