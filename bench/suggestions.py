"""What a user sees in the short lists `cratedig match` prints, on a library of their own.

For every track of an ingested library (or the first ``--limit``), every phrase is matched
against the rest (:func:`cratedig.match.query.match_analysis`, the stored analysis, the active
ranker if any) and the first ``--top`` suggestions are summarised, side by side for each
``--per-track`` setting given (0 = no limit, the library default; 2 = the CLI's default):

- **lists**: query phrases with at least one suggestion, and those with a full list;
- **tracks per full list**: distinct partner tracks among the ``--top`` (mean), and the share of
  full lists that name one track only (five phrases of one song are one suggestion five times);
- **doubtful-tempo partners**: suggestions whose track's tempo estimate is doubtful in a way a
  stretch cannot absorb (a 3:4 runner-up, confidence < 0.5) and which were matched on that
  estimate; the matcher weighs them down (``match.query.tempo_doubt``);
- **first score**: the mean score of the first suggestion.

Used in stop 27 on the real-music set's 160 originals copied into one folder and ingested
(``cratedig ingest FOLDER --db lib.sqlite``): it found the doubt weight applied after the list
was cut (fixed in ``1d584b9``). The ``--compare SRC`` option runs the same lists with another
checkout's ``src`` first on ``sys.path`` (e.g. a ``git worktree`` of the previous commit) and
counts the lists that differ.

Usage::

    .venv/bin/python bench/suggestions.py --db lib.sqlite
    .venv/bin/python bench/suggestions.py --db lib.sqlite --per-track 0 2 --top 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def lists(db: str, top: int, per_track: int, limit: int | None) -> dict[str, list[list[dict]]]:
    """{track id: [[suggestion, ...] per query phrase]} (suggestion: segment, track, score,
    doubtful)."""
    from cratedig import workflows
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library
    from cratedig.match.query import MatchOptions, match_analysis
    from cratedig.match.store import sync_index

    out: dict[str, list[list[dict]]] = {}
    with open_library(db) as lib:
        index, _ = sync_index(lib)
        ranker = workflows.active_ranker(lib)
        with lib.reader() as s:
            ids = sorted(repo.current_track_ids(s))
        opt = MatchOptions(top=top, per_track=per_track or None)
        for tid in ids[:limit]:
            with lib.reader() as s:
                a = repo.load_analysis(s, tid)
            if a is None:
                continue
            res = match_analysis(lib, index, a, options=opt, in_library=True, ranker=ranker)
            out[tid] = [
                [
                    {
                        "segment": c["segment"],
                        "track": c["track_id"],
                        "score": c["score"],
                        "doubtful": any(
                            "partner tempo uncertain" in d for d in c.get("doubts", [])
                        ),
                    }
                    for c in m.candidates
                ]
                for m in res.matches
            ]
    return out


def summary(per_query: dict[str, list[list[dict]]], top: int) -> dict[str, Any]:
    rows = [row for qs in per_query.values() for row in qs]
    full = [row for row in rows if len(row) == top]
    listed = [c for row in rows for c in row]
    distinct = [len({c["track"] for c in row}) for row in full]
    return {
        "tracks": len(per_query),
        "phrases": len(rows),
        "with_suggestions": sum(bool(r) for r in rows),
        "full_lists": len(full),
        "tracks_per_full_list": round(statistics.mean(distinct), 3) if distinct else None,
        "one_track_lists": round(sum(d == 1 for d in distinct) / len(full), 3) if full else None,
        "doubtful_share": round(sum(c["doubtful"] for c in listed) / len(listed), 3)
        if listed
        else None,
        "first_score": round(statistics.mean(r[0]["score"] for r in rows if r), 4)
        if any(rows)
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="an ingested library (SQLite file or URL)")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--per-track", type=int, nargs="+", default=[0, 2])
    p.add_argument("--limit", type=int, default=None, help="only the first N tracks (by id)")
    p.add_argument("--compare", type=Path, default=None,
                   help="another checkout's src: count the lists that differ from it")  # fmt: skip
    p.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dump is not None:  # child of --compare: write the lists and stop
        args.dump.write_text(json.dumps(lists(args.db, args.top, args.per_track[0], args.limit)))
        return 0
    table = {}
    for pt in args.per_track:
        got = lists(args.db, args.top, pt, args.limit)
        table[pt] = summary(got, args.top)
        if args.compare is not None:
            dump = Path(f"/tmp/cratedig-suggestions-{pt}.json")
            subprocess.run(
                [sys.executable, "-c",
                 f"import sys; sys.path.insert(0, {str(args.compare)!r}); "
                 f"sys.path.insert(1, {str(Path(__file__).parent)!r}); import suggestions; "
                 f"sys.exit(suggestions.main({['--db', args.db, '--top', str(args.top), '--per-track', str(pt), '--dump', str(dump)] + (['--limit', str(args.limit)] if args.limit else [])!r}))"],
                check=True,
            )  # fmt: skip
            other = json.loads(dump.read_text())
            pairs = [(a, b) for t in got for a, b in zip(got[t], other.get(t, []), strict=False)]
            table[pt]["compared"] = {
                "lists": len(pairs),
                "differ": sum([c["segment"] for c in a] != [c["segment"] for c in b]
                              for a, b in pairs),
                "first_differs": sum([c["segment"] for c in a[:1]] != [c["segment"] for c in b[:1]]
                                     for a, b in pairs),
                "other": summary(other, args.top),
            }  # fmt: skip
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
