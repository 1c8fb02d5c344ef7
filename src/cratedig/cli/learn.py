"""Learning: ``train`` (the learned ranker, or ``--embedding``), ``models`` (list,
``--activate`` to roll back) and ``similar`` (phrases that sound like one, by the embedding).

Parse, call :mod:`cratedig.workflows`, print.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cratedig.cli._options import DbOption, JsonOption, out


def train_command(
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="Train a segment embedding instead ('pca' or 'autoencoder') for `similar`.",
        ),
    ] = None,
    dim: Annotated[int, typer.Option("--dim", help="Dimension of the embedding.")] = 16,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Train the learned ranker from the library's stems and ratings; it becomes active."""
    from cratedig import workflows
    from cratedig.learn.embed import train_embedding
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        if embedding is not None:
            result = train_embedding(lib, kind=embedding, dim=dim)
        else:
            result = workflows.train_ranker(lib)
    if json_out:
        print(json.dumps(result), flush=True)
        return
    if embedding is not None:
        m = result["metrics"]
        out.print(
            f"{embedding} embedding v{result['version']} (dim {dim}) trained on {m['rows']} "
            f"segments in {m['train_seconds']} s; active now"
        )
        return
    m = result["metrics"]
    out.print(
        f"ranker v{result['version']} trained on {m['stem_pairs']} stem pairs and "
        f"{m['ratings']} ratings from {m['songs']} songs; active now"
    )
    if "pairwise_accuracy_learned" in m:
        out.print(
            f"held-out songs ({m['held_out_songs']}): pairwise accuracy rule "
            f"{m['pairwise_accuracy_rule']}, learned {m['pairwise_accuracy_learned']}"
        )


def models_command(
    activate: Annotated[
        int | None, typer.Option("--activate", help="Make this ranker version the one that serves.")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the trained rankers (and activate one)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        if activate is not None:
            workflows.activate_model(lib, activate)
        rows = workflows.list_models(lib)
    if json_out:
        print(json.dumps({"models": rows}), flush=True)
        return
    t = Table(title=f"{len(rows)} ranker models")
    for col in ("version", "active", "trained", "pairs", "ratings", "rule acc", "learned acc"):
        t.add_column(col)
    for r in rows:
        m = r["metrics"]
        t.add_row(
            str(r["version"]),
            "*" if r["active"] else "",
            r["trained_at"][:19],
            str(m.get("stem_pairs", "")),
            str(m.get("ratings", "")),
            str(m.get("pairwise_accuracy_rule", "")),
            str(m.get("pairwise_accuracy_learned", "")),
        )
    out.print(t)


def similar_command(
    segment: Annotated[str, typer.Argument(help="A library segment id (<trackid>_<n>).")],
    top: Annotated[int, typer.Option("--top", help="How many neighbours.")] = 10,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Phrases of other tracks that sound like SEGMENT, whatever their key (the embedding)."""
    from cratedig.learn.embed import similar_segments
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        rows = similar_segments(lib, segment, top=top)
    if json_out:
        print(json.dumps({"segment": segment, "similar": rows}), flush=True)
        return
    t = Table(title=f"sounds like {segment}")
    for col in ("segment", "label", "camelot", "bpm", "distance"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["segment"], r["label"], r["camelot"], str(r["bpm"]), str(r["distance"]))
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``models`` and ``similar`` to ``app``."""
    app.command("train")(train_command)
    app.command("models")(models_command)
    app.command("similar")(similar_command)
