"""Learning: ``train`` (the learned ranker, or ``--embedding``), ``models`` (list,
``--activate`` to roll back), ``evaluate`` (rule vs learned vs blend on held-out tracks, with a
learning curve) and ``similar`` (phrases that sound like one, by the embedding).

Parse, call :mod:`cratedig.workflows`, print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cratedig.cli._options import (
    DbOption,
    JsonOption,
    WorkersOption,
    make_executor,
    out,
    progress_bar,
    shown,
)


def train_command(
    embedding: Annotated[
        str | None,
        typer.Option(
            "--embedding",
            help="Train a segment embedding instead ('pca' or 'autoencoder') for `similar`.",
        ),
    ] = None,
    dim: Annotated[int, typer.Option("--dim", help="Dimension of the embedding.")] = 16,
    workers: WorkersOption = 1,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Train the learned ranker from the library's stems and ratings; it becomes active.

    The stem songs' layers are analysed ``--workers`` at a time.
    """
    from cratedig import workflows
    from cratedig.learn.embed import train_embedding
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        if embedding is not None:
            result = train_embedding(lib, kind=embedding, dim=dim)
        else:
            with (
                make_executor(workers, None) as executor,
                progress_bar(not json_out, "stem songs") as progress,
            ):
                result = workflows.train_ranker(lib, executor=executor, progress=progress)
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
        f"ranker v{result['version']} trained on the match lists of "
        f"{m.get('stem_queries', 0)} lead phrases with stems ({m['stem_pairs']} candidates) "
        f"and {m['ratings']} ratings, from {m['songs']} songs; active now"
    )
    if "pairwise_accuracy_learned" in m:
        out.print(
            f"each of {m['evidence_songs']} songs ranked by rankers trained without it "
            f"({m['evidence_queries']} queries): pairwise accuracy rule "
            f"{m['pairwise_accuracy_rule']}, learned {m['pairwise_accuracy_learned']}"
        )
    if "blend_by_held_out_songs" in m:
        share = m.get("blend", m["blend_by_held_out_songs"])  # as it serves (capped)
        out.print(
            f"learned term's share of the score: {share:g}"
            + (" (it did not rank the held-out songs' partners better by two standard errors: "
               "the rule score decides)" if share == 0 else " (chosen on the held-out songs)")
        )  # fmt: skip
    left_out = result.get("left_out", [])
    if left_out:
        out.print(f"{len(left_out)} stem song(s) left out:", highlight=False)
        for path, why in left_out[:20]:
            out.print(f"  {shown(path)}: {shown(why)}", highlight=False)
        if len(left_out) > 20:
            out.print(f"  ... and {len(left_out) - 20} more (--json lists them all)")


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


def evaluate_command(
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", "--report", help="Also write an HTML report with plots (no network)."
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option("--folds", min=2, help="Folds of tracks (cross-validation).")
    ] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split by track.")] = 0,
    workers: WorkersOption = 1,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rule vs learned vs blend on the library's stems and ratings, split by track.

    NDCG@10, MRR, pairwise accuracy and stem-partner top-1 on held-out tracks, and how they
    grow with the training data. Exit status 1 with one line when there is nothing to
    evaluate.
    """
    from cratedig import workflows
    from cratedig.fileio import check_output
    from cratedig.learn.evaluate import SCORERS
    from cratedig.library.db import open_library
    from cratedig.reports.evaluation import METRIC_TITLES, SOURCE_TITLES, shown_measure

    if html is not None:
        check_output(html, example="report.html")  # a bad path is refused before minutes of work
    with open_library(db, create=False) as lib, make_executor(workers, None) as executor:
        result = workflows.evaluate_rankers(lib, folds=folds, seed=seed, executor=executor)
    if html is not None:
        from cratedig.reports import evaluation_html

        evaluation_html(result, html)
    if json_out:
        print(json.dumps(result), flush=True)
        return
    pairs = result["pairs"]
    t = Table(
        title=f"{result['split']}: {result['tracks']} tracks, {pairs['stems']} stem pairs, "
        f"{pairs['ratings']} rated pairs"
    )
    for col in ("ground truth", "measure", "rule", "learned", "blend"):
        t.add_column(col)
    reasons: dict[str, list[str]] = {}
    for source in ("stems", "ratings"):
        shown_metrics = [m for m in METRIC_TITLES if source == "stems" or m != "top1"]
        cells = result["metrics"][source]
        every = [cells[m][sc] for m in shown_metrics for sc in SCORERS]
        if all(x["value"] is None for x in every) and len({x["reason"] for x in every}) == 1:
            t.add_row(SOURCE_TITLES[source], "all", "n/a", "n/a", "n/a")
            reasons.setdefault(every[0]["reason"], []).append(SOURCE_TITLES[source])
            continue
        for m in shown_metrics:
            row = []
            for sc in SCORERS:
                x = cells[m][sc]
                row.append(_short(x) if x["value"] is None else shown_measure(x))
                if x["value"] is None:
                    what = f"{SOURCE_TITLES[source]} {METRIC_TITLES[m]} {sc}"
                    reasons.setdefault(x["reason"], []).append(what)
            t.add_row(SOURCE_TITLES[source], METRIC_TITLES[m], *row)
    out.print(t)
    c = Table(title="learning curve: NDCG@10 on held-out tracks")
    for col in ("share", "stem pairs", "ratings", "stems rule", "learned", "blend",
                "ratings rule", "learned", "blend"):  # fmt: skip
        c.add_column(col)
    for p in result["learning_curve"]:
        ms = p["metrics"]
        c.add_row(
            f"{p['fraction']:.0%}", f"{p['stem_pairs']:.0f}", f"{p['ratings']:.0f}",
            *(_short(ms[src]["ndcg@10"][sc]) for src in ("stems", "ratings")
              for sc in ("rule", "learned", "blend")),
        )  # fmt: skip
    out.print(c)
    for reason, where in reasons.items():
        out.print(f"n/a ({escape(', '.join(where))}): {escape(reason)}", soft_wrap=True,
                  highlight=False)  # fmt: skip
    for note in result["notes"]:
        out.print(f"note: {escape(note)}", soft_wrap=True, highlight=False)
    if html is not None:
        out.print(f"report: {escape(str(html))}", highlight=False)


def _short(m: dict[str, Any]) -> str:
    return "n/a" if m["value"] is None else f"{m['value']:.3f}"


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
    """Add ``train``, ``models``, ``evaluate`` and ``similar`` to ``app``."""
    app.command("train")(train_command)
    app.command("models")(models_command)
    app.command("evaluate")(evaluate_command)
    app.command("similar")(similar_command)
