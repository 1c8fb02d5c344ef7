"""Scale of the learned parts: training time and size at 100 k segments / 10 k ratings, and match
latency with the learned term at up to 1 M segments.

Everything here runs on **synthetic feature rows** (``bench/match_latency.py``'s
``synthetic_batch``: triad progressions in random keys, tempos 70-180 BPM, random rhythm,
balance and energy; 8 bars of beat chroma each), not on analysed audio: it measures cost, not
quality (``bench/listeners.py`` and ``bench/embed.py`` measure quality).

1. **Ranker**: a library of ``--segments`` rows and its index; ``--ratings / 10`` query phrases
   get their rule-valid candidates (index, meter rule, exact scorer, pair features); the
   ``keys`` listener of :mod:`cratedig.learn.feedback` rates the top 10 of each; as many
   self-supervised rows as segments (``--segments`` pair rows drawn from the same lists,
   labelled by whether the taste is above its median: they stand in for stem pairs, which need
   audio) join them; :func:`cratedig.learn.ranker.train_from_ratings` (with its
   cross-validated blend) is timed, and the JSON model's size reported.
2. **Embedding**: PCA and the autoencoder (:mod:`cratedig.learn.embed`, dimension 16) on the
   ``--segments`` rows: training time and ``.npz`` size.
3. **Latency**: one 4-minute song (16 phrases of 8 bars) matched against ``--sizes`` segments,
   each size in a fresh child process: index search (200 candidates per phrase), exact
   scoring, then either nothing more (rule) or the pair features, the learned term and the
   blend on **those candidates only** (as :func:`cratedig.match.query.match_analysis` does),
   and the top 10 reasons. Median of ``--repeats``, threads held to ``--threads``.

Usage::

    .venv/bin/python bench/learn_scale.py
    .venv/bin/python bench/learn_scale.py --segments 20000 --ratings 2000 --sizes 100000
"""

from __future__ import annotations

import os
import sys

if "--child" in sys.argv:  # before numpy loads: pin thread pools
    _t = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from match_latency import QUERY_PHRASES, synthetic_batch  # noqa: E402

OUT_DIR = HERE / "out"
TARGET_SECONDS = 1.0


def train_part(
    segments: int, ratings: int, model_path: Path, *, embed: bool, model: str = "ratings"
) -> dict[str, Any]:
    """Ranker and embedding training at scale; writes the ranker to ``model_path``.

    ``model="lambdarank"``: the stem-pairs ranker of ``cratedig train`` (LambdaRank trees,
    :func:`cratedig.learn.ranker.train_ranker`) on the pair rows, each list its query, instead
    of the ratings' fit."""
    from cratedig.learn.embed import embedding_features, fit_autoencoder, fit_pca
    from cratedig.learn.feedback import LISTENERS, calibrate, candidate_lists
    from cratedig.learn.ranker import RatedList, save_ranker, train_from_ratings
    from cratedig.match.index import build_index

    out: dict[str, Any] = {"segments": segments, "ratings": ratings}
    t0 = time.perf_counter()
    library = synthetic_batch(segments, seed=1)
    index = build_index(library)
    n_queries = max(2, ratings // 10)
    rng = np.random.default_rng(0)
    firsts = np.flatnonzero(np.r_[True, library.track_ids[1:] != library.track_ids[:-1]])
    rows = rng.choice(firsts, size=min(n_queries, len(firsts)), replace=False)
    lists = candidate_lists(library.take(rows), index, library)
    out["prepare_s"] = round(time.perf_counter() - t0, 1)
    listener = next(x for x in LISTENERS if x.name == "keys")
    cal = calibrate(listener, lists)
    rated = []
    for c in lists:
        top = np.argsort(-c.rule, kind="stable")[:10]
        rated.append(RatedList(c.X[top], c.rule[top], cal.rate(c, top, rng), c.track))
    out["ratings"] = sum(len(r.scores) for r in rated)
    X_all = np.vstack([c.X for c in lists])
    taste = np.concatenate([listener.taste(c) for c in lists])
    pick = rng.choice(len(X_all), size=min(segments, len(X_all)), replace=len(X_all) < segments)
    pairs_X, pairs_y = X_all[pick], (taste[pick] > np.median(taste)).astype(float)
    t1 = time.perf_counter()
    if model == "lambdarank":
        from cratedig.learn.ranker import train_ranker

        list_of = np.concatenate([np.full(len(c.X), i) for i, c in enumerate(lists)])
        ranker = train_ranker(
            pairs_X, pairs_y.astype(int), lists[0].names, queries=list_of[pick], model=model
        )
    else:
        ranker = train_from_ratings(rated, lists[0].names, pairs_X=pairs_X, pairs_y=pairs_y)
    out["ranker_train_s"] = round(time.perf_counter() - t1, 2)
    out["ranker_pair_rows"] = len(pairs_X)
    out["ranker_model"] = model
    out["ranker_blend"] = ranker.blend
    save_ranker(ranker, model_path)
    out["ranker_json_bytes"] = model_path.stat().st_size
    if not embed:
        out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
        return out
    feats = embedding_features(library)
    with tempfile.TemporaryDirectory() as tmp:
        for name, fit in (("pca", fit_pca), ("autoencoder", fit_autoencoder)):
            t2 = time.perf_counter()
            emb = fit(feats, 16)
            out[f"{name}_train_s"] = round(time.perf_counter() - t2, 1)
            out[f"{name}_train_cpu_s"] = round(emb.metrics["train_cpu_seconds"], 1)
            out[f"{name}_npz_bytes"] = emb.save(Path(tmp) / f"{name}.npz").stat().st_size
            if "epochs" in emb.metrics:
                out[f"{name}_epochs"] = emb.metrics["epochs"]
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    return out


def match_song(
    index: Any, library: Any, query: Any, ranker: Any, *, candidates: int = 200, top: int = 10
) -> int:
    """Retrieve, score exactly, (learned term + blend on the candidates), explain the top."""
    from cratedig.learn.ranker import blend, pair_features
    from cratedig.match.scoring import explain, score_candidates

    shown = 0
    for q, hits in enumerate(index.search(query, k=candidates)):
        one = query.take([q])
        cands = library.take(hits.rows)
        scores = score_candidates(one, cands)
        if ranker is not None:
            x, names = pair_features(
                scores.terms, stretch=scores.stretch, semitones=scores.semitones,
                tempo_ratio=scores.tempo_ratio, query_balance=one.balance[0],
                balance=cands.balance, relation=scores.relation, rule_score=scores.score,
                coverage=scores.coverage,
            )  # fmt: skip
            learned = ranker.learned(x, names)
            scores.terms["learned"] = learned
            scores.score = blend(scores.score, learned, weight=ranker.blend)
        rows = scores.ranking(top)
        shown += len(explain(one, cands, scores, rows))
    return shown


def child(args: argparse.Namespace) -> dict[str, Any]:
    from cratedig.learn.ranker import load_ranker
    from cratedig.match.index import build_index

    ranker = load_ranker(args.model)
    library = synthetic_batch(args.size, seed=1)
    query = synthetic_batch(QUERY_PHRASES, seed=2, track_prefix="q")
    query.tempo[:] = 125.0
    t0 = time.perf_counter()
    index = build_index(library)
    out: dict[str, Any] = {"size": args.size, "build_s": round(time.perf_counter() - t0, 2)}
    for name, r in (("rule", None), ("learned", ranker)):
        match_song(index, library, query, r)  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            match_song(index, library, query, r)
            times.append(time.perf_counter() - t)
        out[f"{name}_s"] = round(statistics.median(times), 3)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=100_000)
    p.add_argument("--ratings", type=int, default=10_000)
    p.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--embed", action=argparse.BooleanOptionalAction, default=True,
        help="also time PCA and the autoencoder (bench/embed.py times them too)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--ranker", choices=("ratings", "lambdarank"), default="ratings",
        help="the ratings' fit (train_from_ratings) or the stem pairs' LambdaRank trees",
    )  # fmt: skip
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    suffix = "" if args.ranker == "ratings" else f"_{args.ranker}"
    model_path = OUT_DIR / f"learn_scale_ranker{suffix}.json"
    train = train_part(args.segments, args.ratings, model_path, embed=args.embed, model=args.ranker)
    print(
        f"training on synthetic rows: {train['segments']:,} segments, {train['ratings']:,} "
        f"ratings + {train['ranker_pair_rows']:,} self-supervised pair rows "
        f"(candidate lists prepared in {train['prepare_s']} s)"
    )
    print(
        f"  ranker ({args.ranker}): {train['ranker_train_s']} s"
        + (" (with the cross-validated blend), " if args.ranker == "ratings" else " (one fit), ")
        + f"{train['ranker_json_bytes']:,} bytes JSON, blend {train['ranker_blend']:.2f}"
    )
    for name in ("pca", "autoencoder") if args.embed else ():
        ep = f", {train[name + '_epochs']} epochs" if name + "_epochs" in train else ""
        print(
            f"  {name} (dim 16): {train[name + '_train_s']} s wall, "
            f"{train[name + '_train_cpu_s']} s CPU{ep}, "
            f"{train[name + '_npz_bytes']:,} bytes npz"
        )
    print(f"  peak RSS {train['peak_rss_gb']} GB")
    rows = []
    print(f"match latency, one 4-minute song ({QUERY_PHRASES} phrases), {args.threads} threads")
    print(f"{'segments':>10} {'rule s':>8} {'learned s':>10} {'build s':>8} {'peak GB':>8}")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", "--size", str(size), "--model", str(model_path)]
        cmd += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(f"{size:>10} failed: {res.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(
            f"{size:>10} {r['rule_s']:>8.3f} {r['learned_s']:>10.3f} {r['build_s']:>8.2f} "
            f"{r['peak_rss_gb']:>8.2f}"
        )
    (OUT_DIR / f"learn_scale{suffix}.json").write_text(
        json.dumps({"train": train, "latency": rows}, indent=1)
    )
    if rows:
        r = max(rows, key=lambda r: r["size"])
        ok = r["learned_s"] < TARGET_SECONDS
        print(
            f"target < {TARGET_SECONDS} s with the learned term at {r['size']:,}: "
            f"{r['learned_s']:.3f} s: {'PASS' if ok else 'FAIL'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
