"""Watching commands: ``drift`` and ``report``. Parse, call :mod:`cratedig.learn.drift` and
:mod:`cratedig.reports`, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cratedig.cli._options import DbOption, JsonOption, out, shown


def drift_command(
    since: Annotated[
        str | None, typer.Option("--since", help="New = analysed since this date (2026-11-20).")
    ] = None,
    batch: Annotated[
        str | None, typer.Option("--batch", help="New = stored by this ingest id.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write an HTML report with figures.")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Compare the music that arrived since the model was trained with its training data.

    Exit status 3 when drift passes the threshold (for cron).
    """
    from cratedig.learn.drift import library_drift, parse_since
    from cratedig.library.db import open_library

    with open_library(db, create=False) as lib:
        r = library_drift(lib, since=parse_since(since) if since else None, batch=batch)
    if report is not None:
        from cratedig.reports import drift_html

        drift_html(r, report)
    if json_out:
        print(json.dumps(r.to_json()), flush=True)
    else:
        t = Table(title=f"drift of {r.selection}: {r.new_tracks} tracks, {r.new_segments} phrases")
        for col in ("feature", "PSI", "test", "p", "drift"):
            t.add_column(col, justify="right" if col in ("PSI", "p") else "left")
        for f in r.features:
            t.add_row(
                f.feature,
                f"{f.psi:.3f}",
                f.test,
                f"{f.p_value:.2g}",
                "[red]DRIFT[/red]" if f.drifted else "moderate" if f.moderate else "",
            )
        out.print(t)
        for g in r.worse:
            out.print(
                f"  worse on {g['by']} {shown(g['group'])}: {100 * g['far_share']:.0f} % far "
                f"from every cluster (training {100 * g['reference_far_share']:.0f} %)",
                soft_wrap=True,
            )
        out.print(("[red]" if r.drift else "[green]") + shown(r.verdict), soft_wrap=True)
        if report is not None:
            out.print(f"report: {report}")
    if r.drift:
        raise typer.Exit(3)


def report_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path(
        "library.html"
    ),
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """One HTML page: key wheel, tempo histogram, cluster map, confidence, quality, models."""
    from cratedig.library.db import open_library
    from cratedig.reports import library_html, library_overview

    with open_library(db, create=False) as lib:
        overview = library_overview(lib)
    path = library_html(overview, output)
    if json_out:
        print(json.dumps({"report": str(path), "bytes": path.stat().st_size}), flush=True)
    else:
        out.print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")


def register(app: typer.Typer) -> None:
    """Add ``drift`` and ``report`` to ``app``."""
    app.command("drift")(drift_command)
    app.command("report")(report_command)
