"""Fit the tempo-level ranker of ``bench/tempolevel.py`` (issue 9; rejected by the held-out half).

Training items: ``bench/temposet.py`` (music21 scores by composers realset does not use, at
drawn tempi; the keyset's synthesized songs) and the real-music set's **dev** half (songs and
their Rubber Band copies with a steady tempo; never the held-out half). Each item is analysed
by the real pipeline, and the candidates' features at its fitted tempo (with the rules'
confidence and runner-up) are recorded (cached in ``bench/.cache/temposet/features.json``). A candidate is
right when within 4 % of the truth's tempo; items with no right candidate are left out.

The model: a conditional logit (softmax over one item's candidates, L2 penalty, standardised
features), fitted with L-BFGS. ``--eval`` reports leave-one-piece-out on the dev half (a piece
and its copies out together, the temposet always in): tempo Acc1 on level-certain pieces, Acc1
at the stated level, Acc2, rules vs model.

Usage::

    .venv/bin/python bench/temposet.py
    .venv/bin/python bench/fit_tempo_level.py --eval
    .venv/bin/python bench/fit_tempo_level.py --out bench/.cache/temposet/tempolevel.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

TS = HERE / ".cache" / "temposet"
REAL = HERE / ".cache" / "realset"
FEATURES = TS / "features.json"
TOL = 0.04


def _capture(job: tuple[str, str]) -> dict[str, Any] | None:
    """Analyse one file (``kind`` "npy": temposet int16 at 11025 Hz) with the ranker off and
    return the candidates the pipeline would have handed it."""
    kind, path = job
    import tempolevel
    from cratedig.analysis import pipeline, rhythm

    got: dict[str, Any] = {}
    track_beats = rhythm.track_beats

    def capture(fe, *, harmony, chroma=None):
        grid = track_beats(fe, harmony=harmony, chroma=chroma)
        ev = tempolevel.evidence_of(fe, harmony, chroma)
        rows = tempolevel.candidate_features(
            ev, grid.tempo, confidence=grid.tempo_confidence, alternative=grid.tempo_alternative
        )
        got["rows"] = [[r, c, f] for r, c, f in rows]
        got["rule"] = grid.tempo
        got["family_conf"] = grid.tempo_confidence
        return grid

    pipeline.track_beats = capture
    try:
        if kind == "npy":
            y = np.load(path).astype(np.float32) / 32768.0
            pipeline.analyze_signal(y, sr=11025)
        else:
            pipeline.analyze_file(path, use_tags=False)
    except Exception as e:  # noqa: BLE001 - one bad file never stops the fit
        return {"error": repr(e)}
    return got


def items() -> list[dict[str, Any]]:
    out = []
    for line in (TS / "manifest.jsonl").read_text().splitlines():
        it = json.loads(line)
        if "skip" in it:
            continue
        p = it["path"] if it["path"].startswith("/") else str(TS / it["path"])
        out.append(
            dict(
                id=f"ts:{it['id']}",
                set="temposet",
                kind=it["source"],
                job=("npy", p),
                T=float(it["tempo"]),
                lc=True,
                copy=False,
                group=f"ts:{it['id']}",
            )
        )
    truth = json.loads((REAL / "truth.json").read_text())
    songs = {s["id"]: s for s in truth["songs"]}
    for m in truth["songs"] + truth["copies"]:
        if m["split"] != "dev":
            continue
        src = songs.get(m["source"]) if "source" in m else m
        steady = bool(src and src.get("tempo_steady") and m.get("tempo"))
        out.append(
            dict(
                id=f"dev:{m['id']}",
                set="dev",
                kind=m["kind"],
                job=("file", str(REAL / m["path"])),
                T=float(m["tempo"]) if steady else None,
                lc=bool(m.get("tempo_level_certain")),
                copy="source" in m,
                group=f"dev:{m.get('source', m['id'])}",
            )
        )
    return out


def features(its: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    cache = json.loads(FEATURES.read_text()) if FEATURES.exists() else {}
    todo = [it for it in its if it["id"] not in cache]
    if todo:
        t0 = time.time()
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(workers) as ex:
            for it, got in zip(
                todo, ex.map(_capture, [it["job"] for it in todo], chunksize=4), strict=True
            ):
                cache[it["id"]] = got
        FEATURES.write_text(json.dumps(cache))
        print(f"analysed {len(todo)} files in {time.time() - t0:.0f} s", file=sys.stderr)
    return cache


def matrices(its, feats, names, family_below: float):
    """Per item (features, candidate BPM, right?, rules' BPM). Candidates off the rules' pulse
    family (3:4, 2:3, ...) only where the rules' confidence is below ``family_below``."""
    data = []
    for it in its:
        got = feats.get(it["id"]) or {}
        rows = got.get("rows") or []
        conf = got.get("family_conf", 1.0)
        rows = [row for row in rows if row[2]["binrel"] or conf < family_below]
        if not rows:
            data.append(None)
            continue
        x = np.array([[f[k] for k in names] for _, _, f in rows], dtype=np.float64)
        bpm = np.array([c for _, c, _ in rows])
        y = np.abs(bpm / it["T"] - 1.0) < TOL if it["T"] else None
        data.append((x, bpm, y, float(got["rule"])))
    return data


def fit(data, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.optimize import minimize

    xs = np.vstack([d[0] for d in data if d is not None])
    mu, sd = xs.mean(axis=0), xs.std(axis=0)
    sd[sd < 1e-6] = 1.0
    use = [
        ((d[0] - mu) / sd, d[2]) for d in data if d is not None and d[2] is not None and d[2].any()
    ]
    dim = xs.shape[1]

    def loss(w):
        total, grad = 0.5 * l2 * w @ w, l2 * w
        for z, y in use:
            s = z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            total -= np.log(p[y].sum() + 1e-12)
            q = np.where(y, p, 0.0)
            q /= q.sum()
            grad = grad - z.T @ (q - p)
        return total, grad

    w = minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x
    return mu, sd, w


def report(its, data, picks, label):
    def ok(est, t, ratios=(1.0,)):
        return any(abs(est / (t * r) - 1.0) < TOL for r in ratios)

    rows = [
        (it, d, p)
        for it, d, p in zip(its, data, picks, strict=True)
        if d is not None and it["T"] and not it["copy"]
    ]
    lc = [ok(p, it["T"]) for it, d, p in rows if it["lc"]]
    stated = [ok(p, it["T"]) for it, d, p in rows]
    acc2 = [ok(p, it["T"], (1, 2, 3, 0.5, 1 / 3)) for it, d, p in rows]
    print(
        f"{label:24} Acc1 level-certain {np.mean(lc):.3f} ({len(lc)})   Acc1 stated level "
        f"{np.mean(stated):.3f} ({len(stated)})   Acc2 {np.mean(acc2):.3f}"
    )


def gated(got: dict[str, Any], tempolevel: Any) -> bool:
    """Whether the pipeline's gate (soft onsets at the rules' tempo) opens for this item."""
    f = next(f for r, _, f in got["rows"] if r == 1.0)
    return f["con_low"] < tempolevel.SOFT_LOW and f["con_high"] < tempolevel.SOFT_HIGH


def margin_table(its, data, dev, picks, probs) -> None:
    """How the log-odds of the top two candidates (LOPO) separate right from wrong tempi at
    the stated level: the share of each flagged (confidence < 0.5) per scale."""
    from sklearn.metrics import roc_auc_score

    rows = [
        (np.log(probs[i][0] / max(probs[i][1], 1e-9)), abs(picks[i] / its[i]["T"] - 1) < TOL)
        for i in dev
        if i in probs and its[i]["T"] and not its[i]["copy"]
    ]
    lo = np.array([r[0] for r in rows])
    ok = np.array([r[1] for r in rows])
    print(f"log-odds top vs second: ROC AUC right vs wrong {roc_auc_score(ok, lo):.3f}")
    for scale in (1.0, 2.0, 3.0, 4.0, 6.0):
        conf = np.clip(lo / scale, 0.0, 1.0)
        print(
            f"  confidence = log-odds / {scale:g}: wrong flagged {np.mean(conf[~ok] < 0.5):.3f}"
            f", right flagged {np.mean(conf[ok] < 0.5):.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    import tempolevel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--l2", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--eval", action="store_true", help="leave-one-piece-out on the dev half")
    ap.add_argument("--out", type=Path, help="write the model (.npz) here")
    ap.add_argument("--drop", default="", help="comma-separated features to leave out")
    ap.add_argument("--ungated", action="store_true", help="score the ranker on every item")
    ap.add_argument("--family-margin", type=float, default=tempolevel.FAMILY_MARGIN)
    ap.add_argument(
        "--family-below",
        type=float,
        default=tempolevel.FAMILY_BELOW,
        help="offer 3:4/2:3 relatives only where the rules' confidence is below",
    )
    args = ap.parse_args(argv)
    for need, how in (
        (TS / "manifest.jsonl", "bench/temposet.py"),
        (REAL / "truth.json", "bench/realset.py"),
    ):
        if not need.exists():
            print(f"error: {need} is missing: run {how} first", file=sys.stderr)
            return 2
    tempolevel.FAMILY_MARGIN = args.family_margin
    its = items()
    feats = features(its, args.workers)
    names = [n for n in tempolevel.feature_names() if n not in args.drop.split(",")]
    data = matrices(its, feats, names, args.family_below)
    bad = sum(1 for d in data if d is None)
    print(
        f"{len(its)} items ({sum(it['set'] == 'temposet' for it in its)} temposet, "
        f"{sum(it['set'] == 'dev' for it in its)} real dev), {bad} without candidates",
        file=sys.stderr,
    )
    if args.eval:
        dev = [i for i, it in enumerate(its) if it["set"] == "dev"]
        picks: list[float | None] = [None] * len(its)
        probs: dict[int, tuple[float, float]] = {}
        for g in sorted({its[i]["group"] for i in dev}):
            train = [d for it, d in zip(its, data, strict=True) if it["group"] != g]
            mu, sd, w = fit(train, args.l2)
            for i in dev:
                if its[i]["group"] == g and data[i] is not None:
                    s = tempolevel.gate_families(
                        ((data[i][0] - mu) / sd) @ w, list(data[i][0][:, names.index("binrel")] > 0)
                    )
                    picks[i] = float(data[i][1][int(np.argmax(s))])
                    if not args.ungated and not gated(feats[its[i]["id"]], tempolevel):
                        picks[i] = data[i][3]
                    pr = np.sort(np.exp(s - s.max()) / np.exp(s - s.max()).sum())[::-1]
                    probs[i] = (float(pr[0]), float(pr[1]) if len(pr) > 1 else 0.0)
        dits = [its[i] for i in dev]
        ddata = [data[i] for i in dev]
        report(dits, ddata, [d[3] if d else None for d in ddata], "dev, rules")
        report(dits, ddata, [picks[i] for i in dev], "dev, ranker (LOPO)")
        print(f"family margin {tempolevel.FAMILY_MARGIN}, family below {args.family_below}")
        margin_table(its, data, dev, picks, probs)
        for i in dev:
            it, d = its[i], data[i]
            if d is None or not it["T"] or it["copy"]:
                continue
            a, b = abs(d[3] / it["T"] - 1) < TOL, abs(picks[i] / it["T"] - 1) < TOL
            if a != b:
                print(
                    f"  {'+' if b else '-'} {it['id']:48} truth {it['T']:6.1f}  rules "
                    f"{d[3]:6.1f}  ranker {picks[i]:6.1f}"
                )
    if args.out:
        t0 = time.time()
        mu, sd, w = fit(data, args.l2)
        np.savez(
            args.out,
            names=np.array(names),
            mean=mu,
            scale=sd,
            w=w,
            version=np.array(time.strftime("%Y-%m-%d") + f" l2={args.l2} n={len(its) - bad}"),
        )
        print(f"fitted in {time.time() - t0:.1f} s; wrote {args.out}", file=sys.stderr)
        top = sorted(zip(names, w, strict=True), key=lambda x: -abs(x[1]))[:12]
        print(
            "largest weights (per standard deviation): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in top)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
