"""Library commands: ``ingest``, ``stats``, ``tracks``, ``export-slices``. Parse, call, print.

``ingest`` ends by updating the match index and segment clusters (:mod:`cratedig.cli_match`).

Wire them into the main app with :func:`register`; ``python -m cratedig.cli_library`` runs them
on their own (used by tests that kill an ingest).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cratedig.errors import CratedigError
from cratedig.text import printable

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL or SQLite file (default: $CRATEDIG_DB, else a SQLite file in the "
        "user data directory). PostgreSQL: postgresql://user:password@host/dbname.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers", "-w", min=0, help="Analysis processes (1: this process; 0: one per CPU)."
    ),
]
DaskOption = Annotated[
    str | None,
    typer.Option("--dask", help="Send analysis to a Dask scheduler, e.g. tcp://host:8786."),
]


def shown(text: object) -> str:
    """``text`` (a path, a reason quoting one) safe for the terminal and for Rich markup."""
    return escape(printable(text))


class _RateColumn(ProgressColumn):
    """Tracks per second over Rich's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            f"{speed:.2f} tracks/s" if speed else "-- tracks/s", style="progress.data.speed"
        )


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[Any]:
    """A Rich progress bar driven by the library's ``progress(event, **details)`` callback."""
    if not enabled:
        yield lambda event, **details: None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}", style="dim"),
        console=err,
        transient=False,
    )
    state: dict[str, Any] = {}

    def on_event(event: str, **details: Any) -> None:
        if event in ("planned", "slicing") and details["total"]:
            desc = label if event == "planned" else "slicing"
            state["task"] = bar.add_task(desc, total=details["total"], last="")
        elif event == "done" and "task" in state:
            name = Path(details["path"]).name
            bar.update(state["task"], advance=1, last=shown(f"{details['status']}: {name[:40]}"))

    with bar:
        yield on_event


def _executor(workers: int, dask: str | None) -> Any:
    from cratedig.compute import make_executor

    return make_executor(workers, dask)


def ingest_command(
    folder: Annotated[Path, typer.Argument(help="Folder to scan recursively for audio.")],
    workers: WorkersOption = 1,
    dask: DaskOption = None,
    slices: Annotated[
        Path | None,
        typer.Option(
            "--slices", help="Also write every phrase as DIR/<trackid>/<id>.flac + .json."
        ),
    ] = None,
    slice_format: Annotated[
        str, typer.Option("--slice-format", help="flac, wav, aiff or ogg.")
    ] = "flac",
    db: DbOption = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Retry files that failed before, even unchanged.")
    ] = False,
    max_duration: Annotated[
        float, typer.Option("--max-duration", help="Refuse files longer than this (seconds).")
    ] = 1800.0,
    json_out: JsonOption = False,
) -> None:
    """Analyse new and changed audio under FOLDER into the library (resumable: run it again)."""
    from cratedig.library.errors import LibraryError

    if not folder.exists():
        raise LibraryError(f"{folder}: no such folder")
    from cratedig.library.db import open_library
    from cratedig.library.ingest import IngestInterrupted, ingest

    with open_library(db) as lib, _executor(workers, dask) as executor:
        if not json_out:
            err.print(f"library: {lib.shown_url}  analysis: {executor.describe()}", soft_wrap=True)
        try:
            with _progress_bar(not json_out, "ingesting") as progress:
                report = ingest(
                    lib,
                    folder,
                    executor=executor,
                    slices_dir=slices,
                    slice_fmt=slice_format,
                    retry_failed=retry_failed,
                    max_duration=max_duration,
                    progress=progress,
                )
        except IngestInterrupted as exc:
            _print_ingest(exc.report, json_out)
            err.print("interrupted: everything above is saved; run the same command to resume")
            raise typer.Exit(130) from exc
        from cratedig.cli_match import after_ingest

        derived = after_ingest(lib, json_out)
    _print_ingest(report, json_out, derived)


def _print_ingest(report: Any, json_out: bool, derived: dict[str, Any] | None = None) -> None:
    if json_out:
        print(json.dumps({**report.to_json(), **(derived or {})}), flush=True)
        return
    t = Table(title=f"ingest of {shown(report.root)}", show_header=False, box=None)
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_row("audio files", str(report.scanned))
    rate = (
        f"  ({report.tracks_per_minute:.1f} tracks/min, {report.realtime_factor:.1f}x realtime, "
        f"{report.elapsed:.1f} s)"
        if report.analysed
        else ""
    )
    t.add_row("analysed", f"{report.analysed}{rate}")
    t.add_row("unchanged", f"{report.unchanged} (skipped)")
    if report.moved:
        t.add_row("moved/renamed", f"{len(report.moved)} (not analysed again)")
    if report.duplicates:
        t.add_row("duplicates", f"{len(report.duplicates)} (exact copies of a known track)")
    t.add_row("failed", f"[red]{len(report.failed)}[/red]" if report.failed else "0")
    if report.failed_before:
        t.add_row("failed before", f"{report.failed_before} (unchanged; --retry-failed)")
    if report.vanished:
        t.add_row("vanished", f"{len(report.vanished)} (deleted during the ingest)")
    if report.pruned:
        t.add_row("gone from disk", f"{report.pruned} paths forgotten")
    if report.gone_tracks:
        t.add_row("gone tracks", f"{len(report.gone_tracks)} (no file holds them: removed)")
    if report.stems:
        t.add_row("stems", f"{report.stems} tracks with stems recorded or updated")
    if report.slices or report.slice_errors:
        t.add_row("slices", f"{report.slices} written, {len(report.slice_errors)} tracks failed")
    out.print(t)
    for path, reason in report.failed:
        out.print(f"  [red]failed[/red] {shown(path)}: {shown(reason)}", soft_wrap=True)
    for path, other in report.duplicates[:50]:
        out.print(f"  [yellow]duplicate[/yellow] {shown(path)} = {shown(other)}", soft_wrap=True)
    for path, reason in report.slice_errors:
        out.print(f"  [red]slices[/red] {shown(path)}: {shown(reason)}", soft_wrap=True)
    for folder, reason in report.unreadable_folders:
        out.print(
            f"  [red]unreadable folder[/red] {shown(folder)}: {shown(reason)}", soft_wrap=True
        )


def stats_command(db: DbOption = None, json_out: JsonOption = False) -> None:
    """What is in the library: tracks, segments, duplicates, errors, keys, tempi."""
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    with open_library(db, create=False) as lib:
        with lib.reader() as s:
            st = repo.library_stats(s)
        size = lib.size_bytes()
        shown = lib.shown_url
    if json_out:
        print(json.dumps({**st.to_json(), "db": shown, "db_bytes": size}), flush=True)
        return
    t = Table(title=f"library {shown}", show_header=False, box=None)
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_row("tracks", f"{st.tracks}  ({st.hours:.2f} h)")
    t.add_row("segments", str(st.segments))
    t.add_row("files", f"{st.files}  ({st.duplicate_tracks} tracks with duplicates)")
    if st.missing_tracks:
        t.add_row("gone", f"{st.missing_tracks} tracks whose files are gone (`cratedig prune`)")
    if st.stale_tracks:
        t.add_row("stale", f"{st.stale_tracks} tracks from an older analysis (run ingest)")
    t.add_row("errors", str(st.errors))
    if st.tempo_min is not None and st.tempo_max is not None:
        t.add_row("tempo", f"{st.tempo_min:.1f}-{st.tempo_max:.1f} BPM")
    t.add_row("formats", ", ".join(f"{k} {v}" for k, v in st.formats.items()) or "-")
    keys = sorted(st.camelot.items(), key=lambda kv: (int(kv[0][:-1]), kv[0][-1]))
    t.add_row("keys", ", ".join(f"{k} {v}" for k, v in keys) or "-")
    per_track = size / st.tracks if st.tracks else 0
    t.add_row("size", f"{size / 1e6:.2f} MB ({per_track / 1e3:.1f} kB per track)")
    out.print(t)


def tracks_command(
    key: Annotated[
        str | None, typer.Option("--key", help="Camelot code or key name: 8A, 'A minor', Am.")
    ] = None,
    bpm: Annotated[
        str | None, typer.Option("--bpm", help="Tempo range: 120-130, 120..130 or 128.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List tracks, optionally by key and tempo range."""
    from cratedig.library import repository as repo
    from cratedig.library.db import open_library

    with open_library(db, create=False) as lib, lib.reader() as s:
        rows = repo.query_tracks(s, key=key, bpm=bpm, limit=limit)
    if json_out:
        print(json.dumps({"tracks": [r.to_json() for r in rows]}), flush=True)
        return
    t = Table(title=f"{len(rows)} tracks")
    for col in ("id", "BPM", "key", "meter", "length", "phrases", "path"):
        t.add_column(col, justify="right" if col in ("BPM", "length", "phrases") else "left")
    for r in rows:
        m, sec = divmod(int(round(r.duration)), 60)
        path = r.path + (f" (+{r.paths - 1})" if r.paths > 1 else "")
        t.add_row(
            r.track_id,
            f"{r.tempo:.1f}",
            f"{r.camelot} {r.key} {r.mode[:3]}",
            f"{r.time_signature[0]}/{r.time_signature[1]}",
            f"{m}:{sec:02d}",
            str(r.segments),
            shown(path) if path else "[dim](no file)[/dim]",
        )
    out.print(t)


def export_slices_command(
    folder: Annotated[Path, typer.Argument(help="Where to write DIR/<trackid>/<id>.<ext>.")],
    fmt: Annotated[str, typer.Option("--format", help="flac, wav, aiff or ogg.")] = "flac",
    force: Annotated[bool, typer.Option("--force", help="Rewrite complete slices too.")] = False,
    workers: WorkersOption = 1,
    dask: DaskOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write every phrase of every track in the library as an audio file with a JSON sidecar."""
    from cratedig.library.db import open_library
    from cratedig.library.ingest import export_slices

    with open_library(db, create=False) as lib, _executor(workers, dask) as executor:
        with _progress_bar(not json_out, "slicing") as progress:
            report = export_slices(
                lib, folder, fmt=fmt, executor=executor, force=force, progress=progress
            )
    if json_out:
        print(json.dumps(report.to_json()), flush=True)
        return
    out.print(
        f"{report.slices} slices of {report.tracks} tracks written to {shown(report.out_dir)} "
        f"({report.skipped} tracks complete already, {len(report.errors)} failed)"
    )
    for track, reason in report.errors:
        out.print(f"  [red]failed[/red] {shown(track)}: {shown(reason)}", soft_wrap=True)
    if report.errors and report.tracks == 0:
        raise typer.Exit(1)


def prune_command(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Drop files gone from disk and the tracks no file holds any more (and their index
    entries); `ingest` does the same for the folder it scans."""
    from cratedig.library.db import open_library
    from cratedig.library.ingest import prune
    from cratedig.match.store import sync_index

    with open_library(db, create=False) as lib:
        report = prune(lib)
        _, idx = sync_index(lib)
    if json_out:
        print(json.dumps({**report.to_json(), "index": idx.to_json()}), flush=True)
        return
    out.print(
        f"{len(report.files)} paths gone from disk forgotten, {len(report.tracks)} tracks "
        f"removed; match index: {idx.segments} segments"
    )


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``stats``, ``tracks``, ``export-slices`` and ``prune`` to ``app``."""
    app.command("ingest")(ingest_command)
    app.command("stats")(stats_command)
    app.command("tracks")(tracks_command)
    app.command("export-slices")(export_slices_command)
    app.command("prune")(prune_command)


def main() -> None:
    """Run the library commands alone: known errors become one line and exit status 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = typer.Typer(name="cratedig", add_completion=False, pretty_exceptions_enable=False)
    register(app)
    try:
        app()
    except CratedigError as exc:
        err.print(f"[red]error:[/red] {shown(exc)}", soft_wrap=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
