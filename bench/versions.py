"""Would the stored beat chroma tell a song's own transposed or sped-up copy? (Measured, not
built: a note for the matcher.)

The fingerprint (``cratedig.analysis.fingerprint``) tells the same recording at the same pitch
and speed; a song's copy pitched +2 semitones (a key-shifted copy a DJ tool made) or 6 %
faster (a "sped up" version) reads as other music there, and ``match`` suggests it as the
song's partner at the transform that undoes it: the song layered on itself. The analysis
already stores what could tell it: beat-synchronous chroma is tempo-invariant, and a rotation
undoes a transposition. For two tracks this takes the beat chroma of all their phrases in
order, centres each row, and finds the rotation (12), the beat level (1, 2, 1/2) and the
beat offset (every one at once, by FFT) where the mean cosine over the overlap (at least 80 %
of the shorter) is highest.

Measured on the real-music set (``bench/realset.py``, both halves): each Rubber Band copy
(x1.06, x0.92, +2, -3 semitones) against its source, and every two different files; and the
stem set's two layers of each song (lead + drums against the rest + drums), which are
partners.

Usage::

    .venv/bin/python bench/versions.py      # ~3 min on 2 cores
"""

from __future__ import annotations

import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The overlap a score is read over: this share of the shorter track's sounding beats.
MIN_SHARE = 0.8


def beat_chroma(path: str) -> tuple[str, np.ndarray, float]:
    """(path, the track's beat chroma over all its phrases in order, tempo)."""
    from cratedig.analysis.pipeline import analyze_file

    a = analyze_file(path, use_tags=False)
    rows = [s.features.beat_chroma for s in a.segments if s.features is not None]
    return path, np.concatenate(rows) if rows else np.zeros((0, 12)), float(a.tempo)


def _unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(n > 1e-9, x / np.maximum(n, 1e-12), 0.0), (n[:, 0] > 1e-9).astype(float)


def _level(x: np.ndarray, ratio: float) -> np.ndarray:
    """``x``'s rows at another beat level: 2 = each beat twice, 0.5 = two beats averaged."""
    if ratio == 2:
        return np.repeat(x, 2, axis=0)
    if ratio == 0.5:
        n = len(x) // 2 * 2
        return 0.5 * (x[:n:2] + x[1:n:2])
    return x


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, int, float]:
    """(best mean centred cosine, semitones b lies above a, b's beat level against a's)."""
    best = (0.0, 0, 1.0)
    for ratio in (1.0, 2.0, 0.5):
        ua, ma = _unit(a)
        ub, mb = _unit(_level(b, ratio))
        na, nb = len(ua), len(ub)
        if min(na, nb) < 16:
            continue
        size = 1 << int(np.ceil(np.log2(na + nb)))
        fa = np.fft.rfft(ua, size, axis=0)
        count = np.rint(np.fft.irfft(np.fft.rfft(ma, size) * np.conj(np.fft.rfft(mb, size)), size))
        need = MIN_SHARE * min(ma.sum(), mb.sum())
        for k in range(12):
            corr = np.fft.irfft(
                (fa * np.conj(np.fft.rfft(np.roll(ub, k, axis=1), size, axis=0))).sum(axis=1), size
            )
            m = np.where(count >= max(need, 1.0), corr / np.maximum(count, 1.0), -1.0)
            v = float(m.max())
            if v > best[0]:
                best = (v, -k if k <= 6 else 12 - k, ratio)
    return best


def main() -> int:
    import realset
    import stemset

    truth = json.loads(realset.build().read_text())
    root = realset.CACHE_ROOT
    songs = {s["path"].split("/")[-1]: str(root / s["path"]) for s in truth["songs"]}
    copies = [(c, str(root / c["path"])) for c in truth["copies"]]
    stems = [s for s in stemset.load()["songs"] if s["split"] in ("dev", "heldout")]
    stem_paths = [
        str(stemset.CACHE_ROOT / s[f"{k}_path"]) for s in stems for k in ("query", "partner")
    ]
    paths = [*songs.values(), *(p for _, p in copies), *stem_paths]
    with ProcessPoolExecutor(2) as ex:
        got = {p: (bc, t) for p, bc, t in ex.map(beat_chroma, paths, chunksize=4)}
    rows = []
    for c, p in copies:
        src = next((q for n, q in songs.items() if n.startswith(c["source"])), None)
        if src is None:
            continue
        v, st, _ = agreement(got[src][0], got[p][0])
        rows.append((v, st, c["k"], c["r"], c["id"]))
    v = np.array([r[0] for r in rows])
    print(f"{len(rows)} Rubber Band copies against their source: median {np.median(v):.3f}; "
          f"at 0.85 or more {(v >= 0.85).sum()}, at 0.9 or more {(v >= 0.9).sum()}; "
          f"semitones right where at 0.85: {sum(r[1] == r[2] for r in rows if r[0] >= 0.85)}")  # fmt: skip
    print("  under 0.85:", [(round(r[0], 2), r[4]) for r in sorted(rows) if r[0] < 0.85])
    pairs = sorted(
        ((agreement(got[a][0], got[b][0])[0], a, b) for a, b in
         itertools.combinations(songs.values(), 2)), reverse=True)  # fmt: skip
    print(f"{len(pairs)} pairs of different files: highest "
          f"{[(round(s, 3), Path(a).name, Path(b).name) for s, a, b in pairs[:4]]}; "
          f"99.9th percentile {np.percentile([s for s, _, _ in pairs], 99.9):.3f}")  # fmt: skip
    st = np.array(
        [
            agreement(got[q][0], got[p][0])[0]
            for q, p in zip(stem_paths[::2], stem_paths[1::2], strict=True)
        ]
    )
    print(f"stem set, lead + drums against the rest + drums ({len(st)} songs): median "
          f"{np.median(st):.3f}, highest {st.max():.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
