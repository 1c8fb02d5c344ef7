"""Ratings: ``rate`` (score a suggestion 1-5) and ``ratings`` (list them). Parse, call, print."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cratedig.cli._options import DbOption, JsonOption, out


def rate_command(
    query_segment: Annotated[str, typer.Argument(help="Query segment id (<trackid>_<n>).")],
    candidate_segment: Annotated[str, typer.Argument(help="Candidate segment id.")],
    score: Annotated[int, typer.Argument(help="How well they mix: 1 (clash) to 5 (perfect).")],
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="A note.")] = None,
    semitones: Annotated[
        int, typer.Option("--semitones", help="Pitch shift of the candidate that was heard.")
    ] = 0,
    ratio: Annotated[float, typer.Option("--ratio", help="Tempo ratio heard: 1, 2 or 0.5.")] = 1.0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rate how well a candidate segment mixes with a query segment (stored for learning)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        rating_id = workflows.rate(
            lib, query_segment, candidate_segment, score,
            semitones=semitones, tempo_ratio=ratio, comment=comment,
        )  # fmt: skip
    if json_out:
        print(json.dumps({"id": rating_id}), flush=True)
        return
    out.print(f"rating {rating_id} stored: {query_segment} + {candidate_segment} = {score}/5")


def ratings_command(
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every rating given so far, oldest first."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        rows = [r.to_json() for r in workflows.list_ratings(lib)]
    if json_out:
        print(json.dumps({"ratings": rows}), flush=True)
        return
    if csv_out:
        fields = ["id", "query_segment", "candidate_segment", "score", "semitones",
                  "tempo_ratio", "comment", "created_at", "analysis_version"]  # fmt: skip
        w = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        sys.stdout.flush()
        return
    t = Table(title=f"{len(rows)} ratings")
    for col in ("id", "query", "candidate", "score", "transform", "comment", "when"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            str(r["id"]),
            r["query_segment"],
            r["candidate_segment"],
            "★" * r["score"],
            f"{r['semitones']:+d} st, {r['tempo_ratio']:g}:1",
            escape(r["comment"] or ""),
            r["created_at"][:19],
        )
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``rate`` and ``ratings`` to ``app``."""
    app.command("rate")(rate_command)
    app.command("ratings")(ratings_command)
