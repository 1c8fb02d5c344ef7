"""Ratings: ``rate`` (score a suggestion 1-5) and ``ratings`` (list them). Parse, call, print."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cratedig.cli._options import DbOption, JsonOption, OffsetBeatsOption, out


def rate_command(
    query_segment: Annotated[str, typer.Argument(help="Query segment id (<trackid>_<n>).")],
    candidate_segment: Annotated[str, typer.Argument(help="Candidate segment id.")],
    score: Annotated[int, typer.Argument(help="How well they mix: 1 (clash) to 5 (perfect).")],
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="A note.")] = None,
    semitones: Annotated[
        int | None,
        typer.Option(
            "--semitones",
            help="Pitch shift of the candidate that was heard (default: the suggested one).",
        ),
    ] = None,
    ratio: Annotated[
        float | None,
        typer.Option(
            "--ratio", help="Tempo ratio heard: 1, 2 or 0.5 (default: the suggested one)."
        ),
    ] = None,
    offset_beats: OffsetBeatsOption = 0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rate how well a candidate segment mixes with a query segment (stored for learning)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        rating_id = workflows.rate(
            lib, query_segment, candidate_segment, score,
            semitones=semitones, tempo_ratio=ratio, offset_beats=offset_beats, comment=comment,
        )  # fmt: skip
        rating = next(r for r in workflows.list_ratings(lib) if r.id == rating_id)
    if json_out:
        print(json.dumps({"id": rating_id}), flush=True)
        return
    out.print(
        f"rating {rating_id} stored: {query_segment} + {candidate_segment} = {score}/5 "
        f"at {_transform(rating.to_json())}",
        soft_wrap=True,
    )


def _transform(r: dict[str, Any]) -> str:
    """``+2 st, 1:1`` and, for a nudged candidate, ``, +2 beats``."""
    moved = r.get("offset_beats") or 0
    return f"{r['semitones']:+d} st, {r['tempo_ratio']:g}:1" + (
        f", {moved:+d} beat{'s' if abs(moved) != 1 else ''}" if moved else ""
    )


#: CSV columns of ``cratedig ratings --csv`` (spans as start/end seconds, lists joined by "; ").
CSV_FIELDS = (
    "id", "query_segment", "candidate_segment", "score", "semitones", "tempo_ratio",
    "offset_beats", "comment",
    "created_at", "analysis_version", "state", "query_track", "query_start", "query_end",
    "candidate_track", "candidate_start", "candidate_end", "orphaned", "reattachments",
)  # fmt: skip


def _csv_row(r: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in r.items() if k in CSV_FIELDS}
    for side in ("query", "candidate"):
        span = r[f"{side}_span"] or (None, None)
        row[f"{side}_start"], row[f"{side}_end"] = span
    row["orphaned"] = "; ".join(r["orphaned"])
    row["reattachments"] = "; ".join(
        f"{m['side']} {m['from']} -> {m['to']} ({m['cover']:.0%}, {m['at'][:19]})"
        for m in r["reattachments"]
    )
    return row


def ratings_command(
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    orphaned: Annotated[
        bool,
        typer.Option(
            "--orphaned", help="Only the ratings no segment covers any more, with the reason."
        ),
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every rating given so far, oldest first, with its state (attached, reattached after a
    re-analysis, orphaned)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        rows = [r.to_json() for r in workflows.list_ratings(lib, orphaned=orphaned or None)]
    if json_out:
        print(json.dumps({"ratings": rows}), flush=True)
        return
    if csv_out:
        w = csv.DictWriter(sys.stdout, fieldnames=list(CSV_FIELDS), lineterminator="\n")
        w.writeheader()
        w.writerows(_csv_row(r) for r in rows)
        sys.stdout.flush()
        return
    if not rows:
        out.print(
            "no orphaned ratings: every rating still names its music"
            if orphaned
            else "no ratings yet: rate a suggestion with `cratedig rate QSEG CSEG 1-5`"
        )
        return
    t = Table(title=f"{len(rows)} {'orphaned ' if orphaned else ''}ratings")
    for col in ("id", "query", "candidate", "score", "transform", "state", "comment", "when"):
        t.add_column(col)
    for r in rows:
        state = r["state"]
        if r["reattachments"]:
            state += f" ({len(r['reattachments'])}x)"
        t.add_row(
            str(r["id"]),
            r["query_segment"],
            r["candidate_segment"],
            "★" * r["score"],
            _transform(r),
            escape(state),
            escape(r["comment"] or ""),
            r["created_at"][:19],
        )
    out.print(t)
    for r in rows:  # the reasons in full, where a table cell would cut them
        for why in r["orphaned"]:
            out.print(f"rating {r['id']} orphaned: {escape(why)}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``rate`` and ``ratings`` to ``app``."""
    app.command("rate")(rate_command)
    app.command("ratings")(ratings_command)
