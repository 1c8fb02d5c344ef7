"""Fit the bar-phase cue weights of ``cratedig.analysis.rhythm`` on development data only.

Every development piece is analysed with the current tracker; the per-beat downbeat cues become
one feature row per (meter, phase) candidate
(:func:`~cratedig.analysis.rhythm.meter_phase_features`), and each candidate is scored by the
downbeat F-measure its bar lines would get against the truth (the benchmark's own measure:
mir_eval, 70 ms, and for the real-music set beats before 5 s dropped). The label of a piece is
its best candidate; pieces whose best candidate stays under F 0.8 (wrong beats: no bar phase
can repair them) are left out of the fit but kept in the scores. A softmax regression over the
candidates (L2-regularised cross-entropy) gives the weights; one temperature, fitted after it
without a penalty, puts the scores back in log-odds, the unit of the meter and bar-line
confidences (``rhythm.METER_MARGIN_SCALE``). Printed as Python to paste into ``rhythm.py``.

The penalty is chosen by *grouped* cross-validation: K folds by piece (a Rubber Band copy never
enters; each real piece is one group, each synthesized song one, the two seeds of a hard pattern
one), scored by the mean downbeat F of the held-out folds: the in-sample accuracy of a refit says
little (an earlier refit gained only there).

Data: the synthesized dev split (``bench/truthset.py --n 32 --seed 7``), the hard-pattern songs
of the tests, and the dev half of the real-music set (``bench/realset.py``) when it is built.
Never the held-out halves.

Usage::

    .venv/bin/python bench/fit_downbeats.py             # CV over the penalty, fit, print weights
    .venv/bin/python bench/fit_downbeats.py --check     # only score the current weights
    .venv/bin/python bench/fit_downbeats.py --confidence   # fit the bar-line confidence
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import mir_eval
import numpy as np
from scipy.optimize import minimize

from cratedig.analysis import rhythm
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.tonal import chroma_pair, estimate_tuning
from cratedig.audio.decode import ANALYSIS_SR, decode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "analysis"))
sys.path.insert(0, str(HERE))

#: Seconds of truth and estimate dropped before scoring real music (as ``accuracy.py`` does).
TRIM_SECONDS = 5.0
#: A piece enters the fit when its best (meter, phase) candidate reaches this downbeat F.
LABEL_MIN_F = 0.8
PENALTIES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: ``--net-cue``: beat networks whose downbeat output becomes one more cue (one file for every
#: piece, or K files: fold k's network scores the pieces that ``fit_beat_net.py --folds K``
#: held out of its training, so no piece is scored by a network that saw it).
NET_CUE: list = []


def _net_cue(fe, beats: np.ndarray, group: str) -> np.ndarray | None:
    """The network's downbeat activation at each beat (max within 2 frames), z-scored."""
    if not NET_CUE:
        return None
    import zlib

    net = NET_CUE[zlib.crc32(group.encode()) % len(NET_CUE)] if len(NET_CUE) > 1 else NET_CUE[0]
    act = net.activations(fe.mel_db)[1]
    frames = fe.time_to_frames(beats + rhythm.ONSET_LAG)
    return rhythm._z(rhythm._max_near(act, frames, 2))


@dataclass
class Piece:
    """One development piece: its candidates' feature rows and downbeat F."""

    name: str
    group: str
    source: str  # "hard", "synth" or "real"
    scored: bool  # counts in the reported downbeat F (real: certain downbeats only)
    feats: np.ndarray  # (n_candidates, n_features)
    f: np.ndarray  # (n_candidates,) downbeat F of each candidate
    tempo_confidence: float = 1.0  # the beat grid's (an input of the bar-line confidence)


def _f(ref: np.ndarray, est: np.ndarray, trim: bool) -> float:
    if trim:
        ref, est = ref[ref >= TRIM_SECONDS], est[est >= TRIM_SECONDS]
    if ref.size == 0 or est.size == 0:
        return float(ref.size == est.size)
    return float(mir_eval.beat.f_measure(ref, np.sort(est)))


def _piece(
    name: str,
    group: str,
    source: str,
    scored: bool,
    y: np.ndarray,
    sr: int,
    downbeats_true: np.ndarray,
    beatset_group: str = "",
    score_bars=None,
) -> Piece | None:
    fe = compute_frontend(y, sr=sr)
    chroma, bass = chroma_pair(fe, tuning=estimate_tuning(fe))
    grid = rhythm.track_beats(fe, harmony=bass, chroma=chroma)
    beats = grid.beats
    if len(beats) < 8:
        return None
    cues = rhythm.downbeat_cues(fe, beats, bass, chroma)
    extra = _net_cue(fe, beats, beatset_group or name)
    if extra is not None:
        cues = np.vstack([cues, extra[None]])
    cands, feats = rhythm.meter_phase_features(cues, rhythm.first_strong_beat(fe, beats))
    trim = source == "real"
    if score_bars is not None:  # a tracker module: bar lines on its pattern grid
        f = np.array([score_bars(beats[p::m]) or 0.0 for m, p in cands])
    else:
        f = np.array([_f(downbeats_true, beats[p::m], trim) for m, p in cands])
    return Piece(name, group, source, scored, feats, f, float(grid.tempo_confidence))


def collect(real_truth: Path | None, *, more: bool = False, modules: bool = False) -> list[Piece]:
    """Analyse the development pieces (a few minutes on one core).

    ``more`` adds, where their caches are built, both layers of every song of the stems set's
    dev split (``bench/stemset.py``: tracker bar lines assume 32 rows a bar) and a fixed
    sample of ``bench/temposet.py`` (120 scores at drawn tempi, 80 drum loops): the data of the
    bar-line confidence, whose errors the first three sources hardly have.
    """
    from hard_songs import PATTERNS, hard_song  # tests/analysis: synthesized with truth

    import truthset  # bench/

    data: list[Piece | None] = []
    for name in PATTERNS:
        for seed in (0, 1):
            s = hard_song(name, seed=seed)
            data.append(
                _piece(f"hard:{name}:{seed}", name, "hard", True, s.audio, s.sr, s.downbeats)
            )
    synth = truthset.cache_dir(32, 7, 44100, 15) / "truth.json"
    if synth.exists():
        for song in json.loads(synth.read_text())["songs"]:
            a = decode(synth.parent / song["path"], sr=ANALYSIS_SR)
            sid = f"synth:{song['id']}"
            data.append(
                _piece(
                    sid,
                    sid,
                    "synth",
                    True,
                    a.samples,
                    a.sr,
                    np.asarray(song["downbeats"]),
                    f"truthset7:{song['id']}",
                )
            )
    else:
        print(f"no synthesized dev split at {synth} (bench/truthset.py --n 32 --seed 7)")
    if real_truth is not None and real_truth.exists():
        for item in json.loads(real_truth.read_text())["songs"]:
            if item.get("split") != "dev" or not item.get("downbeats"):
                continue
            if not item.get("beats_exact"):
                continue
            a = decode(real_truth.parent / item["path"], sr=ANALYSIS_SR)
            data.append(
                _piece(
                    f"real:{item['id']}",
                    f"real:{item['source_id']}",
                    "real",
                    bool(item.get("downbeats_certain")),
                    a.samples,
                    a.sr,
                    np.asarray(item["downbeats"]),
                    f"realset:{item['id']}",
                )
            )
    if modules:
        data += _module_pieces()
    if more:
        data += _more_pieces()
    return [p for p in data if p is not None]


def _module_pieces() -> list[Piece | None]:
    """The moduleset's dev half (``bench/moduleset.py``): each candidate scored as
    ``accuracy.py``'s "bar lines on the pattern grid" row scores bar lines (the level nearest
    ours, counted from each pattern's start)."""
    import accuracy
    import moduleset

    truth = moduleset.CACHE_ROOT / "truth.json"
    if not truth.exists():
        print(f"no moduleset at {truth} (bench/moduleset.py)")
        return []
    out: list[Piece | None] = []
    for item in json.loads(truth.read_text())["songs"]:
        if item.get("split") != "dev" or not item.get("beats_exact"):
            continue
        a = decode(truth.parent / "songs" / item["path"], sr=ANALYSIS_SR)
        out.append(
            _piece(f"module:{item['id']}", f"module:{item['source_id']}", "module", True,
                   a.samples, a.sr, np.asarray(item["downbeats"]), f"moduleset:{item['id']}",
                   score_bars=lambda e, t=item: accuracy.bar_f_pattern_grid(t, e))
        )  # fmt: skip
    return out


def _more_pieces() -> list[Piece | None]:
    import stemset
    import temposet

    out: list[Piece | None] = []
    stems = stemset.CACHE_ROOT / "stems.json"
    if stems.exists():
        for song in json.loads(stems.read_text())["songs"]:
            if song["split"] != "dev":
                continue
            for layer in ("query", "partner"):
                a = decode(stemset.CACHE_ROOT / song[f"{layer}_path"], sr=ANALYSIS_SR)
                out.append(
                    _piece(f"stem:{song['id']}:{layer}", f"stem:{song['id']}", "stem", True,
                           a.samples, a.sr, np.asarray(song["downbeats"]))
                )  # fmt: skip
    else:
        print(f"no stems set at {stems} (bench/stemset.py)")
    manifest = temposet.CACHE / "manifest.jsonl"
    if manifest.exists():
        items = [json.loads(line) for line in manifest.read_text().splitlines() if line]
        rng = np.random.default_rng(0)
        for source, k in (("corpus", 120), ("groove", 80)):
            pool = [r for r in items if r.get("source") == source and r.get("downbeats")]
            for j in rng.choice(len(pool), min(k, len(pool)), replace=False):
                r = pool[int(j)]
                path = Path(r["path"])
                path = path if path.is_absolute() else temposet.CACHE / path
                y = np.load(path).astype(np.float32) / 32768.0
                out.append(
                    _piece(f"tset:{r['id']}", f"tset:{r['id']}", f"tset_{source}", True, y,
                           temposet.SR, np.asarray(r["downbeats"]))
                )  # fmt: skip
    else:
        print(f"no temposet at {manifest} (bench/temposet.py)")
    return out


def confidence_rows(data: list[Piece], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per piece, the inputs of the bar-line confidence at weights ``w`` (phase margin, meter
    margin, tempo confidence) and whether its chosen bar lines are right (F >= 0.5)."""
    X, y = [], []
    cands = [(m, p) for m in (4, 3) for p in range(m)]
    for p in data:
        s = p.feats @ w
        i = int(np.argmax(s))
        meter = cands[i][0]
        other_meter = max(v for (m, _), v in zip(cands, s, strict=True) if m != meter)
        other_phase = max(
            v for j, ((m, _), v) in enumerate(zip(cands, s, strict=True)) if m == meter and j != i
        )
        X.append([s[i] - other_phase, s[i] - other_meter, p.tempo_confidence])
        y.append(p.f[i] >= 0.5)
    return np.array(X), np.array(y)


def fit_confidence(data: list[Piece], w: np.ndarray, folds: int = 5) -> None:
    """Fit and print the bar-line confidence (:func:`rhythm.bar_line_confidence`): a logistic
    regression of "right" on the capped margins and the tempo confidence, with its ROC AUC by
    grouped cross-validation beside the rule it replaces (the least of the three confidences)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X, y = confidence_rows(data, w)
    cap = rhythm.DOWNBEAT_MARGIN_CAP
    Z = np.c_[np.minimum(X[:, :2], cap), X[:, 2]]
    groups = sorted({p.group for p in data})
    order = np.random.default_rng(0).permutation(len(groups))
    fold_of = {groups[j]: i % folds for i, j in enumerate(order)}
    fold = np.array([fold_of[p.group] for p in data])
    cv = np.zeros(len(y))
    for k in range(folds):
        m = LogisticRegression().fit(Z[fold != k], y[fold != k])
        cv[fold == k] = m.predict_proba(Z[fold == k])[:, 1]
    scale = 0.5  # v16's METER_MARGIN_SCALE
    old = np.minimum.reduce(
        [np.clip(X[:, 0] / scale, 0, 1), np.clip(X[:, 1] / scale, 0, 1), X[:, 2]]
    )
    now = np.array([rhythm.bar_line_confidence(a, b, c) for a, b, c in X])
    src = np.array([p.source for p in data])
    print(f"bar-line confidence: {len(y)} pieces, {int((~y).sum())} with wrong bar lines")
    for name, c in (("least of three (v16)", old), (f"logistic, grouped {folds}-fold CV", cv),
                    ("as shipped", now)):  # fmt: skip
        per = {
            s: roc_auc_score(y[src == s], c[src == s])
            for s in sorted(set(src))
            if 0 < y[src == s].sum() < (src == s).sum()
        }
        low = c < 0.5
        print(
            f"  {name:34s} ROC AUC {roc_auc_score(y, c):.3f} "
            + " ".join(f"{k} {v:.3f}" for k, v in per.items())
            + f"; flagged (< 0.5): wrong {low[~y].mean():.2f}, right {low[y].mean():.2f}"
        )
    m = LogisticRegression().fit(Z, y)
    print("DOWNBEAT_CONF_WEIGHTS = (" + ", ".join(f"{x:.3f}" for x in m.coef_[0]) + ")")
    print(f"DOWNBEAT_CONF_BIAS = {m.intercept_[0]:.3f}")


def fit(data: list[Piece], l2: float) -> np.ndarray:
    """Softmax regression to each labelled piece's best candidate, then one temperature."""
    train = [p for p in data if p.f.max() >= LABEL_MIN_F]
    labels = [int(np.argmax(p.f)) for p in train]
    n_feat = train[0].feats.shape[1]

    def loss(w: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for p, k in zip(train, labels, strict=True):
            z = p.feats @ w
            e = np.exp(z - z.max())
            q = e / e.sum()
            total -= np.log(q[k] + 1e-12)
            grad -= p.feats[k] - q @ p.feats
        return (
            total / len(train) + penalty * float(w @ w),
            grad / len(train) + 2 * penalty * w,
        )

    w = minimize(loss, np.zeros(n_feat), args=(l2,), jac=True, method="L-BFGS-B").x

    def scaled(t: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = loss(t[0] * w, 0.0)
        return v, np.array([g @ w])

    t = minimize(scaled, np.ones(1), jac=True, method="L-BFGS-B", bounds=[(0.1, 100.0)]).x[0]
    return np.asarray(t * w)


def scores(data: list[Piece], chosen: dict[str, float]) -> dict[str, float]:
    """Mean downbeat F of the chosen candidates, per source (scored pieces only)."""
    out = {}
    for src in ("real", "synth", "hard", "module"):
        v = [chosen[p.name] for p in data if p.source == src and p.scored]
        if v:
            out[src] = float(np.mean(v))
    return out


def choose(data: list[Piece], w: np.ndarray) -> dict[str, float]:
    return {p.name: float(p.f[int(np.argmax(p.feats @ w))]) for p in data}


def grouped_cv(data: list[Piece], l2: float, folds: int, seed: int) -> dict[str, float]:
    """Downbeat F with each piece's candidates chosen by weights fitted without its group."""
    groups = sorted({p.group for p in data})
    order = np.random.default_rng(seed).permutation(len(groups))
    fold = {groups[j]: i % folds for i, j in enumerate(order)}
    chosen: dict[str, float] = {}
    for k in range(folds):
        w = fit([p for p in data if fold[p.group] != k], l2)
        chosen.update(choose([p for p in data if fold[p.group] == k], w))
    return scores(data, chosen)


def _fmt(s: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in s.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="score the current weights only")
    ap.add_argument("--real", type=Path, default=None, help="real-music truth.json (dev half)")
    ap.add_argument("--folds", type=int, default=10, help="grouped CV folds")
    ap.add_argument("--repeats", type=int, default=3, help="CV repeats (fold shuffles)")
    ap.add_argument(
        "--modules",
        action="store_true",
        help="add the moduleset's dev half (bar lines on the pattern grid)",
    )
    ap.add_argument("--confidence", action="store_true",
                    help="fit the bar-line confidence instead (adds the stems and temposet "
                    "dev data)")  # fmt: skip
    ap.add_argument("--net-cue", type=Path, nargs="+", default=None,
                    help="beat network file(s) whose downbeat output is one more cue (K files: "
                    "fold networks of fit_beat_net.py --folds K)")  # fmt: skip
    args = ap.parse_args()
    if args.net_cue:
        from cratedig.analysis.beatnet import BeatNet

        NET_CUE.extend(BeatNet.from_npz(p) for p in args.net_cue)
    real = args.real if args.real is not None else HERE / ".cache" / "realset" / "truth.json"
    data = collect(real, more=args.confidence, modules=args.modules)
    if args.confidence:
        w_now = np.r_[rhythm.DOWNBEAT_WEIGHTS, rhythm.START_PRIOR, rhythm.TRIPLE_METER_BIAS]
        fit_confidence(data, w_now)
        return
    counts = {s: sum(p.source == s for p in data) for s in ("hard", "synth", "real", "module")}
    labelled = sum(p.f.max() >= LABEL_MIN_F for p in data)
    print(f"{len(data)} pieces ({counts}); {labelled} with a candidate at F >= {LABEL_MIN_F}")
    w_now = np.r_[rhythm.DOWNBEAT_WEIGHTS, rhythm.START_PRIOR, rhythm.TRIPLE_METER_BIAS]
    if NET_CUE:  # the current weights with the network's cue at 0
        w_now = np.r_[rhythm.DOWNBEAT_WEIGHTS, 0.0, rhythm.START_PRIOR, rhythm.TRIPLE_METER_BIAS]
    print(f"current weights: downbeat F {_fmt(scores(data, choose(data, w_now)))}")
    best_any = {p.name: float(p.f.max()) for p in data}
    print(f"best candidate on our beats (ceiling): {_fmt(scores(data, best_any))}")
    if args.check:
        return
    cv = {}
    for l2 in PENALTIES:
        runs = [grouped_cv(data, l2, args.folds, seed) for seed in range(args.repeats)]
        cv[l2] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        print(f"  L2 {l2:<5g} grouped {args.folds}-fold CV: {_fmt(cv[l2])}")
    l2 = max(
        PENALTIES,
        key=lambda x: (cv[x].get("real", 0.0) + cv[x].get("module", 0.0), cv[x].get("synth", 0.0)),
    )
    w = fit(data, l2)
    print(f"chosen L2 {l2:g}; in-sample downbeat F {_fmt(scores(data, choose(data, w)))}")
    names = (*rhythm.DOWNBEAT_CUES, *(["net_downbeat"] if NET_CUE else []), "start_prior",
             "triple_meter_bias")  # fmt: skip
    for n, x in zip(names, w, strict=True):
        print(f"  {n:18s} {x:+.3f}")
    print("DOWNBEAT_WEIGHTS = np.array([" + ", ".join(f"{x:.2f}" for x in w[:-2]) + "])")
    print(f"START_PRIOR = {w[-2]:.2f}\nTRIPLE_METER_BIAS = {w[-1]:.2f}")


if __name__ == "__main__":
    main()
