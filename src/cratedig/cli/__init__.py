"""The ``cratedig`` command line: parse, call :mod:`cratedig.workflows`, print. Nothing else.

One module per command group (``analyze``, ``demo``, ``learn``, ``library``, ``match``,
``render``, ``ratings``, ``serve``, ``watch``), each with a ``register(app)``; what they share is in
:mod:`._options`. No command module imports another.

Known errors (:class:`~cratedig.errors.CratedigError`) become one line on stderr and exit 1;
tracebacks only with ``-v``.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from cratedig import __version__
from cratedig.cli import analyze, demo, learn, library, match, ratings, render, serve, watch
from cratedig.cli._options import err, out, shown
from cratedig.errors import CratedigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cratedig",
    help="Find the pieces of songs that mix: tempo, key, bars, phrases, sections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_verbose = False


def _print_version(value: bool) -> None:
    if value:
        out.print(f"cratedig {__version__}")
        raise typer.Exit()


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


for _group in (analyze, demo, learn, library, match, render, ratings, serve, watch):
    _group.register(app)


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
