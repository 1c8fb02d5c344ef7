"""Mashup plans over a real library: does a partner track that plays on keep its key?

Every track of a library is the query of :func:`cratedig.render.plan.plan_mashup` as
``cratedig mashup`` calls it (its phrases matched against the rest of the library, top 8 a
phrase). Each song is planned twice from the same candidate lists:

- **before** (the planner of stop 40): transforms ignored, so the stay bonus holds for any
  consecutive segments of one track (reproduced here by planning on candidates whose
  ``semitones`` and ``tempo_ratio`` are hidden, with ``retune_penalty=0``);
- **now**: a stay needs the same transform, and a playing track's key jump costs
  ``retune_penalty``.

Counted with the real transforms: cues with a partner, stays (consecutive cues, one partner
track), **retunes** (stays whose partner changes its pitch shift or tempo ratio: its key
jumps under the same song), partner tracks, and the mean match score of the chosen partners.

The default library is the real-music set's songs (``bench/realset.py``), ingested once into
``bench/.cache/realset/library.sqlite``; ``--db`` names another.

Usage::

    .venv/bin/python bench/mashup_plans.py            # ~1 min the first time
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from cratedig.library import repository as repo  # noqa: E402
from cratedig.library.db import open_library  # noqa: E402
from cratedig.library.ingest import ingest  # noqa: E402
from cratedig.match.query import MatchOptions, match_analysis  # noqa: E402
from cratedig.match.store import sync_index  # noqa: E402
from cratedig.render.plan import plan_mashup  # noqa: E402

OUT_DIR = HERE / "out"
HIDDEN = ("semitones", "tempo_ratio")


def tally(plan: Any) -> dict[str, float]:
    t = plan.totals
    return {k: t[k] for k in ("with_partner", "stays", "retunes", "partner_tracks", "score")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="library URL (default: the real set's songs)")
    args = ap.parse_args()
    url = args.db
    if url is None:
        import realset

        songs = Path(realset.load()["songs"][0]["path"]).parent
        path = songs.parent / "library.sqlite"
        url = f"sqlite:///{path}"
        with open_library(url) as lib:
            ingest(lib, songs)
    rows = []
    with open_library(url) as lib:
        index, _ = sync_index(lib)
        with lib.reader() as s:
            ids = repo.current_track_ids(s)
        for tid in sorted(set(ids)):
            with lib.reader() as s:
                a = repo.load_analysis(s, tid)
            if a is None or not a.segments:
                continue
            res = match_analysis(lib, index, a, options=MatchOptions(top=8), in_library=True)
            segs = [s.to_json() for s in a.segments]
            cands = [m.candidates for m in res.matches]
            hidden = [[{k: v for k, v in c.items() if k not in HIDDEN} for c in cs] for cs in cands]
            before = plan_mashup(segs, hidden, retune_penalty=0.0)
            # Put the real transforms back on the chosen partners to count the retunes.
            by_seg = [{c["segment"]: c for c in cs} for cs in cands]
            for cue, lookup in zip(before.cues, by_seg, strict=True):
                if cue.partner is not None:
                    real = lookup[cue.partner["segment"]]
                    cue.partner["transform"] = {k: real.get(k) for k in HIDDEN}
            now = plan_mashup(segs, cands)
            rows.append({"track": tid, "before": tally(before), "now": tally(now)})
    keys = ("with_partner", "stays", "retunes", "partner_tracks", "score")
    sums = {w: {k: sum(r[w][k] for r in rows) for k in keys} for w in ("before", "now")}
    print(f"{len(rows)} songs planned")
    print(f"{'':<8} {'cues w/ partner':>16} {'stays':>7} {'retunes':>8} {'partner tracks':>15} "
          f"{'mean score':>11}")  # fmt: skip
    for w in ("before", "now"):
        t = sums[w]
        print(f"{w:<8} {t['with_partner']:>16} {t['stays']:>7} {t['retunes']:>8} "
              f"{t['partner_tracks']:>15} {t['score'] / max(t['with_partner'], 1):>11.3f}")  # fmt: skip
    songs_with = {w: sum(r[w]["retunes"] > 0 for r in rows) for w in ("before", "now")}
    print(f"songs with a retune: before {songs_with['before']}, now {songs_with['now']}")
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "mashup_plans.json").write_text(json.dumps({"sums": sums, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
