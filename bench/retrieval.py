"""Self-supervised retrieval: does the scorer find a stem's true partner among hard decoys?

For each synthesized song (``cratedig.synth``, stems known), the **query** is a phrase of the
lead and drum stems (``--query lead`` for the lead alone); its **true partner** is the
accompaniment (drums + bass + chords) of the same song at the same bars. It hides among decoys
(MUSIC.md, "How quality is measured"; issue 10):

- ``+1 st`` / ``+5 st`` / ``+6 st``: the accompaniment pitch-shifted by Rubber Band
  (pedalboard) by a semitone, a fourth (its key is then a fifth from the query's: the key rule
  calls it fine) and a tritone;
- ``half bar``: the accompaniment delayed by half a bar;
- ``stretch 12%``: the accompaniment time-stretched to 1.12x speed (Rubber Band);
- ``other songs``: every accompaniment phrase of every other song.

Features of every stem and decoy are computed on the beat grid that ``analyze_signal`` finds on
the full mix (a lone lead has too few onsets for a reliable grid), with the analysis' own
building blocks (front end, chroma, bar chroma, rhythm pattern, spectral balance, segment key);
the time-stretched decoy uses that grid scaled by its speed. Only ``cratedig.match.scoring``
ranks; nothing here is tuned on its output.

Reported: top-1, MRR and NDCG@10 of the true partner (one relevant item), the number of
queries whose first suggestion is a transposed copy of the true partner ("transposed copy
first"), how often it beats each decoy kind, and whether the suggested transform undoes each decoy's change (scored with
wide limits, ``--max-shift 6 --max-stretch 0.15``, since +6 st and 12 % lie beyond the
defaults; at the defaults the stretched decoy must be rejected).

Usage::

    .venv/bin/python bench/retrieval.py                 # 12 songs, ~2 min on 2 cores
    .venv/bin/python bench/retrieval.py --songs 4 --workers 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.analysis.records import Segment
from cratedig.learn.metrics import mean_reciprocal_rank, single_relevant_ndcg
from cratedig.learn.pairs import Grid, grid_of_mix, segments_on_grid
from cratedig.match import SegmentBatch, score_candidates
from cratedig.match.scoring import harmonic_fit
from cratedig.synth import synthesize_song
from cratedig.theory import Key

OUT_DIR = Path(__file__).resolve().parent / "out"
DECOYS = ("+1 st", "+6 st", "half bar", "stretch 12%", "+5 st")
TRANSPOSED = ("+1 st", "+6 st", "+5 st")
STRETCH = 1.12
#: A lead phrase counts as a query when at least this share of its bars sound.
MIN_ACTIVE_BARS = 0.75
TARGET_TOP1 = 0.9


def mix_grid(y: np.ndarray, sr: int, track_id: str) -> Grid:
    """The bar grid the analysis finds on the full mix (shared with the stem-pair sampler)."""
    return grid_of_mix(y, sr=sr)


def features_on_grid(
    y: np.ndarray, sr: int, grid: Grid, *, track_id: str, scale: float = 1.0
) -> list[Segment]:
    """Phrase segments of a stem (or a stretched copy) cut on the mix's grid."""
    return segments_on_grid(y, sr=sr, grid=grid, track_id=track_id, scale=scale)


def song_segments(spec: tuple[int, float, str, int, int, str]) -> dict[str, Any]:
    """Query, accompaniment and decoy segments of one song (runs in a worker)."""
    from pedalboard import time_stretch

    index, tempo, key, bars, sr, query = spec
    song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=bars, seed=100 + index, sr=sr)
    name = f"song{index:02d}"
    grid = mix_grid(song.audio, sr, name)
    lead = song.stems["lead"]
    lead_alone = features_on_grid(lead, sr, grid, track_id=f"{name}-lead-alone")
    if query == "lead+drums":
        lead = (lead + song.stems["drums"]).astype(np.float32)
    acc = (song.stems["drums"] + song.stems["bass"] + song.stems["chords"]).astype(np.float32)

    def rubberband(stretch: float, semitones: float) -> np.ndarray:
        return time_stretch(
            acc[None], sr, stretch_factor=stretch, pitch_shift_in_semitones=semitones
        )[0].astype(np.float32)

    half_bar = int(round(grid.meter * 60.0 / grid.tempo / 2 * sr))
    variants = {
        "lead": (lead, 1.0),
        "true": (acc, 1.0),
        "+1 st": (rubberband(1.0, 1.0), 1.0),
        "+6 st": (rubberband(1.0, 6.0), 1.0),
        "half bar": (np.r_[np.zeros(half_bar, np.float32), acc][: len(acc)], 1.0),
        "stretch 12%": (rubberband(STRETCH, 0.0), STRETCH),
        "+5 st": (rubberband(1.0, 5.0), 1.0),
    }
    segs = {
        v: features_on_grid(y, sr, grid, track_id=f"{name}-{v}", scale=scale)
        for v, (y, scale) in variants.items()
    }
    # Queries: phrases where the lead actually plays (judged on the lead alone: with the drums
    # every phrase sounds, and a drums-only phrase has no harmony to match).
    active = [
        i
        for i, s in enumerate(lead_alone)
        if np.mean(s.features.chroma.sum(axis=1) > 1e-6) >= MIN_ACTIVE_BARS
        and s.features.rms_db > -45.0
    ]
    return {
        "name": name,
        "tempo": tempo,
        "key": key,
        "est_tempo": grid.tempo,
        "phrases": grid.phrases,
        "queries": active,
        "segments": segs,
        "meter": grid.meter,
    }


def make_batch(items: list[Segment], *, beats: bool) -> SegmentBatch:
    """Batch of segments; with ``beats`` its chroma rows are beats instead of bars."""
    return SegmentBatch.from_segments(items, unit="beat" if beats else "bar")


def evaluate(
    songs: list[dict[str, Any]], *, max_shift: int, max_stretch: float, beats: bool
) -> dict[str, Any]:
    ranks: list[int] = []
    transposed_first = 0
    wins: dict[str, list[bool]] = {d: [] for d in (*DECOYS, "other songs")}
    undo: dict[str, list[bool]] = {
        "+1 st": [],
        "+6 st (harmonic argmax)": [],
        "stretch 12%": [],
        "stretch 12% rejected": [],
    }
    per_query = []
    for si, song in enumerate(songs):

        def item(s: dict[str, Any], v: str, i: int) -> Segment:
            return s["segments"][v][i]

        others = [
            item(o, "true", i)
            for sj, o in enumerate(songs)
            if sj != si
            for i in range(len(o["segments"]["true"]))
        ]
        for qi in song["queries"]:
            query = make_batch([item(song, "lead", qi)], beats=beats)
            own = [item(song, v, qi) for v in ("true", *DECOYS)]
            cands = make_batch(own + others, beats=beats)
            sc = score_candidates(query, cands, max_shift=max_shift, max_stretch=max_stretch)
            order = sc.ranking()
            rank = int(np.flatnonzero(order == 0)[0]) + 1
            ranks.append(rank)
            for j, d in enumerate(DECOYS, start=1):
                wins[d].append(bool(sc.score[0] > sc.score[j] or not sc.valid[j] and sc.valid[0]))
            wins["other songs"].append(bool(sc.score[0] > sc.score[len(own) :].max()))
            wide = score_candidates(query, cands.take(np.arange(len(own))), max_shift=6,
                                    max_stretch=0.15)  # fmt: skip
            undo["+1 st"].append(int(wide.semitones[1]) == -1)
            # A 6-semitone shift costs more than settling for a fifth (+1): ask the harmonic
            # term alone which rotation undoes it.
            shifts = np.arange(-6, 7)
            harm = harmonic_fit(
                query.chroma[0], query.chroma_mask[0], cands.chroma[2:3], cands.chroma_mask[2:3],
                np.zeros(1, np.int64), shifts,
            )  # fmt: skip
            undo["+6 st (harmonic argmax)"].append(abs(int(shifts[np.argmax(harm[0])])) == 6)
            undo["stretch 12%"].append(
                bool(wide.tempo_ratio[4] == 1.0)
                and abs((1 + wide.stretch[4]) * STRETCH - 1.0) < 0.015
            )
            undo["stretch 12% rejected"].append(not bool(sc.valid[4]))
            top = order[0]
            if 1 <= top <= len(DECOYS) and DECOYS[top - 1] in TRANSPOSED:
                transposed_first += 1
            per_query.append(
                {
                    "song": song["name"],
                    "phrase": qi,
                    "rank": rank,
                    "true_score": round(float(sc.score[0]), 4),
                    "true_terms": {t: round(float(v[0]), 3) for t, v in sc.terms.items()},
                    "top": str(cands.ids[top]),
                    "top_score": round(float(sc.score[top]), 4),
                    "best_other_song_score": round(float(sc.score[len(own) :].max()), 4),
                    "decoy_scores": {
                        d: round(float(sc.score[j]), 4) for j, d in enumerate(DECOYS, start=1)
                    },
                    "decoy_shifts_wide": [int(x) for x in wide.semitones[1:3]],
                    "decoy_stretch_wide": round(float(wide.stretch[4]), 4),
                }
            )
    r = np.array(ranks)
    return {
        "queries": len(r),
        "candidates_per_query": float(np.mean([len(songs[0]["segments"]["true"])])) if songs else 0,
        "top1": float(np.mean(r == 1)),
        "transposed_first": transposed_first,
        "mrr": mean_reciprocal_rank(r),
        "ndcg@10": single_relevant_ndcg(r, 10),
        "beats": {d: float(np.mean(v)) for d, v in wins.items()},
        "undo": {d: float(np.mean(v)) for d, v in undo.items()},
        "per_query": per_query,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--songs", type=int, default=12)
    p.add_argument("--bars", type=int, default=32)
    p.add_argument("--sr", type=int, default=22050)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-shift", type=int, default=3)
    p.add_argument("--max-stretch", type=float, default=0.08)
    p.add_argument("--query", choices=("lead+drums", "lead"), default="lead+drums")
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    keys = [Key.from_index(int(i)) for i in rng.permutation(24)[: args.songs]]
    specs = [
        (
            i,
            float(round(rng.uniform(100, 140), 1)),
            f"{k.name} {k.mode}",
            args.bars,
            args.sr,
            args.query,
        )
        for i, k in enumerate(keys)
    ]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            songs = list(pool.map(song_segments, specs))
    else:
        songs = [song_segments(s) for s in specs]
    t1 = time.perf_counter()
    res = evaluate(songs, max_shift=args.max_shift, max_stretch=args.max_stretch, beats=True)
    t2 = time.perf_counter()
    bars = evaluate(songs, max_shift=args.max_shift, max_stretch=args.max_stretch, beats=False)
    res["bar_chroma"] = {k: v for k, v in bars.items() if k != "per_query"}
    res.update(
        {
            "songs": [
                {k: s[k] for k in ("name", "tempo", "key", "est_tempo", "queries")} for s in songs
            ],
            "seconds": {"synth_and_features": round(t1 - t0, 2), "scoring": round(t2 - t1, 3)},
            "args": {k: str(v) for k, v in vars(args).items()},
        }
    )
    n_other = sum(len(s["segments"]["true"]) for s in songs)
    print(f"retrieval: {args.songs} songs, {res['queries']} {args.query} phrase queries")
    print(f"  candidates per query: 1 true + {len(DECOYS)} decoys + ~{n_other} other-song phrases")
    for label, r in (("beat chroma", res), ("bar chroma (ablation)", bars)):
        ok = "PASS" if r["top1"] >= TARGET_TOP1 else "FAIL"
        print(f"  [{label}] top-1 {r['top1']:.3f} (target >= {TARGET_TOP1}: {ok}), ", end="")
        print(f"MRR {r['mrr']:.3f}, NDCG@10 {r['ndcg@10']:.3f}, ", end="")
        print(f"transposed copy first {r['transposed_first']}/{r['queries']}")
        print("    true partner beats: " + ", ".join(f"{d} {v:.2f}" for d, v in r["beats"].items()))
        print(
            "    transform undoes decoy: " + ", ".join(f"{d} {v:.2f}" for d, v in r["undo"].items())
        )
    true_s = [q["true_score"] for q in res["per_query"]]
    other_s = [q["best_other_song_score"] for q in res["per_query"]]
    print(
        f"  score calibration: true partner p5 {np.percentile(true_s, 5):.3f} / median "
        f"{np.median(true_s):.3f}; best other-song phrase median {np.median(other_s):.3f} / "
        f"p95 {np.percentile(other_s, 95):.3f}"
    )
    print(f"  time: features {t1 - t0:.1f} s, scoring {t2 - t1:.3f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "retrieval.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"  wrote {path}")
    return 0 if res["top1"] >= TARGET_TOP1 and math.isfinite(res["mrr"]) else 1


if __name__ == "__main__":
    sys.exit(main())
