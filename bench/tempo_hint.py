"""What a tempo the user knows (``--bpm``) does to the beats: each piece analysed twice, as
is and with its reference tempo given, beat F (70 ms, beats after 5 s) against the reference.

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


def _run(job: tuple[str, str, float]) -> tuple[str, np.ndarray, np.ndarray, float, float]:
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.analysis.rhythm import GridHint
    from cratedig.audio import decode

    sid, path, bpm = job
    a = decode(path)
    plain = analyze_signal(a.samples, sr=a.sr, path=path, track_id="x")
    given = analyze_signal(a.samples, sr=a.sr, path=path, track_id="x", hint=GridHint(bpm=bpm))
    return sid, np.asarray(plain.beats), np.asarray(given.beats), plain.tempo, given.tempo


def pieces(which: str, split: str) -> list[tuple[str, str, float, list[float]]]:
    """(id, path, reference tempo, reference beats) of a set's split."""
    out = []
    if which == "real":
        for s in json.loads((CACHE / "realset" / "truth.json").read_text())["songs"]:
            if s["split"] != split or s.get("tempo_level_certain") not in (True, "True"):
                continue
            if s.get("beats") and 30.0 <= float(s["tempo"]) <= 300.0:
                path = str(CACHE / "realset" / s["path"])
                out.append((s["id"], path, float(s["tempo"]), list(s["beats"])))
    else:
        peers = json.loads((CACHE / "consensus" / "peers.json").read_text())
        for it in json.loads((CACHE / "consensus" / "items.json").read_text())["items"]:
            m, e = peers["madmom"].get(it["id"]), peers["essentia"].get(it["id"])
            if it["split"] != split or not m or not e or abs(m["tempo"] / e["tempo"] - 1) >= 0.04:
                continue
            if 30.0 <= m["tempo"] <= 300.0:
                path = str(CACHE / "consensus" / "songs" / it["file"])
                out.append((it["id"], path, float(m["tempo"]), list(m["beats"])))
    return out


def main(argv: list[str] | None = None) -> int:
    import mir_eval

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("real", "consensus"), default="real")
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    todo = pieces(args.set, args.split)
    ref = {sid: np.asarray(b, float) for sid, _, _, b in todo}
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as ex:
        for sid, b0, b1, t0, t1 in ex.map(_run, [(s, p, t) for s, p, t, _ in todo]):
            tb = ref[sid][ref[sid] >= 5.0]
            f0 = mir_eval.beat.f_measure(tb, b0[b0 >= 5.0])
            f1 = mir_eval.beat.f_measure(tb, b1[b1 >= 5.0])
            rows.append({"id": sid, "tempo": t0, "given_tempo": t1, "beat_f": f0, "given_f": f1})
            if abs(f1 - f0) > 0.05:
                print(f"  {sid[:44]:<44} {t0:6.1f} -> {t1:6.1f} BPM  beat F {f0:.2f} -> {f1:.2f}")
    f0 = float(np.mean([r["beat_f"] for r in rows]))
    f1 = float(np.mean([r["given_f"] for r in rows]))
    better = sum(r["given_f"] > r["beat_f"] + 0.05 for r in rows)
    worse = sum(r["given_f"] < r["beat_f"] - 0.05 for r in rows)
    print(
        f"{args.set} {args.split}, {len(rows)} pieces: beat F {f0:.3f} as analysed, {f1:.3f} "
        f"with the reference tempo given ({better} better, {worse} worse by more than 0.05)"
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"tempo_hint_{args.set}_{args.split}.json"
    summary = {"beat_f": f0, "given_f": f1, "better": better, "worse": worse}
    path.write_text(json.dumps({"summary": summary, "pieces": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
