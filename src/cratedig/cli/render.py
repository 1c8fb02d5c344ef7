"""Render commands: ``render`` (a pair preview) and ``mashup`` (a whole song). Parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cratedig.cli._options import (
    MAX_SHIFT_DEFAULT,
    MAX_STRETCH_DEFAULT,
    DbOption,
    JsonOption,
    MaxShiftOption,
    MaxStretchOption,
    OffsetBeatsOption,
    cents_text,
    out,
    shown,
    spinner,
    stem_list,
)

StemsOption = Annotated[
    str | None,
    typer.Option(
        "--stems",
        help="Layer only these stems of the partner, comma-separated (e.g. vocals or drums,bass).",
    ),
]
FormatOption = Annotated[
    str | None, typer.Option("--format", "-f", help="wav, flac or mp3 (default: from -o).")
]


def render_command(
    query_segment: Annotated[str, typer.Argument(help="Query segment id (<trackid>_<n>).")],
    candidate_segment: Annotated[str, typer.Argument(help="Candidate segment id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the preview.")],
    semitones: Annotated[
        float | None,
        typer.Option("--semitones", help="Pitch shift of the candidate (default: the suggested)."),
    ] = None,
    ratio: Annotated[
        float | None,
        typer.Option(
            "--ratio", help="Tempo ratio: 1, 2 (half time) or 0.5 (double); default: suggested."
        ),
    ] = None,
    fmt: FormatOption = None,
    stems: StemsOption = None,
    query_file: Annotated[
        Path | None,
        typer.Option(
            "--query",
            help="The query song's file, when it is not in the library (as `match FILE` saw it).",
        ),
    ] = None,
    offset_beats: OffsetBeatsOption = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Render again.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Hear a suggestion: the candidate stretched onto the query's beats, shifted, mixed."""
    from cratedig import workflows
    from cratedig.fileio import check_output
    from cratedig.library.db import open_library
    from cratedig.render.service import audio_format, check_transform, write_audio

    check_transform(semitones, ratio)
    f = audio_format(fmt, output)
    check_output(output)
    with open_library(db, migrate_schema=False, create=False) as lib:
        with spinner(not json_out and query_file is not None, f"analysing {query_file}"):
            pair = workflows.render_pair(
                lib,
                query_segment,
                candidate_segment,
                semitones=semitones,
                tempo_ratio=ratio,
                stems=stem_list(stems),
                query_file=query_file,
                use_cache=not no_cache,
                offset_beats=offset_beats,
            )
    write_audio(output, pair.audio, pair.sr, f)
    if json_out:
        print(json.dumps({"output": str(output), **pair.to_json()}), flush=True)
        return
    dur = pair.audio.shape[-1] / pair.sr
    how = "from the cache" if pair.cached else f"in {pair.seconds:.2f} s"
    out.print(
        f"wrote {shown(output)}: {dur:.1f} s, candidate {pair.semitones:+g} st"
        f"{cents_text(pair.tuning_cents)}, tempo "
        f"{pair.tempo_ratio:g}:1{', stems ' + ','.join(pair.stems) if pair.stems else ''}"
        f"{f', {pair.offset_beats:+d} beats' if pair.offset_beats else ''} ({how})",
        soft_wrap=True,
    )


def mashup_command(
    query: Annotated[str, typer.Argument(help="An audio file or a library track id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The mix.")] = Path("mashup.wav"),
    plan: Annotated[
        Path | None, typer.Option("--plan", help="Also write the cue sheet (JSON) here.")
    ] = None,
    fmt: FormatOption = None,
    stems: StemsOption = None,
    max_shift: MaxShiftOption = MAX_SHIFT_DEFAULT,
    max_stretch: MaxStretchOption = MAX_STRETCH_DEFAULT,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Only this library track as a partner (a file or track id; repeat for "
            "several): mash the song with it.",
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """A whole-song automatic mashup: a partner for every phrase, layered beat-aligned."""
    from cratedig import workflows
    from cratedig.fileio import check_output, output_path
    from cratedig.library.db import open_library
    from cratedig.render.service import audio_format

    f = audio_format(fmt, output)
    check_output(output)
    if plan is not None:
        check_output(plan, example="plan.json")
    with open_library(db) as lib, spinner(not json_out, "matching and rendering"):
        # Written block by block straight into ``output``: memory does not grow with the song.
        m = workflows.render_mashup(
            lib,
            query,
            output=output,
            fmt=f,
            stems=stem_list(stems),
            max_shift=max_shift,
            max_stretch=max_stretch,
            with_tracks=with_,
        )
    sheet = m.plan.to_json()
    if plan is not None:
        with output_path(plan) as tmp:
            tmp.write_text(json.dumps(sheet, indent=1))
    if json_out:
        print(json.dumps({"output": str(output), "plan_file": str(plan) if plan else None,
                          "render_seconds": round(m.seconds, 3), "plan": sheet,
                          **({"ruled_out": m.ruled_out} if m.ruled_out is not None else {})}),
              flush=True)  # fmt: skip
        return
    dur = m.duration
    out.print(f"wrote {shown(output)}: {dur:.1f} s in {m.seconds:.1f} s", soft_wrap=True)
    for c in m.plan.cues:
        p = c.partner
        section = f"{shown(c.section or ''):6s}"
        if p is None:
            out.print(f"  {c.start:7.1f}–{c.end:6.1f} s  {section} [dim]alone[/dim]")
            continue
        name = Path(p.get("path") or p["track_id"]).name
        theirs = f" ({shown(c.partner_section)})" if c.partner_section else ""
        out.print(
            f"  {c.start:7.1f}–{c.end:6.1f} s  {section} + {shown(name)} "
            f"#{p['segment'].rsplit('_', 1)[-1]}{theirs}"
            f"  {p.get('semitones', 0):+d} st{cents_text(p.get('cents', 0.0))}  score {c.score:.2f}",
            soft_wrap=True,
        )
    for line in m.ruled_out or []:
        out.print(f"[yellow]{shown(line)}[/yellow]", soft_wrap=True)
    for c in m.plan.query.get("same_recording") or []:
        what = (
            "an edit of this recording"
            if c.get("pieces", 1) > 1
            else "this recording in another file"
        )
        out.print(
            f"  [dim]left out: {shown(c.get('path') or c['track_id'])} is {what}[/dim]",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add ``render`` and ``mashup`` to ``app``."""
    app.command("render")(render_command)
    app.command("mashup")(mashup_command)
