"""What every command module shares: the consoles, the options, small formatters.

The limits' defaults come from where the library defines them (one place each): the largest
pitch shift and time-stretch from :mod:`cratedig.match.scoring`, the longest file from
:mod:`cratedig.audio.decode`.
"""

from __future__ import annotations

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
from rich.text import Text

from cratedig.audio.decode import MAX_DURATION
from cratedig.errors import ParameterError
from cratedig.match.query import MAX_SHIFT_BOUND, MAX_STRETCH_BOUND
from cratedig.match.scoring import DEFAULT_MAX_SHIFT, DEFAULT_MAX_STRETCH
from cratedig.render.service import MAX_OFFSET_BEATS
from cratedig.workflows import DEFAULT_PER_TRACK, DEFAULT_TOP

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


#: ``render`` and ``rate``: how many of the candidate's beats it starts later.
OffsetBeatsOption = Annotated[
    int,
    typer.Option(
        "--offset-beats",
        min=-MAX_OFFSET_BEATS,
        max=MAX_OFFSET_BEATS,
        help="Start the candidate this many of its beats later (earlier if negative): a nudge "
        "where its bar lines are unsure (2 = half a bar of 4/4). For `rate`: the nudge heard.",
    ),
]
IgnoreTagsOption = Annotated[
    bool,
    typer.Option(
        "--ignore-tags",
        help="Let the audio alone decide tempo and key (by default a file's BPM and key "
        "tags pick among the readings the audio allows, e.g. 140 over 105).",
    ),
]


def _check_bpm_range(text: str | None) -> str | None:
    try:
        bpm_range(text)
    except ParameterError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text


BpmRangeOption = Annotated[
    str | None,
    typer.Option(
        "--bpm-range",
        metavar="LO-HI",
        callback=_check_bpm_range,
        help="Your BPM range, as DJ programs have it (e.g. 70-140 for hip-hop, 88-175 for "
        "drum and bass): a tempo outside it is read at its octave inside it where the audio "
        "holds that level. --bpm and a file's BPM tag win. ingest keeps it in the library "
        "for later ingests (off clears it).",
    ),
]
MaxDurationOption = Annotated[
    float, typer.Option("--max-duration", help="Refuse files longer than this many seconds.")
]
MaxShiftOption = Annotated[
    int,
    typer.Option("--max-shift", min=0, max=MAX_SHIFT_BOUND, help="Largest pitch shift, semitones."),
]
MaxStretchOption = Annotated[
    float,
    typer.Option(
        "--max-stretch",
        min=0.0,
        max=MAX_STRETCH_BOUND,
        help="Largest time-stretch (0.08 = 8 %).",
    ),
]
TopOption = Annotated[int, typer.Option("--top", "-k", min=1, help="Candidates per segment.")]
BpmOption = Annotated[
    float | None,
    typer.Option(
        "--bpm",
        min=30.0,
        max=300.0,
        help="The tempo you know (e.g. an acapella labelled 124 BPM): the beat grid is fitted "
        "at it instead of the analysed tempo.",
    ),
]


def parse_time(text: str) -> float:
    """Seconds from ``"65.32"``, ``"1:05.32"`` or ``"1:02:03"`` (as DJ software shows times);
    :class:`typer.BadParameter` otherwise.

    >>> parse_time("1:05.5"), parse_time("0.52"), parse_time("1:00:00")
    (65.5, 0.52, 3600.0)
    """
    parts = str(text).strip().split(":")
    try:
        if len(parts) > 3 or not all(parts):
            raise ValueError
        values = [float(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time (seconds, or m:ss.s)") from None
    if (
        any(v < 0 for v in values)
        or any(v >= 60 for v in values[1:])
        or not all(v == v and v != float("inf") for v in values)
    ):
        raise typer.BadParameter(f"{text!r} is not a time (seconds, or m:ss.s)")
    total = 0.0
    for v in values:
        total = total * 60.0 + v
    return total


DownbeatOption = Annotated[
    float | None,
    typer.Option(
        "--downbeat",
        parser=parse_time,
        metavar="TIME",
        help="A time where a bar starts, as you hear it (seconds, or m:ss.s): beat 1 of the "
        "bars is put there (the whole grid moves onto it if the analysis had the off-beats).",
    ),
]
BeatsPerBarOption = Annotated[
    int | None,
    typer.Option("--beats-per-bar", min=3, max=4, help="Beats per bar you know: 3 or 4."),
]

#: Re-exported defaults so that command modules name them, not numbers.
MAX_DURATION_DEFAULT: float = MAX_DURATION
MAX_SHIFT_DEFAULT: int = DEFAULT_MAX_SHIFT
MAX_STRETCH_DEFAULT: float = DEFAULT_MAX_STRETCH
TOP_DEFAULT: int = DEFAULT_TOP
PER_TRACK_DEFAULT: int = DEFAULT_PER_TRACK


def shown(text: object) -> str:
    """``text`` (a path, a reason quoting one) safe for the terminal and for Rich markup."""
    from cratedig.text import printable

    return escape(printable(text))


def cents_text(cents: float) -> str:
    """`` +38 ct`` for a tuning correction, empty for none."""
    return f" {cents:+.0f} ct" if cents else ""


def clock(seconds: float) -> str:
    """``m:ss.s`` for a time in seconds."""
    m, s = divmod(round(max(seconds, 0.0), 1), 60)
    return f"{int(m)}:{s:04.1f}"


def stem_list(text: str | None) -> list[str] | None:
    """``"drums, bass"`` -> ``["drums", "bass"]``; None or empty -> None."""
    if not text:
        return None
    return [s.strip().lower() for s in text.split(",") if s.strip()]


def make_executor(workers: int, dask: str | None) -> Any:
    from cratedig.compute import make_executor as make

    return make(workers, dask)


class _RateColumn(ProgressColumn):
    """Tracks per second over Rich's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            f"{speed:.2f} tracks/s" if speed else "-- tracks/s", style="progress.data.speed"
        )


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Any]:
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


class null_context:
    """A context manager that does nothing (a spinner's stand-in under ``--json``)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def spinner(enabled: bool, text: str) -> Any:
    """A Rich spinner on stderr, or nothing."""
    return err.status(text, spinner="dots") if enabled else null_context()


def bpm_range(text: str | None) -> tuple[float, float] | str | None:
    """``--bpm-range LO-HI`` as ``(lo, hi)``, ``off`` (or ``none``) as ``"off"``; a clear error
    for anything else (:func:`cratedig.analysis.rhythm.parse_bpm_range`)."""
    from cratedig.analysis.rhythm import parse_bpm_range

    return parse_bpm_range(text)


def grid_hint(bpm: float | None, downbeat: float | None, beats_per_bar: int | None) -> Any:
    """The :class:`~cratedig.analysis.rhythm.GridHint` of the grid options, or None when none
    is given."""
    if bpm is None and downbeat is None and beats_per_bar is None:
        return None
    from cratedig.analysis.rhythm import GridHint

    return GridHint(bpm=bpm, downbeat=downbeat, beats_per_bar=beats_per_bar)
