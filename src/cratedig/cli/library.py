"""Library commands: ``ingest``, ``stats``, ``tracks``, ``regrid``, ``export-slices``,
``export-rekordbox``, ``import-rekordbox``, ``prune``. Parse, call, print.

``ingest`` is :func:`cratedig.workflows.update_library`: the ingest, then the match index and
segment clusters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cratedig.cli._options import (
    MAX_DURATION_DEFAULT,
    BeatsPerBarOption,
    BpmOption,
    BpmRangeOption,
    DaskOption,
    DbOption,
    DownbeatOption,
    IgnoreTagsOption,
    JsonOption,
    MaxDurationOption,
    WorkersOption,
    bpm_range,
    clock,
    err,
    grid_hint,
    make_executor,
    out,
    progress_bar,
    shown,
    spinner,
)


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
    max_duration: MaxDurationOption = MAX_DURATION_DEFAULT,
    ignore_tags: IgnoreTagsOption = False,
    bpm_range_text: BpmRangeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Analyse new and changed audio under FOLDER into the library (resumable: run it again)."""
    from cratedig import workflows
    from cratedig.library.db import open_library
    from cratedig.library.errors import LibraryError
    from cratedig.library.ingest import IngestInterrupted

    tempo_range = bpm_range(bpm_range_text)
    if not folder.exists():
        raise LibraryError(f"{folder}: no such folder")
    with open_library(db) as lib, make_executor(workers, dask) as executor:
        if not json_out:
            err.print(f"library: {lib.shown_url}  analysis: {executor.describe()}", soft_wrap=True)
        try:
            with progress_bar(not json_out, "ingesting") as progress:
                update = workflows.update_library(
                    lib,
                    folder,
                    executor=executor,
                    slices_dir=slices,
                    slice_fmt=slice_format,
                    retry_failed=retry_failed,
                    max_duration=max_duration,
                    use_tags=not ignore_tags,
                    bpm_range=tempo_range,
                    progress=progress,
                )
        except IngestInterrupted as exc:
            _print_ingest(exc.report, json_out)
            err.print("interrupted: everything above is saved; run the same command to resume")
            raise typer.Exit(130) from exc
    if not json_out:
        idx, cl = update.index, update.clusters
        err.print(
            f"match index: {idx.segments} segments (+{idx.added_tracks}/-{idx.removed_tracks} "
            f"tracks); clusters: "
            + (
                cl.skipped
                or f"k={cl.k}, {cl.assigned} segments {'fitted' if cl.fitted else 'assigned'}"
            ),
            soft_wrap=True,
        )
    _print_ingest(update.ingest, json_out, update.to_json(), update.same_recording)


def _print_ingest(
    report: Any,
    json_out: bool,
    whole: dict[str, Any] | None = None,
    same_recording: list[dict[str, Any]] | None = None,
) -> None:
    if json_out:
        print(json.dumps(whole or report.to_json()), flush=True)
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
    if report.bpm_range is not None:
        lo, hi = report.bpm_range
        t.add_row("BPM range", f"{lo:g}-{hi:g} (kept by the library; --bpm-range off clears it)")
    if report.refolded:
        t.add_row("read again", f"{report.refolded} (for the BPM range)")
    if report.moved:
        t.add_row("moved/renamed", f"{len(report.moved)} (not analysed again)")
    if report.duplicates:
        t.add_row("duplicates", f"{len(report.duplicates)} (exact copies of a known track)")
    copies = {c["track_id"] for c in same_recording or [] if not c.get("edit")}
    edits = {c["track_id"] for c in same_recording or [] if c.get("edit")} - copies
    if copies:
        t.add_row(
            "same recording",
            f"{len(copies)} (another file of a recording the library holds: `cratedig duplicates`)",
        )
    if edits:
        t.add_row(
            "edits",
            f"{len(edits)} (an edit of a recording the library holds, a radio edit or an "
            "extended mix: kept, never paired with it)",
        )
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
    for c in (same_recording or [])[:50]:
        what, sign = ("an edit", "~") if c.get("edit") else ("same recording", "=")
        out.print(
            f"  [yellow]{what}[/yellow] {shown(c['path'])} {sign} {shown(c['same_as_path'])}",
            soft_wrap=True,
        )
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
        url = lib.shown_url
    if json_out:
        print(json.dumps({**st.to_json(), "db": url, "db_bytes": size}), flush=True)
        return
    t = Table(title=f"library {url}", show_header=False, box=None)
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
    t.add_row("quality", ", ".join(f"{k} {v}" for k, v in st.quality.items()) or "-")
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
    text: Annotated[
        str | None,
        typer.Option("--text", "-q", help="Only tracks with this text in the path or the tags."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    sort: Annotated[
        str, typer.Option("--sort", help="tempo (default), name, camelot, energy or duration.")
    ] = "tempo",
    desc: Annotated[bool, typer.Option("--desc", help="Descending.")] = False,
    quality: Annotated[
        str | None,
        typer.Option("--quality", help="low: only suspect tracks, with the reasons; ok: the rest."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="loops: only loops (a sample pack's); songs: the rest."),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List tracks, optionally by key, tempo range, text, kind and input quality, slowest
    first (or ``--sort``)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db, create=False) as lib:
        rows, total = workflows.list_tracks(
            lib, key=key, bpm=bpm, text=text, limit=limit, offset=offset, quality=quality,
            sort=sort, descending=desc, kind=kind,
        )  # fmt: skip
    if json_out:
        print(json.dumps({"tracks": rows, "total": total}), flush=True)
        return
    t = Table(title=f"{len(rows)} of {total} tracks")
    for col in ("id", "BPM", "key", "meter", "length", "energy", "phrases", "quality", "track"):
        t.add_column(
            col, justify="right" if col in ("BPM", "length", "energy", "phrases") else "left"
        )
    for r in rows:
        m, sec = divmod(int(round(r["duration"])), 60)
        path = r["path"] + (f" (+{r['paths'] - 1})" if r["paths"] > 1 else "")
        t.add_row(
            r["track_id"],
            f"{r['tempo']:.1f}" + ("*" if r["grid_given"] else ""),
            f"{r['camelot']} {r['key']} {r['mode'][:3]}",
            f"{r['time_signature'][0]}/{r['time_signature'][1]}"
            + (f" loop {r['loop_bars']}" if r.get("loop_bars") else ""),
            f"{m}:{sec:02d}",
            f"{r['energy']:.2f}",
            str(r["segments"]),
            _quality_cell(r["quality"], reasons=quality == "low"),
            _track_cell(r["tags"], path, with_path=out.width >= WIDE_TABLE),
        )
    out.print(t)
    if any(r["grid_given"] for r in rows):
        out.print("* the grid you gave (`cratedig regrid`)")


#: Terminal width from which a tagged track's path is shown under its name.
WIDE_TABLE = 120


def _track_cell(tags: dict[str, Any], path: str, *, with_path: bool) -> str:
    """A track's table cell: "Artist – Title" from its tags (with its path below in a wide
    terminal), else its path."""
    from cratedig.workflows import tag_name

    name = tag_name(tags)
    if name:
        return shown(name) + (f"\n[dim]{shown(path)}[/dim]" if with_path and path else "")
    return shown(path) if path else "[dim](no file)[/dim]"


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

    with open_library(db, create=False) as lib, make_executor(workers, dask) as executor:
        with progress_bar(not json_out, "slicing") as progress:
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


def export_rekordbox_command(
    out_file: Annotated[
        Path, typer.Argument(help="The rekordbox XML file to write (- for standard output).")
    ],
    hot_cues: Annotated[
        bool,
        typer.Option("--hot-cues", help="Also set hot cues A-H on the first eight sections."),
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write the library as a rekordbox XML collection: beat grids, keys and a cue at every
    section, for rekordbox and the tools that read its format."""
    from cratedig.library.db import open_library
    from cratedig.library.rekordbox import export_rekordbox

    with open_library(db, create=False) as lib:
        report = export_rekordbox(lib, out_file, hot_cues=hot_cues)
    if json_out:
        print(json.dumps(report.to_json()), file=sys.stderr if report.path == "-" else sys.stdout)
        return
    say = err if report.path == "-" else out
    say.print(
        f"{report.files} files of {report.tracks} tracks written to {shown(report.path)}: "
        f"beat grids ({report.tempo_marks} tempo marks), keys, {report.cues} section cues"
    )
    for path in report.missing:
        say.print(f"  [yellow]left out[/yellow] {shown(path)}: no longer on disk", soft_wrap=True)
    say.print(
        "In rekordbox: Preferences > Advanced > Database > rekordbox xml > Imported Library: "
        "this file; then Preferences > View > Layout > rekordbox xml shows it in the tree."
    )


def import_rekordbox_command(
    collection: Annotated[
        Path,
        typer.Argument(help="A rekordbox XML collection (File > Export Collection in xml format)."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change nothing.")
    ] = False,
    max_duration: MaxDurationOption = MAX_DURATION_DEFAULT,
    workers: WorkersOption = 1,
    dask: DaskOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Take the beat grids you set in rekordbox: each library track whose grid there differs
    from cratedig's is analysed again on rekordbox's tempo, bar line and meter, and keeps them
    (as `regrid`)."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    with open_library(db, create=False) as lib, make_executor(workers, dask) as executor:
        with progress_bar(not json_out, "grids") as on_event:
            rows = workflows.import_rekordbox_grids(
                lib, collection, dry_run=dry_run, max_duration=max_duration, executor=executor,
                progress=on_event,
            )  # fmt: skip
    if json_out:
        print(json.dumps({"tracks": rows}), flush=True)
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["action"]] = counts.get(r["action"], 0) + 1
        if r["action"] in ("regridded", "would regrid", "failed"):
            b, a = r.get("before"), r.get("after")
            change = (
                f"{b['tempo']:.2f} -> {a['tempo']:.2f} BPM, first bar "
                f"{clock(b['first_downbeat'] or 0)} -> {clock(a['first_downbeat'] or 0)}"
                if b and a
                else r.get("reason", "")
            )
            out.print(f"  {r['action']:<12} {shown(r['path'])}  {shown(change)}", soft_wrap=True)
    out.print(
        f"{len(rows)} rekordbox grids: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + (" (dry run: nothing changed)" if dry_run else "")
    )


def duplicates_command(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Recordings the library holds more than once (the FLAC and the MP3 of a song...), by
    audio fingerprint, with the copy to keep (the best-sounding) named first; and edits of
    one recording (a radio edit and the extended mix), which you keep and match never pairs."""
    from cratedig.library.db import open_library
    from cratedig.library.duplicates import library_duplicates, versions_of

    with open_library(db, create=False) as lib:
        found = library_duplicates(lib)
    if json_out:
        print(json.dumps(found.to_json()), flush=True)
        return
    groups = found.groups
    extra = sum(len(g.copies) - 1 for g in groups)
    out.print(
        f"{len(groups)} recording{'' if len(groups) == 1 else 's'} held more than once "
        f"({extra} cop{'y' if extra == 1 else 'ies'} to spare) among "
        f"{found.tracks} tracks",
        soft_wrap=True,
    )
    if found.without_fingerprint:
        out.print(
            f"[yellow]{found.without_fingerprint} tracks were analysed by an older cratedig and have no "
            "fingerprint yet: `cratedig ingest FOLDER` brings them up to date[/yellow]",
            soft_wrap=True,
        )
    for g in groups:
        out.print("")
        for k, c in enumerate(g.copies):
            mark = "[green]keep[/green]" if k == 0 else "copy"
            out.print(
                f"  {mark}  {shown(c.path)}  [dim]{shown(c.summary)}; {c.duration:.1f} s; "
                f"id {c.track_id}[/dim]",
                soft_wrap=True,
            )
    families = versions_of(found.edits)
    if families:
        n = len(families)
        out.print(
            f"\n{n} recording{'' if n == 1 else 's'} held in edited versions (a radio edit, "
            "an extended mix...; all kept, match never pairs them):",
            soft_wrap=True,
        )
    for family in families:
        out.print("")
        for c in family:
            out.print(f"  {shown(c.path)}  [dim]{c.duration:.1f} s; id {c.track_id}[/dim]",
                      soft_wrap=True)  # fmt: skip
    inside = [e for e in found.edits if e.inside]
    if inside:
        out.print("")
    for e in inside:
        out.print(
            f"  {shown(e.shorter.path)} [dim]({e.shorter.duration:.1f} s)[/dim] is heard inside "
            f"{shown(e.longer.path)} [dim]({e.longer.duration:.1f} s; never paired)[/dim]",
            soft_wrap=True,
        )


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


def regrid_command(
    track: Annotated[str, typer.Argument(help="A library track id (or prefix), or its file.")],
    bpm: BpmOption = None,
    downbeat: DownbeatOption = None,
    beats_per_bar: BeatsPerBarOption = None,
    clear: Annotated[
        bool,
        typer.Option("--clear", help="Forget the grid given before: the analysis' own again."),
    ] = False,
    max_duration: MaxDurationOption = MAX_DURATION_DEFAULT,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Fix a track's beat grid: analyse it again at the tempo, bar line and meter you give,
    and keep them for it (every later re-analysis lays the same grid). What you give adds to
    what you gave before (--bpm, then --downbeat); --clear forgets it all."""
    from cratedig import workflows
    from cratedig.errors import ParameterError
    from cratedig.library.db import open_library

    hint = grid_hint(bpm, downbeat, beats_per_bar)
    if (hint is None) == (not clear):
        raise ParameterError(
            "give what you know of the grid (--bpm, --downbeat, --beats-per-bar), or --clear "
            "to go back to the analysis' own grid"
        )
    with open_library(db, create=False) as lib:
        with spinner(not json_out, f"analysing {track} again"):
            done = workflows.regrid(lib, track, hint, max_duration=max_duration)
    if json_out:
        print(json.dumps(done.to_json()), flush=True)
        return
    b, a = done.before, done.after

    def grid(x: dict[str, Any]) -> str:
        first = x["first_downbeat"]
        bar = f"first bar at {clock(first)}" if first is not None else "no bar lines"
        return f"{x['tempo']:.2f} BPM, {x['beats_per_bar']}/4, {bar}, {x['segments']} phrases"

    out.print(f"[bold]{shown(done.path)}[/bold]  id {done.track_id}", soft_wrap=True)
    out.print(f"  before: {grid(b)}")
    out.print(f"  now:    {grid(a)}")
    if done.given:
        from cratedig.analysis.rhythm import GridHint

        out.print(f"  kept for this track: {GridHint.from_json(done.given).describe()}")
    else:
        out.print("  the analysis' own grid; nothing kept")
    r = done.ratings
    if any(r.values()):
        out.print(
            f"  ratings: {r['kept']} unchanged, {r['moved']} followed their music, "
            f"{r['orphaned']} orphaned (`cratedig ratings --orphaned`)"
        )


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``stats``, ``tracks``, ``regrid``, ``export-slices``,
    ``export-rekordbox``, ``import-rekordbox``, ``prune`` and ``duplicates`` to ``app``."""
    app.command("ingest")(ingest_command)
    app.command("stats")(stats_command)
    app.command("tracks")(tracks_command)
    app.command("regrid")(regrid_command)
    app.command("export-slices")(export_slices_command)
    app.command("export-rekordbox")(export_rekordbox_command)
    app.command("import-rekordbox")(import_rekordbox_command)
    app.command("prune")(prune_command)
    app.command("duplicates")(duplicates_command)


def _quality_cell(q: dict[str, Any], *, reasons: bool) -> str:
    """A track's quality flags (or, for ``--quality low``, the reasons), terminal-safe."""
    if reasons:
        text = "; ".join(q.get("reasons", {}).values()) or q.get("level", "-")
    else:
        text = ", ".join(q.get("flags", [])) or q.get("level", "-")
    return shown(text)
