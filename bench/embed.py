"""Autoencoder vs PCA at the same dimension: neighbour quality on held-out songs, training time.

A library of synthesized songs (``cratedig.synth``) is written and ingested once (cached in
``bench/.cache/embed-<songs>-<seed>``). The last ``--held-out`` songs also come as two copies
each: the same arrangement (same seed) **transposed** by 1 to 5 semitones either way, and
**re-tempoed** by +4 %. The embeddings (:mod:`cratedig.learn.embed`) are fitted on the phrases
of the other songs only (plus the phrases of ``bench/listeners.py``'s cached libraries, disjoint
songs, when present: ``--extra``).

Neighbour quality, on held-out songs: each phrase of a copy is a query against every phrase of
the library but its own track; its relevant neighbours are the phrases of the same song (the
original or the other copy) with the same section label. Reported: precision@10 (relevant
among the first 10, over ``min(10, relevant)``), top-1 and MRR of the first relevant neighbour,
for the standardised features themselves, PCA and the autoencoder at dimensions 8, 16 and 32;
and the training time of each on the library's rows and on ``--scale-rows`` synthetic feature
rows (:func:`cratedig.learn.feedback.synthetic_segments`: what the analysis would store, not
audio).

Usage::

    .venv/bin/python bench/embed.py                  # 48 songs + 12 x 2 copies, ~3 min
    .venv/bin/python bench/embed.py --scale-rows 0   # without the 100 k-row timing
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.learn.embed import embedding_features, fit_autoencoder, fit_pca, nearest
from cratedig.learn.metrics import mean_reciprocal_rank, top_k_rate
from cratedig.match.batch import SegmentBatch
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
DIMS = (8, 16, 32)


def build_library(songs: int, held_out: int, seed: int, *, bars: int = 24) -> Path:
    """Write and ingest once; returns the cache folder (with ``songs.json``: track -> song)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    root = HERE / ".cache" / f"embed-{songs}-{held_out}-{seed}"
    if (root / "songs.json").exists():
        return root
    rng = np.random.default_rng(seed)
    music = root / "music"
    files: dict[str, dict[str, Any]] = {}
    for i in range(songs):
        tempo = float(np.round(rng.uniform(90, 180), 1))
        key = Key(int(rng.integers(12)), ("major", "minor")[int(rng.integers(2))])
        versions = [("orig", tempo, key)]
        if i >= songs - held_out:
            shift = int(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]))
            versions += [("transposed", tempo, key.transpose(shift)), ("tempo", tempo * 1.04, key)]
        for name, t, k in versions:
            song = synthesize_song(tempo=t, key=k, bars=bars, seed=seed * 1000 + i)
            f = f"song_{i:03d}_{name}.wav"
            write_song(song, music / f)
            files[f] = {"song": i, "version": name, "held_out": i >= songs - held_out}
    t0 = time.perf_counter()
    with open_library(f"sqlite:///{root / 'library.db'}") as lib:
        workflows.update_library(lib, music)
    (root / "songs.json").write_text(
        json.dumps({"files": files, "ingest_seconds": round(time.perf_counter() - t0, 1)})
    )
    return root


def load_library(root: Path) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """Segments and, per track id, its song/version/held_out."""
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    files = json.loads((root / "songs.json").read_text())["files"]
    with open_library(f"sqlite:///{root / 'library.db'}") as lib, lib.reader() as s:
        segments = repo.load_segments(s)
        paths = repo.paths_of(s, {g.track_id for g in segments})
    info = {}
    for t, ps in paths.items():
        name = Path(str(next(iter(ps)))).name
        info[t] = files[name]
    return segments, info


def extra_training_segments() -> list[Any]:
    """Phrases of the listener bench's cached libraries (other songs), if built."""
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    out: list[Any] = []
    for db in sorted((HERE / ".cache").glob("listeners-v2-*/library.db")):
        with open_library(f"sqlite:///{db}") as lib, lib.reader() as s:
            out += repo.load_segments(s)
    return out


def neighbour_quality(
    coords: np.ndarray, segments: list[Any], info: dict[str, dict[str, Any]], k: int = 10
) -> dict[str, float]:
    """precision@k, top-1 and MRR of same-song-same-section neighbours of copies' phrases."""
    song = np.array([info[g.track_id]["song"] for g in segments])
    label = np.array([g.label for g in segments])
    track = np.array([g.track_id for g in segments])
    queries = [
        i
        for i, g in enumerate(segments)
        if info[g.track_id]["held_out"] and info[g.track_id]["version"] != "orig"
    ]
    q = np.array(queries)
    exclude = track[q][:, None] == track[None, :]
    order = nearest(coords, coords[q], len(segments), exclude=exclude)
    precision, ranks = [], []
    for row, qi in zip(order, q, strict=True):
        rel = (song == song[qi]) & (label == label[qi]) & (track != track[qi])
        if not rel.any():
            continue
        hit = rel[row]
        precision.append(hit[:k].sum() / min(k, rel.sum()))
        first = np.flatnonzero(hit)
        ranks.append(float(first[0] + 1) if len(first) else float("inf"))
    return {
        "queries": len(ranks),
        "precision_at_10": round(float(np.mean(precision)), 4),
        "top1": round(top_k_rate(ranks, 1), 4),
        "mrr": round(mean_reciprocal_rank(ranks), 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--songs", type=int, default=48)
    p.add_argument("--held-out", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--scale-rows", type=int, default=100_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    root = build_library(args.songs, args.held_out, args.seed)
    segments, info = load_library(root)
    feats = embedding_features(SegmentBatch.from_segments(segments))
    train = [g for g in segments if not info[g.track_id]["held_out"]]
    extra = extra_training_segments() if args.extra else []
    train_x = embedding_features(SegmentBatch.from_segments(train + extra))
    mean, scale = train_x.mean(axis=0), np.where(train_x.std(axis=0) > 1e-9, train_x.std(axis=0), 1)
    rows: list[dict[str, Any]] = [
        {"method": "features (standardised)", "dim": feats.shape[1], "train_seconds": 0.0,
         **neighbour_quality((feats - mean) / scale, segments, info)}
    ]  # fmt: skip
    for dim in DIMS:
        for name, fit in (("pca", fit_pca), ("autoencoder", fit_autoencoder)):
            model = fit(train_x, dim)
            rows.append(
                {"method": name, "dim": dim, "train_seconds": model.metrics["train_seconds"],
                 **neighbour_quality(model.transform(feats), segments, info)}
            )  # fmt: skip
    scale_rows: list[dict[str, Any]] = []
    if args.scale_rows:
        from cratedig.learn.feedback import synthetic_segments

        synth = synthetic_segments(max(1, args.scale_rows // 6), phrases=6, bars=8, seed=3)
        big = embedding_features(SegmentBatch.from_segments(synth[: args.scale_rows]))
        for name, fit in (("pca", fit_pca), ("autoencoder", fit_autoencoder)):
            m = fit(big, 16)
            scale_rows.append(
                {"method": name, "rows": len(big), "dim": 16, **{
                    k: m.metrics[k] for k in ("train_seconds", "train_cpu_seconds", "epochs")
                    if k in m.metrics}}
            )  # fmt: skip
    # At each dimension, the autoencoder against PCA (precision@10): a win must hold at every
    # dimension tried and exceed 0.02, not be the best of six noisy numbers.
    diffs = {
        dim: round(
            next(r for r in rows if r["method"] == "autoencoder" and r["dim"] == dim)[
                "precision_at_10"
            ]
            - next(r for r in rows if r["method"] == "pca" and r["dim"] == dim)["precision_at_10"],
            4,
        )
        for dim in DIMS
    }
    report = {
        "library": {
            "segments": len(segments),
            "train_rows": len(train_x),
            "held_out_songs": args.held_out,
            "ingest_seconds": json.loads((root / "songs.json").read_text())["ingest_seconds"],
        },
        "neighbours": rows,
        "scale": scale_rows,
        "autoencoder_minus_pca_p10": diffs,
        "autoencoder_wins": all(d > 0.02 for d in diffs.values()),
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "embed.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
        return 0
    lib = report["library"]
    print(
        f"{lib['segments']} phrases; embeddings fitted on {lib['train_rows']} phrases of other "
        f"songs; queries: phrases of transposed / +4 % copies of {args.held_out} held-out songs"
    )
    print(f"{'method':<26}{'dim':>5}{'P@10':>8}{'top-1':>8}{'MRR':>8}{'train s':>9}")
    for r in rows:
        print(
            f"{r['method']:<26}{r['dim']:>5}{r['precision_at_10']:>8.3f}{r['top1']:>8.3f}"
            f"{r['mrr']:>8.3f}{r['train_seconds']:>9.2f}"
        )
    for r in scale_rows:
        print(
            f"training on {r['rows']} synthetic feature rows, dim 16: {r['method']} "
            f"{r['train_seconds']:.1f} s wall, {r['train_cpu_seconds']:.1f} s CPU"
            + (f" ({r['epochs']} epochs)" if "epochs" in r else "")
        )
    print(
        "autoencoder - PCA, P@10 by dimension: "
        + ", ".join(f"{d}: {v:+.3f}" for d, v in diffs.items())
        + f"; wins at every dimension by > 0.02: {report['autoencoder_wins']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
