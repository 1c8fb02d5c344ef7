"""How the track key's cues are weighed, swept on development groups of three kinds of music.

The track key of :func:`cratedig.analysis.pipeline.analyze_signal` adds, per key (issue 9):
the profile correlation of the track's chroma plus its bass share (``BASS_WEIGHT``), the bass on
hypermetric downbeats (``CADENCE_WEIGHT``), the opening bar's own key scores
(``OPENING_WEIGHT``; the opening adds the key network's log-probabilities times
``OPENING_NET_WEIGHT``) and the key network's floored log-probabilities (``NET_WEIGHT``,
``LOGP_FLOOR``). This script records those inputs once per piece (the pipeline's own calls,
intercepted; every piece's key is recomputed from them and must equal the pipeline's, which
the script checks), then scores a grid of weights by MIREX:

- ``consensus_dev``: produced game music, the key where madmom and Essentia agree
  (``bench/consensus.py``; a peers' label, not a truth: both lean minor, see bench/README.md);
- ``real_dev``: the real set's keyed dev pieces, and their Rubber Band copies
  (``bench/realset.py``);
- ``seed7``: the FluidSynth dev songs (``bench/truthset.py``).

Held-out groups are reported at the shipped weights only (``--split heldout``): no sweep.

Usage::

    .venv/bin/python bench/key_weights.py                  # dev groups, ~1.5 min + the sweep
    .venv/bin/python bench/key_weights.py --split heldout  # the shipped weights, held out
"""

from __future__ import annotations

import argparse
import glob
import itertools
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
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
#: The grid: NET_WEIGHT, OPENING_WEIGHT, OPENING_NET_WEIGHT, CADENCE_WEIGHT, BASS_WEIGHT.
GRID = (
    (0.0, 0.05, 0.1, 0.2, 0.3),
    (0.2, 0.35, 0.5),
    (0.0, 0.1),
    (0.35, 0.7, 1.0),
    (0.15, 0.25, 0.4),
)
SHIPPED = (0.2, 0.35, 0.1, 0.7, 0.25)


def key_index(tonic: int | str, mode: str) -> int:
    if isinstance(tonic, str):
        tonic = NAMES.index(FLATS.get(tonic, tonic))
    return int(tonic) + (12 if mode == "minor" else 0)


def mirex(ref: int, est: int) -> float:
    """MIREX key score of ``est`` against ``ref`` (indices: majors 0-11, minors 12-23)."""
    if ref == est:
        return 1.0
    rt, rm, et, em = ref % 12, ref // 12, est % 12, est // 12
    if rm == em and (et - rt) % 12 == 7:
        return 0.5
    if rm != em and (et - rt) % 12 == (9 if rm == 0 else 3):
        return 0.3
    return 0.2 if rt == et else 0.0


def items(group: str, split: str) -> list[tuple[str, str, int, str]]:
    """(id, path, true key index, 'song' or 'copy') of a group's keyed pieces."""
    out = []
    if group == "consensus":
        peers = json.loads((CACHE / "consensus" / "peers.json").read_text())
        for it in json.loads((CACHE / "consensus" / "items.json").read_text())["items"]:
            m, e = peers["madmom"].get(it["id"]), peers["essentia"].get(it["id"])
            if it["split"] != split or not m or not e or m.get("tonic") is None:
                continue
            if (m["tonic"], m["mode"]) == (e["tonic"], e["mode"]):
                path = str(CACHE / "consensus" / "songs" / it["file"])
                out.append((it["id"], path, key_index(m["tonic"], m["mode"]), "song"))
    elif group == "real":
        truth = json.loads((CACHE / "realset" / "truth.json").read_text())
        for kind, rows in (("song", truth["songs"]), ("copy", truth["copies"])):
            for s in rows:
                if s["split"] == split and s.get("key"):
                    path = str(CACHE / "realset" / s["path"])
                    out.append((s["id"], path, key_index(s["key"], s["mode"]), kind))
    else:
        seed = "7" if split == "dev" else "2026"
        d = Path(sorted(glob.glob(str(CACHE / "truthset" / f"*-seed{seed}-*/")))[0])
        for s in json.loads((d / "truth.json").read_text())["songs"]:
            out.append((s["id"], str(d / s["path"]), key_index(s["key"], s["mode"]), "song"))
    return out


def record(job: tuple[str, str, int, str]) -> dict[str, Any]:
    """The key stage's inputs for one piece, from the pipeline's own calls."""
    from cratedig.analysis import keynet, pipeline
    from cratedig.audio import decode

    rec: dict[str, Any] = {"calls": []}
    estimate_key, prior_of, key_prior = pipeline.estimate_key, pipeline.prior_of, pipeline.key_prior

    def est(chroma: np.ndarray, bass: np.ndarray | None = None, **kw: Any) -> Any:
        if len(rec["calls"]) < 2:  # the opening, then the track; the segments' come after
            cad = kw.get("cadence_chroma")
            rec["calls"].append(
                (
                    np.asarray(chroma, np.float64).reshape(-1, 12).sum(0),
                    np.asarray(bass, np.float64).reshape(-1, 12).sum(0),
                    None if cad is None else np.asarray(cad, np.float64).reshape(-1, 12).sum(0),
                )
            )
        return estimate_key(chroma, bass, **kw)

    def kp(tonal_mag: np.ndarray, *, tuning: float = 0.0, **kw: Any) -> np.ndarray:
        x = keynet.pitch_frames(tonal_mag, tuning=tuning)
        rec.setdefault("opening_logits", keynet.key_logits(x).astype(np.float64))
        return key_prior(tonal_mag, tuning=tuning, **kw)

    def po(logits: np.ndarray, **kw: Any) -> np.ndarray:
        rec.setdefault("track_logits", np.asarray(logits, np.float64))
        return prior_of(logits, **kw)

    pipeline.estimate_key, pipeline.prior_of, pipeline.key_prior = est, po, kp
    sid, path, ref, kind = job
    try:
        audio = decode(path)
        a = pipeline.analyze_signal(audio.samples, sr=audio.sr, path=path, track_id="x")
    finally:
        pipeline.estimate_key, pipeline.prior_of, pipeline.key_prior = (
            estimate_key, prior_of, key_prior
        )  # fmt: skip
    (oc, ob, _), (c, b, cad) = rec["calls"]
    return {
        "id": sid, "ref": ref, "kind": kind, "shipped": key_index(a.key.tonic, a.key.mode),
        "oc": oc, "ob": ob, "c": c, "b": b, "cad": cad,
        "ol": rec["opening_logits"], "tl": rec["track_logits"],
    }  # fmt: skip


def combine(r: dict[str, Any], weights: tuple[float, ...]) -> int:
    """The track key of recorded inputs ``r`` under ``weights`` (:data:`GRID`'s order)."""
    from cratedig.analysis.keynet import LOGP_FLOOR, log_softmax
    from cratedig.analysis.tonal import estimate_key

    nw, ow, onw, cw, bw = weights
    o_prior = onw * log_softmax(r["ol"]) if np.any(r["ol"]) else None
    opening = estimate_key(r["oc"], r["ob"], cadence_weight=0.0, bass_weight=bw, prior=o_prior)
    t_prior = nw * np.maximum(log_softmax(r["tl"]), LOGP_FLOOR) if np.any(r["tl"]) else 0.0
    k = estimate_key(
        r["c"], r["b"], cadence_chroma=r["cad"], cadence_weight=cw, bass_weight=bw,
        prior=ow * opening.scores + t_prior,
    )  # fmt: skip
    return key_index(k.key.tonic, k.key.mode)


def scores(data: dict[str, list[dict[str, Any]]], weights: tuple[float, ...]) -> dict[str, float]:
    out = {}
    for group, rows in data.items():
        for kind in ("song", "copy"):
            v = [mirex(r["ref"], combine(r, weights)) for r in rows if r["kind"] == kind]
            if v:
                out[f"{group} {'copies' if kind == 'copy' else 'songs'} ({len(v)})"] = float(
                    np.mean(v)
                )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--top", type=int, default=10, help="grid points to print")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    data: dict[str, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(args.workers) as ex:
        for group in ("consensus", "real", "seed"):
            data[group] = list(ex.map(record, items(group, args.split)))
    wrong = [r["id"] for rows in data.values() for r in rows if combine(r, SHIPPED) != r["shipped"]]
    if wrong:
        raise SystemExit(f"the recorded inputs do not reproduce the pipeline's key: {wrong}")
    shipped = scores(data, SHIPPED)
    print(f"{args.split}, shipped weights {SHIPPED}:")
    print("  " + "; ".join(f"{k} {v:.3f}" for k, v in shipped.items()))
    result: dict[str, Any] = {"split": args.split, "shipped": SHIPPED, "shipped_scores": shipped}
    alone = {
        "profile and bass alone": scores(data, (0.0, 0.0, 0.0, 0.0, SHIPPED[4])),
        "network alone": {
            name: float(np.mean([mirex(r["ref"], int(np.argmax(r["tl"]))) for r in rows]))
            for name, rows in (
                (f"{g} {k}", [r for r in data[g] if r["kind"] == k])
                for g in data
                for k in ("song", "copy")
            )
            if rows
        },
    }
    for name, s in alone.items():
        print(f"  {name}: " + "; ".join(f"{k} {v:.3f}" for k, v in s.items()))
    result["alone"] = alone
    if args.split == "dev":
        rows = [(w, scores(data, w)) for w in itertools.product(*GRID)]
        rows.sort(key=lambda r: -sum(r[1].values()))
        print(f"best of {len(rows)} grid points by the sum over the groups (shipped: "
              f"{sum(shipped.values()):.3f}):")  # fmt: skip
        for w, s in rows[: args.top]:
            print(
                f"  {w}: "
                + "; ".join(f"{v:.3f}" for v in s.values())
                + f"; sum {sum(s.values()):.3f}"
            )
        result["grid"] = [{"weights": w, "scores": s} for w, s in rows]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"key_weights_{args.split}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
