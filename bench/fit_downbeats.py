"""Fit the bar-phase cue weights of ``cratedig.analysis.rhythm`` on development data only.

For every development song whose beats our tracker gets right (beat F >= 0.8), the per-beat
downbeat cues are turned into one feature row per (meter, phase) candidate
(:func:`~cratedig.analysis.rhythm.meter_phase_features`); the true candidate is known from the
truth's meter and downbeats. A softmax regression over the candidates (L2-regularised) gives
the weights, printed as Python to paste into ``rhythm.py``. Data: the synthesized dev split
(``bench/truthset.py --seed 7``), the hard-pattern songs of the tests, and the dev half of the
real-music set (``bench/realset.py``) when it is built. Never the held-out halves.

Usage::

    .venv/bin/python bench/fit_downbeats.py             # fit, print weights and dev accuracy
    .venv/bin/python bench/fit_downbeats.py --check     # only score the current weights
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mir_eval
import numpy as np
from scipy.optimize import minimize

from cratedig.analysis import rhythm
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.tonal import chroma_from_frontend, estimate_tuning
from cratedig.audio.decode import ANALYSIS_SR, decode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "analysis"))


def _rows(y: np.ndarray, sr: int, beats_true: np.ndarray, downbeats_true: np.ndarray, meter: int):
    fe = compute_frontend(y, sr=sr)
    tuning = estimate_tuning(fe)
    chroma = chroma_from_frontend(fe, tuning=tuning)
    bass = chroma_from_frontend(fe, tuning=tuning, bass=True)
    grid = rhythm.track_beats(fe, harmony=bass, chroma=chroma)
    beats = grid.beats
    if len(beats) < 8 or mir_eval.beat.f_measure(beats_true, beats) < 0.8:
        return None
    # The true phase: which of our beats sit on true downbeats.
    near = np.abs(beats[:, None] - downbeats_true[None, :]).min(axis=1) < 0.07
    if not near.any():
        return None
    idx = np.flatnonzero(near)
    phase = int(np.bincount(idx % meter).argmax())
    cues = rhythm.downbeat_cues(fe, beats, bass, chroma)
    cands, feats = rhythm.meter_phase_features(cues, rhythm.first_strong_beat(fe, beats))
    if (meter, phase) not in cands:
        return None
    return feats, cands.index((meter, phase))


def collect(real_dev: Path | None) -> list[tuple[str, np.ndarray, int]]:
    data = []
    from hard_songs import PATTERNS, hard_song  # tests/analysis: synthesized with truth

    for name in PATTERNS:
        for seed in (0, 1):
            s = hard_song(name, seed=seed)
            r = _rows(s.audio, s.sr, s.beats, s.downbeats, s.meter)
            if r:
                data.append((f"hard:{name}:{seed}", *r))
    synth = sorted((HERE / ".cache" / "truthset").glob("n*-seed7-*/truth.json"))
    for truth_path in synth[:1]:
        truth = json.loads(truth_path.read_text())
        for song in truth["songs"]:
            a = decode(truth_path.parent / song["path"], sr=ANALYSIS_SR)
            r = _rows(
                a.samples,
                a.sr,
                np.asarray(song["beats"]),
                np.asarray(song["downbeats"]),
                int(song["meter"]),
            )
            if r:
                data.append((f"synth:{song['id']}", *r))
    if real_dev is not None and real_dev.exists():
        truth = json.loads(real_dev.read_text())
        items = truth.get("items", truth.get("songs", []))
        for item in items:
            if (
                item.get("split") != "dev"
                or not item.get("downbeats")
                or item.get("kind") == "copy"
            ):
                continue
            meter = item.get("meter")
            if meter not in (3, 4):
                continue
            a = decode(real_dev.parent / item["path"], sr=ANALYSIS_SR)
            r = _rows(
                a.samples, a.sr, np.asarray(item["beats"]), np.asarray(item["downbeats"]), meter
            )
            if r:
                data.append((f"real:{item.get('id', item['path'])}", *r))
    return data


def fit(data, l2: float = 0.05) -> np.ndarray:
    n_feat = data[0][1].shape[1]

    def loss(w):
        total, grad = 0.0, np.zeros(n_feat)
        for _, feats, label in data:
            z = feats @ w
            z = z - z.max()
            p = np.exp(z) / np.exp(z).sum()
            total -= np.log(p[label] + 1e-12)
            grad -= feats[label] - p @ feats
        total += l2 * float(w @ w)
        grad += 2 * l2 * w
        return total / len(data), grad / len(data)

    w0 = np.r_[rhythm.DOWNBEAT_WEIGHTS, rhythm.START_PRIOR, rhythm.TRIPLE_METER_BIAS]
    res = minimize(loss, w0, jac=True, method="L-BFGS-B")
    return res.x


def accuracy(data, w) -> float:
    return float(np.mean([int(np.argmax(f @ w)) == label for _, f, label in data]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="score the current weights only")
    ap.add_argument("--real", type=Path, default=None, help="real-music truth.json (dev half)")
    args = ap.parse_args()
    real = args.real
    if real is None:
        found = sorted((HERE / ".cache" / "realset").glob("**/truth.json"))
        real = found[0] if found else None
    data = collect(real)
    w_now = np.r_[rhythm.DOWNBEAT_WEIGHTS, rhythm.START_PRIOR, rhythm.TRIPLE_METER_BIAS]
    by_source = {}
    for name, f, label in data:
        by_source.setdefault(name.split(":")[0], []).append((name, f, label))
    print(
        f"{len(data)} songs with right beats: "
        + ", ".join(f"{k} {len(v)}" for k, v in by_source.items())
    )
    print(f"current weights: (meter, phase) right {accuracy(data, w_now):.3f}")
    for k, v in by_source.items():
        print(f"  {k}: {accuracy(v, w_now):.3f}")
    if args.check:
        return
    w = fit(data)
    print(f"fitted weights: (meter, phase) right {accuracy(data, w):.3f} (in-sample)")
    for k, v in by_source.items():
        print(f"  {k}: {accuracy(v, w):.3f}")
    # Leave-one-source-out: a guard against fitting one source's quirks.
    for k in by_source:
        rest = [d for d in data if not d[0].startswith(k + ":")]
        if rest and len(by_source) > 1:
            wk = fit(rest)
            print(f"  trained without {k}: {k} right {accuracy(by_source[k], wk):.3f}")
    names = (*rhythm.DOWNBEAT_CUES, "start_prior", "triple_meter_bias")
    print("weights:")
    for n, x in zip(names, w, strict=True):
        print(f"  {n:16s} {x:+.3f}")
    print("DOWNBEAT_WEIGHTS = np.array([" + ", ".join(f"{x:.2f}" for x in w[:-2]) + "])")
    print(f"START_PRIOR = {w[-2]:.2f}\nTRIPLE_METER_BIAS = {w[-1]:.2f}")


if __name__ == "__main__":
    main()
