"""Does any chroma pair score tell a lead's own bars of its accompaniment from other bars
(other chords) of the same accompaniment? On the songs' true grid, so no grid error counts.

Issue 10's misses (``retrieval.py --query-grid``, stop 34) are the score's: the same
accompaniment at other bars outranks the true bars. This isolates that question.

Per dev stem song: beat chroma of query (lead+drums) and partner (band) on the true beats;
8-bar windows every 4 bars. For each query window: positive = partner window at the same bars;
negatives = partner windows of the same song whose bar chroma differs (corr < 0.9 on >= half
the bars) from the positive. Scores: the per-beat centred chroma correlation (``harmonic_fit``'s), per bar, the melody
against the band's bass, beat 1 only, and logistic models (5-fold by song) on chord-relative
melody degrees (the band's best triad per beat, the melody's chroma rolled to its root: 24
values) and on everything. Metrics per query window: top-1 (the true bars first among its
candidates) and AUC (true bars against each other-chords window).

Usage::

    .venv/bin/python bench/pair_scores.py dev       # or heldout (chroma cached under /tmp)
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import stemset  # noqa: E402
from cratedig.analysis.frontend import compute_frontend  # noqa: E402
from cratedig.analysis.rhythm import beat_sync_chroma  # noqa: E402
from cratedig.analysis.tonal import chroma_pair, estimate_tuning  # noqa: E402
from cratedig.audio import decode  # noqa: E402

SPLIT = sys.argv[1] if len(sys.argv) > 1 else "dev"
CACHE = Path(f"/tmp/pair_scores_{SPLIT}.npz")


def beat_rows(path, beats, dur):
    a = decode(path)
    fe = compute_frontend(a.samples, sr=a.sr)
    ch, bass = chroma_pair(fe, tuning=estimate_tuning(fe))
    return beat_sync_chroma(ch, fe.tonal_fps, beats, dur), beat_sync_chroma(
        bass, fe.tonal_fps, beats, dur
    )


def job(s):
    beats = np.asarray(s["beats"], float)
    downs = np.asarray(s.get("downbeats") or [], float)
    if len(beats) < 40 or len(downs) < 10:
        return None
    dur = float(s["duration"])
    q, qb = beat_rows(s["query_path"], beats, dur)
    p, pb = beat_rows(s["partner_path"], beats, dur)
    first = [int(np.argmin(abs(beats - d))) for d in downs]
    return s["id"], q, p, pb, np.array(first)


def unit(x):
    x = x - x.mean(-1, keepdims=True)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 1e-9, x / np.maximum(n, 1e-12), 0)


TRIADS = []
for r in range(12):
    for third in (4, 3):
        t = np.zeros(12)
        t[[r, (r + third) % 12, (r + 7) % 12]] = 1
        TRIADS.append((r, third == 3, t))
TMAT = np.array([t for _, _, t in TRIADS])
TMAT = unit(TMAT)


def degree_feats(q, c):
    """Per beat: the accompaniment's best triad (root, mode); the melody's chroma rolled to that
    root, in a major or a minor half: 24 values, averaged over beats (weighted by melody)."""
    cu = unit(c)
    best = np.argmax(cu @ TMAT.T, axis=1)
    out = np.zeros(24)
    tot = 0.0
    for b in range(len(q)):
        if q[b].sum() <= 1e-9 or c[b].sum() <= 1e-9:
            continue
        r, minor, _ = TRIADS[best[b]]
        v = np.roll(q[b] / q[b].sum(), -r)
        out[12 * int(minor) : 12 * int(minor) + 12] += v
        tot += 1
    return out / max(tot, 1)


def main():
    if CACHE.exists():
        d = np.load(CACHE, allow_pickle=True)
        songs = list(d["songs"])
    else:
        data = stemset.load(workers=2)
        todo = [s for s in data["songs"] if s["split"] == SPLIT and s.get("downbeats")]
        with ProcessPoolExecutor(2) as ex:
            songs = [r for r in ex.map(job, todo) if r is not None]
        np.savez(CACHE, songs=np.array(songs, dtype=object), allow_pickle=True)
    W = 8  # bars
    rows = []  # (song, qwin, cand_is_pos, feats...)
    for sid, q, p, pb, first in songs:
        bars = [(first[i], first[i + 1]) for i in range(len(first) - 1)]
        if len(bars) < 2 * W:
            continue

        def win(x, i, bars=bars):
            return np.concatenate([x[bars[k][0] : bars[k][1]] for k in range(i, i + W)])

        def barchroma(x, i, bars=bars):
            return np.array([x[bars[k][0] : bars[k][1]].mean(0) for k in range(i, i + W)])

        starts = list(range(0, len(bars) - W + 1, 4))
        pbars = {i: unit(barchroma(p, i)) for i in starts}
        for i in starts:
            qw = win(q, i)
            if qw.sum(1).max() <= 1e-9 or (qw.sum(1) > 1e-6).mean() < 0.5:
                continue
            cands = [i] + [
                j for j in starts if j != i and np.mean(np.sum(pbars[i] * pbars[j], 1) >= 0.9) < 0.5
            ]
            if len(cands) < 2:
                continue
            for j in cands:
                pw = win(p, j)
                n = min(len(qw), len(pw))
                a, b = unit(qw[:n]), unit(pw[:n])
                ok = (qw[:n].sum(1) > 1e-6) & (pw[:n].sum(1) > 1e-6)
                beat_corr = float(np.mean(np.sum(a * b, 1)[ok])) if ok.any() else 0
                qbar, cbar = unit(barchroma(q, i)), unit(barchroma(p, j))
                bar_corr = float(np.mean(np.sum(qbar * cbar, 1)))
                bw = win(pb, j)[:n]
                bu = unit(bw)
                okb = ok & (bw.sum(1) > 1e-6)
                bass_corr = float(np.mean(np.sum(a * bu, 1)[okb])) if okb.any() else 0
                strong = np.zeros(n, bool)
                strong[::4] = True
                s_corr = float(np.mean(np.sum(a * b, 1)[ok & strong])) if (ok & strong).any() else 0
                rows.append(
                    (
                        sid,
                        f"{sid}:{i}",
                        int(j == i),
                        beat_corr,
                        bar_corr,
                        bass_corr,
                        s_corr,
                        *degree_feats(qw[:n], pw[:n]),
                    )
                )
    songs_col = np.array([r[0] for r in rows])
    qid = np.array([r[1] for r in rows])
    y = np.array([r[2] for r in rows])
    X = np.array([r[3:] for r in rows], float)
    print(
        f"{SPLIT}: {len(set(songs_col))} songs, {len(set(qid))} query windows, {len(y)} pairs, {y.sum()} positives"
    )

    def evaluate(score, name):
        top1 = []
        aucs = []
        for g in sorted(set(qid)):
            m = qid == g
            s, t = score[m], y[m]
            top1.append(float(t[np.argmax(s)] == 1))
            pos = s[t == 1][0]
            neg = s[t == 0]
            aucs.append(float(np.mean((pos > neg) + 0.5 * (pos == neg))))
        print(
            f"  {name:<32} top-1 {np.mean(top1):.3f}  AUC {np.mean(aucs):.3f}  (chance top-1 {np.mean([1 / np.sum(qid == g) for g in set(qid)]):.3f})"
        )

    evaluate(X[:, 0], "beat chroma corr (harmonic)")
    evaluate(X[:, 1], "bar chroma corr")
    evaluate(X[:, 2], "melody vs partner bass corr")
    evaluate(X[:, 3], "beat corr on beat 1 only")
    evaluate(X[:, 0] + X[:, 2], "beat corr + bass corr")
    from sklearn.linear_model import LogisticRegression

    for name, cols in (
        ("degrees (24)", slice(4, None)),
        ("all", slice(0, None)),
        ("4 corrs", slice(0, 4)),
    ):
        pred = np.zeros(len(y))
        ids = sorted(set(songs_col))
        folds = {s: k % 5 for k, s in enumerate(ids)}
        fold = np.array([folds[s] for s in songs_col])
        for f in range(5):
            tr, te = fold != f, fold == f
            m = LogisticRegression(C=1.0, max_iter=2000).fit(X[tr][:, cols], y[tr])
            pred[te] = m.decision_function(X[te][:, cols])
        evaluate(pred, f"learned: {name}, 5-fold by song")


main()
