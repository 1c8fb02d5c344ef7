"""Why the true partner is not first: a cause for every lead phrase of the real-stems bench.

For each lead phrase of a split of ``bench/retrieval.py --set real`` (query = a song's lead +
drums; library = every accompaniment and transposed copies), this compares the query's and the
partner's analyses of the same song and classifies the phrase (issue 10):

- **no partner phrase** (not counted by the bench): the two analyses disagree on the tempo
  (an octave, or another ratio), the meter, the beat phase (beats more than 0.15 beat apart),
  the bar phase (downbeats on different beats), or they agree and the phrase cuts differ
  (no partner phrase starts within half a beat of the query's);
- **evaluated**: hit (the rule's first suggestion is a true partner) or miss; a miss is
  described by the grids' agreement, what ranks first (the same accompaniment at other bars,
  with the same chords bar by bar or not; another song; a transposed copy), which weighted
  score term the true partner loses most on (harmonic, key, rhythm, spectral, energy, or the
  transform factor), and an **oracle**: the rank the accompaniment cut on the query's own
  bars would get (if it also misses, the phrase cuts and grids are not what loses it).

Usage::

    .venv/bin/python bench/retrieval_diagnose.py --split dev            # table + per-miss lines
    .venv/bin/python bench/retrieval_diagnose.py --split dev --same-chords beat
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

import retrieval
import stemset
from cratedig.library import repository as repo
from cratedig.match import SegmentBatch
from cratedig.match.query import MatchOptions, match_analysis
from cratedig.match.scoring import DEFAULT_WEIGHTS, score_candidates
from cratedig.match.store import sync_index

#: Beat grids agree when the median distance of the query's beats to the partner's is under
#: this share of a beat.
PHASE_TOL = 0.15


def _nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Signed distance of each ``x`` to the nearest ``ref``."""
    i = np.clip(np.searchsorted(ref, x), 1, len(ref) - 1)
    a, b = ref[i - 1], ref[i]
    return np.where(np.abs(x - a) < np.abs(x - b), x - a, x - b)


def grid_agreement(qa: Any, pa: Any, lo: float, hi: float) -> tuple[float, int | None]:
    """(median beat distance in query beats, most common bar offset in beats) of the query's
    grid against the partner's over [lo, hi); the offset is None where downbeats fall off beats.
    """
    period = 60.0 / qa.tempo
    qb = np.asarray(qa.beats)
    qb = qb[(qb >= lo) & (qb < hi)]
    qd = np.asarray(qa.downbeats)
    qd = qd[(qd >= lo) & (qd < hi)]
    pb, pd = np.asarray(pa.beats), np.asarray(pa.downbeats)
    if len(qb) == 0 or len(pb) < 2 or len(pd) == 0:
        return math.nan, None
    phase = float(np.median(np.abs(_nearest(qb, pb))) / period)
    offs: list[int | None] = []
    for d in qd:
        j = int(np.argmin(np.abs(pb - d)))
        k = int(np.searchsorted(pd, pb[j] + 1e-3)) - 1
        if abs(pb[j] - d) > 0.35 * period or k < 0:
            offs.append(None)
            continue
        offs.append(int(np.sum((pb >= pd[k] - 1e-3) & (pb < pb[j] - 1e-3))) % pa.time_signature[0])
    return phase, collections.Counter(offs).most_common(1)[0][0] if offs else None


def classify(split: str, same_chords: str) -> list[dict[str, Any]]:
    """One record per lead phrase of ``split`` (see the module docstring)."""
    data = stemset.load(workers=2)
    root = Path(stemset.CACHE_ROOT)
    songs = [s for s in data["songs"] if s["split"] == split]
    lib = retrieval.analysed_library(root / f"library-{split}.sqlite", [], 2)
    qlib = retrieval.analysed_library(root / "queries.sqlite", [], 2)
    index, _ = sync_index(lib)
    with lib.reader() as s:
        segs = {g.id: g for g in repo.load_segments(s)}
    opt = MatchOptions(top=retrieval.REAL_TOP)
    rows = []
    for song in songs:
        with qlib.reader() as s:
            qa = repo.load_analysis(s, f"{song['id']}-query")
        with lib.reader() as s:
            pa = repo.load_analysis(s, f"{song['id']}-partner")
        if qa is None or pa is None:
            continue
        onsets = np.asarray(song["lead_onsets"])
        partner = [g for g in segs.values() if g.track_id == f"{song['id']}-partner"]
        ideals = retrieval._ideal_partners(song, qa, pa)
        res = match_analysis(lib, index, qa, options=opt)
        for qi, q in enumerate(qa.segments):
            if not retrieval._active(q, onsets):
                continue
            ideal = ideals[qi] if ideals else None
            strict, rel = retrieval._relevant(
                q, ideal, partner, 60.0 / song["tempo"], same_chords=same_chords
            )
            ratio = pa.tempo / qa.tempo
            phase, bar_off = grid_agreement(qa, pa, q.start, q.end)
            if abs(ratio - 1) > 0.04:
                octave = min(abs(ratio - 2), abs(ratio - 0.5)) < 0.08
                grid = "tempo differs by an octave" if octave else "tempo differs (other ratio)"
            elif qa.time_signature != pa.time_signature:
                grid = "meter differs"
            elif not phase <= PHASE_TOL:
                grid = "beat phase differs"
            elif bar_off != 0:
                grid = "bar phase differs"
            else:
                grid = "grids agree"
            r: dict[str, Any] = {"song": song["id"], "phrase": qi, "grid": grid, "rel": bool(rel)}
            r.update(tempo_ratio=round(ratio, 3), beat_phase=round(phase, 3), bar_offset=bar_off)
            if not rel:
                rows.append(r)
                continue
            recs = res.matches[qi].candidates
            hit = [i for i, c in enumerate(recs) if c["segment"] in rel]
            r["rank"] = hit[0] + 1 if hit else math.inf
            if r["rank"] == 1 or not recs:
                rows.append(r)
                continue
            top = recs[0]
            what = retrieval._what(top["track_id"], song["id"])
            if what.startswith("own") and ideal is not None:
                same = retrieval.same_chords_as(ideal, segs[top["segment"]], unit="bar")
                what += ", same chords bar by bar" if same else ", other chords"
            r["top"] = what
            qb = SegmentBatch.from_segments([q])
            sc = score_candidates(qb, SegmentBatch.from_segments([segs[i] for i in rel]))
            j = int(np.argmax(sc.score))
            t, p = {k: float(v[j]) for k, v in sc.terms.items()}, top["terms"]
            loss = {k: w * (p[k] - t[k]) for k, w in DEFAULT_WEIGHTS.items()}
            loss["transform"] = (
                p["tempo"] * p["shift"] * p["transposition"]
                - t["tempo"] * t["shift"] * t["transposition"]
            )
            r["loses_on"] = max(loss, key=lambda k: loss[k])
            if ideal is not None:
                o = score_candidates(qb, SegmentBatch.from_segments([ideal]))
                r["oracle_rank"] = 1 + sum(
                    1 for c in recs if c["score"] > o.score[0] and c["segment"] not in rel
                )
            rows.append(r)
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    """Print the cause table."""
    c = collections.Counter
    print(f"{len(rows)} lead phrases")
    nop = [r for r in rows if not r["rel"]]
    print(f"  no partner phrase at the same bars or under the same chords: {len(nop)}")
    for k, v in c(r["grid"] for r in nop).most_common():
        print(f"    {k:<34}{v:>4}")
    ev = [r for r in rows if r["rel"]]
    miss = [r for r in ev if r["rank"] != 1]
    print(f"  evaluated: {len(ev)}, rule top-1 hits {len(ev) - len(miss)}, misses {len(miss)}")
    for title, key in (
        ("grids", "grid"),
        ("first suggestion", "top"),
        ("loses most on", "loses_on"),
    ):
        print(f"    misses by {title}:")
        for k, v in c(r.get(key) for r in miss).most_common():
            print(f"      {k!s:<46}{v:>4}")
    orc = [r for r in miss if "oracle_rank" in r]
    print(
        f"    oracle (accompaniment cut on the query's bars) would rank first in "
        f"{sum(r['oracle_rank'] == 1 for r in orc)} of {len(orc)} misses"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--same-chords", choices=("bar", "beat"), default="bar")
    p.add_argument("--out", type=Path, default=retrieval.OUT_DIR)
    args = p.parse_args(argv)
    rows = classify(args.split, args.same_chords)
    report(rows)
    for r in rows:
        if r["rel"] and r["rank"] != 1:
            print(
                f"  {r['song'][:28]:<28} {r['phrase']:>2} rank {r['rank']:>4} {r['grid']:<20} "
                f"top: {r.get('top')}; loses on {r.get('loses_on')}; "
                f"oracle rank {r.get('oracle_rank')}"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"retrieval_diagnose_{args.split}_{args.same_chords}.json"
    path.write_text(json.dumps(rows, indent=0, default=str))
    print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
