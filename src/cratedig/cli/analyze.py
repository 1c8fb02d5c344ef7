"""``cratedig analyze``: analyse files without a database. Parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cratedig.cli._options import (
    MAX_DURATION_DEFAULT,
    BeatsPerBarOption,
    BpmOption,
    BpmRangeOption,
    DownbeatOption,
    IgnoreTagsOption,
    MaxDurationOption,
    bpm_range,
    clock,
    err,
    grid_hint,
    out,
    shown,
    spinner,
)
from cratedig.errors import AudioError


def analyze_command(
    files: Annotated[list[Path], typer.Argument(help="Audio files to analyse.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per file, one per line.")
    ] = False,
    features: Annotated[
        bool, typer.Option("--features", help="Include per-segment feature vectors in the JSON.")
    ] = False,
    max_duration: MaxDurationOption = MAX_DURATION_DEFAULT,
    bpm: BpmOption = None,
    downbeat: DownbeatOption = None,
    beats_per_bar: BeatsPerBarOption = None,
    ignore_tags: IgnoreTagsOption = False,
    bpm_range_text: BpmRangeOption = None,
    rekordbox: Annotated[
        Path | None,
        typer.Option(
            "--rekordbox",
            help="Also write the analysed files as a rekordbox XML collection here "
            "(beat grids, keys, section cues; - for standard output).",
        ),
    ] = None,
) -> None:
    """Analyse audio files (no database): tempo, key, beats, downbeats, phrases, sections."""
    from cratedig.analysis.pipeline import analyze_file
    from cratedig.audio.decode import check_max_duration
    from cratedig.errors import OutputError
    from cratedig.fileio import check_output

    check_max_duration(max_duration)
    hint = grid_hint(bpm, downbeat, beats_per_bar)
    given_range = bpm_range(bpm_range_text)
    tempo_range = given_range if isinstance(given_range, tuple) else None  # "off": none
    if rekordbox is not None:
        if str(rekordbox) == "-" and json_out:
            raise OutputError("--rekordbox - and --json both want standard output: name a file")
        check_output(rekordbox, example="rekordbox.xml")  # refused before any work
    done: list[tuple[Any, str]] = []
    failures = 0
    for path in files:
        try:
            with spinner(not json_out, f"analysing {shown(path)}"):
                result = analyze_file(
                    path,
                    max_duration=max_duration,
                    hint=hint,
                    use_tags=not ignore_tags,
                    bpm_range=tempo_range,
                )
        except (AudioError, OSError) as exc:
            failures += 1
            if isinstance(exc, OSError):  # a file that vanished or became unreadable mid-way
                exc = AudioError(f"cannot read ({exc.strerror or exc})", str(path))
            if json_out:
                print(json.dumps({"path": str(path), "error": exc.reason}), flush=True)
            else:
                err.print(f"[red]error[/red] {shown(path)}: {shown(exc.reason)}", soft_wrap=True)
            continue
        done.append((result, str(path.resolve())))
        if json_out:
            print(json.dumps(result.to_json(features=features)), flush=True)
        elif str(rekordbox) != "-":
            _print_analysis(result)
    if rekordbox is not None and done:
        from cratedig.library.rekordbox import write_collection

        report = write_collection(done, rekordbox)
        if report.path != "-" and not json_out:
            out.print(
                f"rekordbox collection: {report.files} files, {report.tempo_marks} tempo marks, "
                f"{report.cues} section cues -> {shown(report.path)}",
                soft_wrap=True,
            )
    if failures and failures == len(files):
        raise typer.Exit(1)


def _print_analysis(a: Any) -> None:  # a: TrackAnalysis
    # The key's confidence (what the doubt lines use), not its clarity: the clarity is one of
    # the two cues of the confidence and alone read "1.00" beside a doubt at 0.30.
    key_conf = (a.estimates.get("key") or {}).get("confidence", a.key_clarity)
    out.print(
        f"[bold]{shown(a.path)}[/bold]  {a.tempo:.2f} BPM  "
        f"{a.time_signature[0]}/{a.time_signature[1]}  "
        f"{a.key} ([bold]{a.camelot}[/bold], confidence {key_conf:.2f})  "
        f"{clock(a.duration)}  {a.loudness:.1f} LUFS  tuning {a.tuning:+.0f} c  id {a.track_id}",
        soft_wrap=True,  # a long path must stay whole (and copyable) on one line
    )
    given = (a.estimates.get("grid") or {}).get("given")
    if given:
        from cratedig.analysis.rhythm import GridHint

        out.print(f"  grid as you gave it: {GridHint.from_json(given).describe()}")
    loop = (a.estimates.get("grid") or {}).get("loop")
    if loop:
        n = int(loop["bars"])
        out.print(
            f"  a loop of {n} bar{'s' if n > 1 else ''}: tempo from its length, bar 1 at its start"
        )
    _print_tags(a)
    _print_range(a)
    for doubt in a.doubts():
        out.print(f"  [yellow]? {shown(doubt)}[/yellow]")
    table = Table(show_edge=False)
    for col in ("#", "time", "bars", "label", "key", "BPM", "energy", "LUFS"):
        table.add_column(col, justify="right" if col not in ("label", "key") else "left")
    for s in a.segments:
        table.add_row(
            str(s.index),
            f"{clock(s.start)}–{clock(s.end)}",
            f"{s.bar}+{s.bars}",
            s.label,
            f"{s.key.name} {s.key.mode[:3]} {s.key.camelot}",
            f"{s.tempo:.1f}",
            f"{s.features.energy:.2f}",
            f"{s.features.loudness:.1f}",
        )
    out.print(table)
    if a.sections:
        sections = Table(show_edge=False)
        for col in ("section", "time", "bars", "group", "boundary"):
            sections.add_column(col, justify="left" if col in ("section", "group") else "right")
        for x in a.sections:
            sections.add_row(
                x.label,
                f"{clock(x.start)}–{clock(x.end)}",
                f"{x.bar}+{x.bars}",
                x.group,
                "start" if x.index == 0 else f"{x.confidence:.2f}",
            )
        out.print(sections)


def _print_range(a: Any) -> None:  # a: TrackAnalysis
    """What the BPM range did, where it moved the tempo or could not."""
    r = (a.estimates.get("tempo") or {}).get("range") or {}
    if not r:
        return
    lo, hi = r["range"]
    if r["used"] and abs(r["bpm"] - r["heard"]) > 0.01:
        out.print(
            f"  tempo {r['bpm']:.2f} in your BPM range {lo:g}-{hi:g}; the audio alone reads "
            f"{r['heard']:.2f}"
        )
    elif not r["used"]:
        from cratedig.analysis.rhythm import in_bpm_range

        octaves = [r["heard"] * 2.0**k for k in (-2, -1, 1, 2)]
        why = (
            "the audio does not hold its octave there"
            if any(in_bpm_range(t, lo, hi) for t in octaves)
            else "no octave of it lies in it (a range narrower than an octave)"
        )
        out.print(
            f"  [yellow]? {r['heard']:.2f} BPM lies outside your BPM range {lo:g}-{hi:g}: "
            f"{why}[/yellow]"
        )


def _print_tags(a: Any) -> None:  # a: TrackAnalysis
    """The file's tags in one line, and where their BPM or key (or those its name states)
    disagree with the analysis or decided it."""
    from cratedig.audio.tags import file_tags

    tags = file_tags(a.path)
    if not tags:
        return
    words = [str(tags[k]) for k in ("artist", "title", "album", "genre", "year") if k in tags]
    if words:
        out.print(f"  tags: {shown(' · '.join(words))}", highlight=False)
    named = tags.get("from_name") or []
    bpm = tags.get("bpm")
    followed = (a.estimates.get("tempo") or {}).get("tags") or {}
    if followed.get("used") and followed.get("relation") != "1:1":
        where = "the file's name" if followed.get("source") == "name" else "the file's BPM tag"
        out.print(
            f"  tempo {followed['bpm']:g} from {where}, {followed['relation']} of the "
            f"{followed['heard']:.2f} the audio alone reads (--ignore-tags to keep that)"
        )
    elif bpm and not any(abs(bpm / a.tempo / m - 1.0) <= 0.04 for m in (0.5, 1.0, 2.0)):
        says = "the file's name says" if "bpm" in named else "the file's tags say"
        why = " (not a reading the audio allows)" if followed else ""
        out.print(f"  [yellow]? {says} {bpm:g} BPM{why}[/yellow] (--bpm {bpm:g} to use it)")
    key_tag = (a.estimates.get("key") or {}).get("tags") or {}
    if key_tag.get("used") and key_tag.get("heard") != a.camelot:
        where = "the file's name" if key_tag.get("source") == "name" else "the file's key tag"
        out.print(
            f"  key {a.camelot} from {where}; the audio alone reads "
            f"{key_tag['heard']} (--ignore-tags to keep that)"
        )
    elif tags.get("key") and tags["key"] != a.camelot:
        says = "the file's name says" if "key" in named else "the file's tags say"
        why = " (not a reading the audio allows)" if key_tag else ""
        out.print(f"  [yellow]? {says} key {tags['key']}{why}, the analysis {a.camelot}[/yellow]")


def register(app: typer.Typer) -> None:
    """Add ``analyze`` to ``app``."""
    app.command("analyze")(analyze_command)
