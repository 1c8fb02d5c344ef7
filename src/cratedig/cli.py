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
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if version:
        out.print(f"cratedig {__version__}")
        raise typer.Exit()


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

    failures = 0
    for path in files:
        try:
            with err.status(f"analysing {path}", spinner="dots") if not json_out else _null():
                result = analyze_file(path, max_duration=max_duration)
        except AudioError as exc:
            failures += 1
            if json_out:
                print(json.dumps({"path": str(path), "error": exc.reason}), flush=True)
            else:
                err.print(f"[red]error[/red] {path}: {exc.reason}")
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
    n: Annotated[int, typer.Option("--n", help="Number of songs.")] = 6,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Synthesize a small library with known tempo and key, analyse it, print truth vs estimate."""
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.synth import demo_library
    from cratedig.theory import Key

    with err.status(f"synthesizing {n} songs into {folder}", spinner="dots"):
        truth = demo_library(folder, n=n, seed=seed)
    rows = []
    for t in truth:
        with err.status(f"analysing {t['path']}", spinner="dots"):
            a = analyze_file(t["path"])
        true_key = Key.parse(f"{t['key']} {t['mode']}")
        rows.append(
            {
                "path": str(t["path"]),
                "true_tempo": t["tempo"],
                "tempo": round(a.tempo, 2),
                "true_key": _short_key(true_key),
                "key": _short_key(a.key),
                "true_meter": t["meter"],
                "meter": a.time_signature[0],
                "segments": len(a.segments),
                "sections": len(a.sections),
                "tempo_ok": abs(a.tempo / t["tempo"] - 1) <= 0.04,
                "key_ok": a.key == true_key,
            }
        )
    if json_out:
        print(json.dumps({"folder": str(folder), "tracks": rows}))
        return
    table = Table(title=f"cratedig demo: {len(rows)} synthesized songs in {folder}/")
    for col in ("file", "BPM", "found", "key", "found", "meter", "phrases"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(
            Path(r["path"]).name,
            f"{r['true_tempo']:.1f}",
            _mark(r["tempo_ok"], f"{r['tempo']:.2f}"),
            r["true_key"],
            _mark(r["key_ok"], r["key"]),
            f"{r['meter']}/4" + ("" if r["meter"] == r["true_meter"] else " ✗"),
            str(r["segments"]),
        )
    out.print(table)
    good = sum(r["tempo_ok"] and r["key_ok"] for r in rows)
    out.print(
        f"{good}/{len(rows)} songs with tempo and key right. "
        f"Try: cratedig analyze {rows[0]['path']}"
    )


def _short_key(key) -> str:  # key: theory.Key
    return f"{key.name}{'m' if key.mode == 'minor' else ''} {key.camelot}"


def _mark(ok: bool, text: str) -> str:
    return f"[green]{text}[/green]" if ok else f"[red]{text} ✗[/red]"


def _print_analysis(a) -> None:  # a: TrackAnalysis
    out.print(
        f"[bold]{a.path}[/bold]  {a.tempo:.2f} BPM  {a.time_signature[0]}/{a.time_signature[1]}  "
        f"{a.key} ([bold]{a.camelot}[/bold], clarity {a.key_clarity:.2f})  "
        f"{_clock(a.duration)}  {a.loudness:.1f} LUFS  tuning {a.tuning:+.0f} c  id {a.track_id}"
    )
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
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


_register_commands()

if __name__ == "__main__":
    main()
