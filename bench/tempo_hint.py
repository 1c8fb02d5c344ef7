"""What a tempo the user knows (``--bpm``) does to the beats, and a bar line too (``regrid
--bpm --downbeat --beats-per-bar``) to the bar lines: each piece analysed three times (as is;
with its reference tempo given; with that tempo, its first reference bar line after 5 s and
its beats per bar where 3 or 4), beat F and downbeat F (70 ms, after 5 s) against the
reference.

- ``--set real``: the real set's pieces whose tempo level is certain (``bench/realset.py``),
  their exact beats the reference;
- ``--set consensus``: produced game music where madmom and Essentia agree on the tempo
  (``bench/consensus.py``), madmom's beats and tempo the reference (no truth: a peer).

A piece read at the right tempo already keeps its grid (``rhythm.HINT_AGREES``); the others
are fitted at the given tempo, the phase and bar lines found as usual. Pieces whose reference
lies outside 30-300 BPM are left out (``--bpm`` refuses them).

Usage::

    .venv/bin/python bench/tempo_hint.py --set real --split dev
    .venv/bin/python bench/tempo_hint.py --set consensus --split heldout
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
sys.path.insert(0, str(HERE.parent / "src"))

CACHE = HERE / ".cache"
OUT_DIR = HERE / "out"


def _run(job: tuple[str, str, float, float | None, int | None]) -> tuple[str, list[Any]]:
    """(id, [(beats, downbeats, tempo) as is, with the tempo, with tempo and bars])."""
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.analysis.rhythm import GridHint
    from cratedig.audio import decode

    sid, path, bpm, bar, meter = job
    a = decode(path)
    hints = [None, GridHint(bpm=bpm)]
    if bar is not None:
        hints.append(GridHint(bpm=bpm, downbeat=bar, beats_per_bar=meter))
    out = []
    for h in hints:
        r = analyze_signal(a.samples, sr=a.sr, path=path, track_id="x", hint=h)
        out.append((np.asarray(r.beats), np.asarray(r.downbeats), r.tempo))
    return sid, out


Piece = tuple[str, str, float, list[float], list[float], int | None]


def pieces(which: str, split: str) -> list[Piece]:
    """(id, path, reference tempo, beats, downbeats, beats per bar) of a set's split; no
    downbeats where the reference has none or they are not certain."""
    out: list[Piece] = []
    if which == "real":
        for s in json.loads((CACHE / "realset" / "truth.json").read_text())["songs"]:
            if s["split"] != split or s.get("tempo_level_certain") not in (True, "True"):
                continue
            if s.get("beats") and 30.0 <= float(s["tempo"]) <= 300.0:
                path = str(CACHE / "realset" / s["path"])
                sure = s.get("downbeats_certain") in (True, "True") and s.get("downbeats")
                meter = int(s["meter"]) if str(s.get("meter") or "").isdigit() else None
                out.append((s["id"], path, float(s["tempo"]), list(s["beats"]),
                            list(s["downbeats"]) if sure else [],
                            meter if meter in (3, 4) else None))  # fmt: skip
    else:
        peers = json.loads((CACHE / "consensus" / "peers.json").read_text())
        for it in json.loads((CACHE / "consensus" / "items.json").read_text())["items"]:
            m, e = peers["madmom"].get(it["id"]), peers["essentia"].get(it["id"])
            if it["split"] != split or not m or not e or abs(m["tempo"] / e["tempo"] - 1) >= 0.04:
                continue
            if 30.0 <= m["tempo"] <= 300.0:
                path = str(CACHE / "consensus" / "songs" / it["file"])
                bars = list(m.get("downbeats") or [])
                meter = None
                if len(bars) >= 3:
                    per = np.diff(bars) / (60.0 / m["tempo"])
                    guess = int(round(float(np.median(per))))
                    meter = guess if guess in (3, 4) else None
                out.append((it["id"], path, float(m["tempo"]), list(m["beats"]), bars, meter))
    return out


def main(argv: list[str] | None = None) -> int:
    import mir_eval

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("real", "consensus"), default="real")
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = pieces(args.set, args.split)
    ref = {sid: (np.asarray(b, float), np.asarray(d, float)) for sid, _, _, b, d, _ in todo}
    jobs = []
    for sid, path, tempo, _, bars, meter in todo:
        after = [t for t in bars if t >= 5.0]
        jobs.append((sid, path, tempo, after[0] if after else None, meter))
    rows: list[dict[str, Any]] = []

    def f(refs: np.ndarray, est: np.ndarray) -> float:
        return float(mir_eval.beat.f_measure(refs[refs >= 5.0], est[est >= 5.0]))

    with ProcessPoolExecutor(args.workers) as ex:
        for sid, runs in ex.map(_run, jobs):
            tb, td = ref[sid]
            (b0, d0, t0), (b1, d1, t1) = runs[0], runs[1]
            r: dict[str, Any] = {"id": sid, "tempo": t0, "given_tempo": t1,
                                 "beat_f": f(tb, b0), "given_f": f(tb, b1)}  # fmt: skip
            if len(runs) > 2:
                b2, d2, _ = runs[2]
                r.update(downbeat_f=f(td, d0), given_downbeat_f=f(td, d1),
                         bars_f=f(tb, b2), bars_downbeat_f=f(td, d2))  # fmt: skip
            rows.append(r)
            if abs(r["given_f"] - r["beat_f"]) > 0.05:
                print(f"  {sid[:44]:<44} {t0:6.1f} -> {t1:6.1f} BPM  beat F "
                      f"{r['beat_f']:.2f} -> {r['given_f']:.2f}")  # fmt: skip
    f0 = float(np.mean([r["beat_f"] for r in rows]))
    f1 = float(np.mean([r["given_f"] for r in rows]))
    better = sum(r["given_f"] > r["beat_f"] + 0.05 for r in rows)
    worse = sum(r["given_f"] < r["beat_f"] - 0.05 for r in rows)
    print(
        f"{args.set} {args.split}, {len(rows)} pieces: beat F {f0:.3f} as analysed, {f1:.3f} "
        f"with the reference tempo given ({better} better, {worse} worse by more than 0.05)"
    )
    summary: dict[str, Any] = {"beat_f": f0, "given_f": f1, "better": better, "worse": worse}
    barred = [r for r in rows if "bars_downbeat_f" in r]
    if barred:
        m = {k: float(np.mean([r[k] for r in barred])) for k in
             ("beat_f", "given_f", "bars_f", "downbeat_f", "given_downbeat_f", "bars_downbeat_f")}  # fmt: skip
        wrong = [r for r in barred if r["given_downbeat_f"] < 0.5]
        fixed = sum(r["bars_downbeat_f"] >= 0.9 for r in wrong)
        print(
            f"  {len(barred)} pieces with reference bar lines: downbeat F {m['downbeat_f']:.3f} "
            f"as analysed, {m['given_downbeat_f']:.3f} with the tempo, "
            f"{m['bars_downbeat_f']:.3f} with the tempo and one bar line (beat F "
            f"{m['beat_f']:.3f} / {m['given_f']:.3f} / {m['bars_f']:.3f}); of the "
            f"{len(wrong)} whose bar lines are wrong with the tempo given (downbeat F < 0.5), "
            f"{fixed} are right (>= 0.9) with one bar line"
        )
        summary.update(bars_pieces=len(barred), **{f"bars_{k}": v for k, v in m.items()},
                       bars_wrong=len(wrong), bars_fixed=fixed)  # fmt: skip
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"tempo_hint_{args.set}_{args.split}.json"
    path.write_text(json.dumps({"summary": summary, "pieces": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
