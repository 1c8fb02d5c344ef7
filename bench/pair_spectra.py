"""Beyond 12-bin chroma: can register or roughness tell a lead's own bars? (issue 10, stop 41)

``bench/pair_scores.py``'s protocol: on each stem song's **true** grid, lead (+ drums) and band
are cut into 8-bar windows every 4 bars; each lead window's positive is its band at the same
bars, its negatives the band's windows under other chords (bar chroma correlating under 0.9 on
half the bars or more). Per window pair, besides the shipped beat-chroma correlation:

- **semitone spectra**: each beat's sustained spectrum (``tonal._sustained``) on 72 semitones
  (E1-E7, tuned to the track), log-compressed; the two layers' cross-correlation at every lag
  of -24..+24 semitones, averaged over the beats (register and intervals, not folded to 12);
- **chroma interval profile**: the centred chroma correlation at the 12 rotations;
- **roughness**: Sethares' sensory dissonance between the two layers' 16 strongest sustained
  partials per beat (50 Hz-4 kHz), amplitudes normalised per beat.

Learned scores are logistic regressions on the features centred within each query window,
5-fold by song. Metrics per query window: top-1 (the true bars first) and AUC.

Usage::

    .venv/bin/python bench/pair_spectra.py dev       # ~15 s; features cached under /tmp
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import stemset  # noqa: E402
from cratedig.analysis.frontend import FRONTEND_SR, TONAL_NFFT, compute_frontend  # noqa: E402
from cratedig.analysis.rhythm import beat_sync_chroma  # noqa: E402
from cratedig.analysis.tonal import _sustained, chroma_pair, estimate_tuning  # noqa: E402
from cratedig.audio import decode  # noqa: E402

MIDI_LO, MIDI_HI = 28, 100  # E1 .. E7
LAGS = 24  # semitones either way
PEAKS = 16  # partials per beat for the roughness
FREQS = np.arange(TONAL_NFFT // 2 + 1) * FRONTEND_SR / TONAL_NFFT
LO, HI = int(np.searchsorted(FREQS, 50.0)), int(np.searchsorted(FREQS, 4000.0))
W = 8  # bars a window


def semitone_map(tuning: float) -> np.ndarray:
    midi = 69 + 12 * np.log2(np.maximum(FREQS, 1e-3) / 440.0) - tuning / 100.0
    return np.stack(
        [np.clip(1 - np.abs(midi - m), 0, None) for m in range(MIDI_LO, MIDI_HI)], axis=1
    )


def beat_peaks(mag: np.ndarray, fps: float, beats: np.ndarray, dur: float) -> np.ndarray:
    """(beats, 2, PEAKS): frequency and amplitude of each beat's strongest sustained peaks."""
    t = np.arange(mag.shape[0]) / fps
    edges = np.append(beats, dur)
    out = np.zeros((len(beats), 2, PEAKS))
    for b in range(len(beats)):
        m = (t >= edges[b]) & (t < edges[b + 1])
        if not m.any():
            m[min(int(np.searchsorted(t, edges[b])), len(t) - 1)] = True
        s = mag[m, LO:HI].mean(0)
        pk = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])) + 1
        pk = pk[np.argsort(s[pk])[::-1][:PEAKS]]
        out[b, 0, : len(pk)] = FREQS[LO + pk]
        out[b, 1, : len(pk)] = s[pk]
    return out


def layer(path: str, beats: np.ndarray, dur: float) -> tuple[np.ndarray, ...]:
    a = decode(path)
    fe = compute_frontend(a.samples, sr=a.sr)
    tuning = estimate_tuning(fe)
    chroma, _ = chroma_pair(fe, tuning=tuning)
    sus = _sustained(fe.tonal_mag, 1, fe.tonal_mag.shape[1])
    spec = np.log1p(100 * (sus @ semitone_map(tuning)) / (float(sus.max()) + 1e-9))
    return (
        beat_sync_chroma(chroma, fe.tonal_fps, beats, dur),
        beat_sync_chroma(spec, fe.tonal_fps, beats, dur),
        beat_peaks(sus, fe.tonal_fps, beats, dur),
    )


def job(s: dict[str, Any]) -> tuple[Any, ...] | None:
    beats = np.asarray(s["beats"], float)
    downs = np.asarray(s.get("downbeats") or [], float)
    if len(beats) < 40 or len(downs) < 10:
        return None
    dur = float(s["duration"])
    first = np.array([int(np.argmin(abs(beats - d))) for d in downs])
    return (s["id"], *layer(s["query_path"], beats, dur), *layer(s["partner_path"], beats, dur),
            first)  # fmt: skip


def unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 1e-9, x / np.maximum(n, 1e-12), 0)


def xcorr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over beats of the unit spectra's correlation at each lag -LAGS..LAGS."""
    a, b = unit(a), unit(b)
    k = a.shape[1]
    out = np.zeros(2 * LAGS + 1)
    for j, d in enumerate(range(-LAGS, LAGS + 1)):
        if d >= 0:
            out[j] = np.mean(np.sum(a[:, : k - d] * b[:, d:], 1))
        else:
            out[j] = np.mean(np.sum(a[:, -d:] * b[:, : k + d], 1))
    return out


def roughness(p: np.ndarray, q: np.ndarray) -> float:
    """Sethares' dissonance between two peak sets (each normalised to unit amplitude sum)."""
    f1, a1, f2, a2 = p[0], p[1], q[0], q[1]
    m1, m2 = a1 > 0, a2 > 0
    if not m1.any() or not m2.any():
        return np.nan
    f1, a1 = f1[m1], a1[m1] / a1[m1].sum()
    f2, a2 = f2[m2], a2[m2] / a2[m2].sum()
    fmin = np.minimum(f1[:, None], f2[None, :])
    df = np.abs(f1[:, None] - f2[None, :])
    s = 0.24 / (0.0207 * fmin + 18.96)
    d = np.exp(-3.5 * s * df) - np.exp(-5.75 * s * df)
    return float(np.sum(np.minimum(a1[:, None], a2[None, :]) * d))


def pair_rows(songs: list[tuple[Any, ...]]) -> tuple[np.ndarray, ...]:
    out = []
    for sid, q, qs, qp, p, ps, pp, first in songs:
        bars = [(first[i], first[i + 1]) for i in range(len(first) - 1)]
        if len(bars) < 2 * W:
            continue
        idx = [np.concatenate([np.arange(*bars[k]) for k in range(i, i + W)])
               for i in range(len(bars) - W + 1)]  # fmt: skip
        starts = list(range(0, len(bars) - W + 1, 4))
        pbars = {i: unit(np.array([p[slice(*bars[k])].mean(0) for k in range(i, i + W)]))
                 for i in starts}  # fmt: skip
        for i in starts:
            qi = idx[i]
            if q[qi].sum(1).max() <= 1e-9 or (q[qi].sum(1) > 1e-6).mean() < 0.5:
                continue
            cands = [i] + [j for j in starts if j != i
                           and np.mean(np.sum(pbars[i] * pbars[j], 1) >= 0.9) < 0.5]  # fmt: skip
            if len(cands) < 2:
                continue
            for j in cands:
                pj = idx[j]
                n = min(len(qi), len(pj))
                a, b = unit(q[qi[:n]]), unit(p[pj[:n]])
                ok = (q[qi[:n]].sum(1) > 1e-6) & (p[pj[:n]].sum(1) > 1e-6)
                corr = float(np.mean(np.sum(a * b, 1)[ok])) if ok.any() else 0.0
                profile = [float(np.mean(np.sum(a * np.roll(b, -d, 1), 1)[ok])) if ok.any()
                           else 0.0 for d in range(12)]  # fmt: skip
                r = [roughness(qp[qi[k]], pp[pj[k]]) for k in range(n)]
                rough = float(np.nanmean(r)) if np.isfinite(r).any() else 0.0
                out.append((sid, f"{sid}:{i}", int(j == i), corr, -rough, *profile,
                            *xcorr(qs[qi[:n]], ps[pj[:n]])))  # fmt: skip
    song = np.array([o[0] for o in out])
    qid = np.array([o[1] for o in out])
    y = np.array([o[2] for o in out])
    x = np.array([o[3:] for o in out], float)
    return song, qid, y, x


def main() -> None:
    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    cache = Path(f"/tmp/pair_spectra_{split}.npz")
    if cache.exists():
        songs = list(np.load(cache, allow_pickle=True)["songs"])
    else:
        data = stemset.load(workers=2)
        todo = [s for s in data["songs"] if s["split"] == split and s.get("downbeats")]
        with ProcessPoolExecutor(2) as ex:
            songs = [r for r in ex.map(job, todo) if r is not None]
        np.savez(cache, songs=np.array(songs, dtype=object), allow_pickle=True)
    song, qid, y, x = pair_rows(songs)
    print(f"{split}: {len(set(song))} songs, {len(set(qid))} query windows, {len(y)} pairs")
    groups = sorted(set(qid))

    def report(score: np.ndarray, name: str) -> None:
        top1, aucs = [], []
        for g in groups:
            m = qid == g
            s, t = score[m], y[m]
            top1.append(float(t[np.argmax(s)] == 1))
            pos, neg = s[t == 1][0], s[t == 0]
            aucs.append(float(np.mean((pos > neg) + 0.5 * (pos == neg))))
        print(f"  {name:<46} top-1 {np.mean(top1):.3f}  AUC {np.mean(aucs):.3f}")

    report(x[:, 0], "beat chroma correlation (shipped)")
    report(x[:, 1], "minus roughness")
    report(x[:, 2 + 12 + LAGS], "semitone spectra, lag 0")
    centred = x.copy()
    for g in groups:
        m = qid == g
        centred[m] -= x[m].mean(0)
    from sklearn.linear_model import LogisticRegression

    ids = sorted(set(song))
    fold = np.array([ids.index(s) % 5 for s in song])
    n = x.shape[1]
    for name, cols in (
        ("chroma + roughness", [0, 1]),
        ("chroma interval profile (12)", list(range(2, 14))),
        ("semitone cross-correlation (49 lags)", list(range(14, n))),
        ("chroma + semitone cross-correlation", [0, *range(14, n)]),
        ("all", list(range(n))),
    ):
        for c in (0.1, 1.0, 10.0):
            pred = np.zeros(len(y))
            for f in range(5):
                tr, te = fold != f, fold == f
                model = LogisticRegression(C=c, max_iter=3000).fit(centred[tr][:, cols], y[tr])
                pred[te] = model.decision_function(centred[te][:, cols])
            report(pred, f"learned: {name}, C={c}")


if __name__ == "__main__":
    main()
