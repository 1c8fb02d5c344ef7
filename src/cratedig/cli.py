"""The ``cratedig`` command line: parse, call a library function, print. Nothing else lives here.

Known errors (:class:`~cratedig.errors.CratedigError`) become one line on stderr and exit 1;
tracebacks only with ``-v``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cratedig import __version__
from cratedig.errors import AudioError, CratedigError

app = typer.Typer(
    name="cratedig",
    help="Find the pieces of songs that mix: tempo, key, bars, phrases, sections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def shown(text: object) -> str:
    """Terminal-safe, markup-safe text (see :func:`cratedig.text.printable`)."""
    from cratedig.cli_library import shown as _shown

    return _shown(text)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"cratedig {__version__}")
        raise typer.Exit()


def _register_commands() -> None:
    # Library commands (ingest, stats, tracks, export-slices) live beside the library package.
    from cratedig.cli_library import register as register_library

    register_library(app)
    from cratedig.cli_match import register as register_match

    register_match(app)
    from cratedig.cli_render import register as register_render

    register_render(app)


_verbose = False


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Debug logging and tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def analyze(
    files: Annotated[list[Path], typer.Argument(help="Audio files to analyse.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per file, one per line.")
    ] = False,
    features: Annotated[
        bool, typer.Option("--features", help="Include per-segment feature vectors in the JSON.")
    ] = False,
    max_duration: Annotated[
        float, typer.Option("--max-duration", help="Refuse files longer than this many seconds.")
    ] = 1800.0,
) -> None:
    """Analyse audio files (no database): tempo, key, beats, downbeats, phrases, sections."""
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.audio.decode import check_max_duration

    check_max_duration(max_duration)
    failures = 0
    for path in files:
        try:
            with (
                err.status(f"analysing {shown(path)}", spinner="dots") if not json_out else _null()
            ):
                result = analyze_file(path, max_duration=max_duration)
        except (AudioError, OSError) as exc:
            failures += 1
            if isinstance(exc, OSError):  # a file that vanished or became unreadable mid-way
                exc = AudioError(f"cannot read ({exc.strerror or exc})", str(path))
            if json_out:
                print(json.dumps({"path": str(path), "error": exc.reason}), flush=True)
            else:
                err.print(f"[red]error[/red] {shown(path)}: {shown(exc.reason)}", soft_wrap=True)
            continue
        if json_out:
            print(json.dumps(result.to_json(features=features)), flush=True)
        else:
            _print_analysis(result)
    if failures and failures == len(files):
        raise typer.Exit(1)


@app.command()
def demo(
    folder: Annotated[
        Path, typer.Option("--folder", help="Where to write the demo library.")
    ] = Path("demo-library"),
    n: Annotated[int, typer.Option("--n", min=1, help="Number of songs.")] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    render: Annotated[
        bool, typer.Option("--render/--no-render", help="Render a pair and a mashup.")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Synthesize a small library with known tempo and key, ingest it, match and render."""
    from cratedig.demo import run_demo

    if json_out:
        r = run_demo(folder, n=n, seed=seed, render=render)
        print(json.dumps(r), flush=True)
        return
    with err.status("demo", spinner="dots") as status:
        r = run_demo(folder, n=n, seed=seed, render=render, progress=status.update)
    rows = r["tracks"]
    table = Table(title=f"cratedig demo: {len(rows)} synthesized songs in {folder}/")
    for col in ("file", "BPM", "found", "key", "found", "meter", "phrases"):
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(
            Path(row["path"]).name,
            f"{row['true_tempo']:.1f}",
            _mark(row["tempo_ok"], "-" if row["tempo"] is None else f"{row['tempo']:.2f}"),
            f"{row['true_key']} {row['true_camelot']}",
            _mark(row["key_ok"], f"{row['key']} {row['camelot']}"),
            f"{row['meter']}/4" + ("" if row["meter"] == row["true_meter"] else " ✗"),
            str(row["segments"]),
        )
    out.print(table)
    good = sum(row["tempo_ok"] and row["key_ok"] for row in rows)
    ing = r["ingest"]
    out.print(
        f"{good}/{len(rows)} songs with tempo and key right. Library {r['db']}: "
        f"{ing['analysed']} analysed, {ing['unchanged']} unchanged, {ing['segments']} phrases "
        f"indexed, {len(ing['failed'])} failed.",
        soft_wrap=True,
    )
    q = r["query"]
    if q is None:
        out.print("No two songs mix in this library (try another --seed).")
        return
    t = Table(
        title=f"best matches for {Path(q['path']).name} ({q['tempo']:.1f} BPM, {q['key']} "
        f"{q['camelot']}): {q['matched_phrases']}/{q['phrases']} phrases have partners"
    )
    for col in ("phrase", "time", "partner", "score", "why"):
        t.add_column(col, overflow="fold")
    for m in r["matches"]:
        t.add_row(
            m["query_segment"].rsplit("_", 1)[-1],
            f"{m['query_start']:.1f}–{m['query_end']:.1f} s",
            f"{Path(m['path']).name} #{m['segment'].rsplit('_', 1)[-1]}",
            f"{m['score']:.2f}",
            m["reason"],
        )
    out.print(t)
    rd = r["renders"]
    if rd:
        sec = r["seconds"]
        out.print(
            f"pair preview  {rd['pair']} ({rd['pair_seconds']:.1f} s, rendered in "
            f"{sec['render_pair']:.2f} s)\n"
            f"mashup        {rd['mashup']} ({rd['mashup_seconds']:.1f} s, "
            f"{rd['cues_with_partner']}/{rd['cues']} phrases layered, {sec['render_mashup']:.1f} s)"
            f"\ncue sheet     {rd['plan']}",
            soft_wrap=True,
        )
    out.print(
        f"Next: cratedig match {q['path']} --db sqlite:///{Path(r['db']).resolve()}",
        soft_wrap=True,
    )


def _short_key(key) -> str:  # key: theory.Key
    return f"{key.name}{'m' if key.mode == 'minor' else ''} {key.camelot}"


def _mark(ok: bool, text: str) -> str:
    return f"[green]{text}[/green]" if ok else f"[red]{text} ✗[/red]"


def _print_analysis(a) -> None:  # a: TrackAnalysis
    out.print(
        f"[bold]{shown(a.path)}[/bold]  {a.tempo:.2f} BPM  {a.time_signature[0]}/{a.time_signature[1]}  "
        f"{a.key} ([bold]{a.camelot}[/bold], clarity {a.key_clarity:.2f})  "
        f"{_clock(a.duration)}  {a.loudness:.1f} LUFS  tuning {a.tuning:+.0f} c  id {a.track_id}",
        soft_wrap=True,  # a long path must stay whole (and copyable) on one line
    )
    for doubt in a.doubts():
        out.print(f"  [yellow]? {shown(doubt)}[/yellow]")
    table = Table(show_edge=False)
    for col in ("#", "time", "bars", "label", "key", "BPM", "energy", "LUFS"):
        table.add_column(col, justify="right" if col not in ("label", "key") else "left")
    for s in a.segments:
        table.add_row(
            str(s.index),
            f"{_clock(s.start)}–{_clock(s.end)}",
            f"{s.bar}+{s.bars}",
            s.label,
            f"{s.key.name} {s.key.mode[:3]} {s.key.camelot}",
            f"{s.tempo:.1f}",
            f"{s.features.energy:.2f}",
            f"{s.features.loudness:.1f}",
        )
    out.print(table)


def _clock(seconds: float) -> str:
    m, s = divmod(round(max(seconds, 0.0), 1), 60)
    return f"{int(m)}:{s:04.1f}"


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    """Console-script entry point: known errors become one line and exit status 1."""
    try:
        app()
    except CratedigError as exc:
        if _verbose:
            raise
        err.print(f"[red]error:[/red] {shown(exc)}", soft_wrap=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


_register_commands()

if __name__ == "__main__":
    main()
