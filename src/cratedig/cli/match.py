"""Matching commands: ``match``, ``index``, ``clusters``. Parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cratedig.cli._options import (
    MAX_SHIFT_DEFAULT,
    MAX_STRETCH_DEFAULT,
    PER_TRACK_DEFAULT,
    TOP_DEFAULT,
    BeatsPerBarOption,
    BpmOption,
    DbOption,
    DownbeatOption,
    JsonOption,
    MaxShiftOption,
    MaxStretchOption,
    TopOption,
    cents_text,
    clock,
    grid_hint,
    out,
    shown,
    spinner,
)


def match_command(
    query: Annotated[
        str, typer.Argument(help="An audio file (need not be in the library) or a track id.")
    ],
    top: TopOption = TOP_DEFAULT,
    segment: Annotated[
        int | None, typer.Option("--segment", "-s", min=0, help="Only this query segment (index).")
    ] = None,
    max_shift: MaxShiftOption = MAX_SHIFT_DEFAULT,
    max_stretch: MaxStretchOption = MAX_STRETCH_DEFAULT,
    own: Annotated[
        bool,
        typer.Option("--include-own-track", help="Also suggest segments of the query's own track."),
    ] = False,
    per_track: Annotated[
        int,
        typer.Option(
            "--per-track",
            min=0,
            help="At most this many phrases of one track per segment (0: every phrase).",
        ),
    ] = PER_TRACK_DEFAULT,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Only this library track (a file or track id; repeat for several): where "
            "each of its phrases fits under the query's, all scored.",
        ),
    ] = None,
    bpm: BpmOption = None,
    downbeat: DownbeatOption = None,
    beats_per_bar: BeatsPerBarOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """For each segment of a song, the segments of other songs that mix with it."""
    from cratedig import workflows
    from cratedig.library.db import open_library

    options = workflows.match_options(
        top=top, max_shift=max_shift, max_stretch=max_stretch, segment=segment,
        include_own_track=own, per_track=per_track,
    )  # fmt: skip
    with open_library(db) as lib:
        # Named tracks first: a wrong name fails before the query is analysed.
        partners = workflows.resolve_tracks(lib, with_) if with_ else None
        with spinner(not json_out, f"analysing {query}"):
            analysis, in_library = workflows.resolve_query(
                lib, query, hint=grid_hint(bpm, downbeat, beats_per_bar)
            )
        result = workflows.match(
            lib, analysis, in_library=in_library, top=options.top, max_shift=options.max_shift,
            max_stretch=options.max_stretch, segment=options.segment,
            include_own_track=options.include_own_track, per_track=per_track,
            with_tracks=partners,
        )  # fmt: skip
        names = {} if json_out else workflows.track_names(
            lib, [c["track_id"] for m in result.matches for c in m.candidates]
        )  # fmt: skip
    if json_out:
        print(json.dumps(result.to_json()), flush=True)
        return
    _print_matches(result, names)
    for line in result.ruled_out or []:
        out.print(f"[yellow]{shown(line)}[/yellow]", soft_wrap=True)


def _print_matches(result: Any, names: dict[str, str] | None = None) -> None:
    """The human-readable match; ``names``: "Artist – Title" of candidate tracks by id."""
    names = names or {}
    a = result.analysis
    where = "in the library" if result.in_library else "not in the library"
    out.print(
        f"[bold]{shown(a.path or a.track_id)}[/bold]  {a.tempo:.1f} BPM  {a.key} "
        f"([bold]{a.key.camelot}[/bold])  id {a.track_id} ({where}); "
        f"library: {result.library_segments} segments",
        soft_wrap=True,
    )
    for doubt in a.doubts():
        out.print(f"  [yellow]? {shown(doubt)}[/yellow]", soft_wrap=True)
    if result.library_segments == 0:
        out.print("[yellow]the library is empty: run `cratedig ingest FOLDER` first[/yellow]")
    elif result.stale_tracks:
        out.print(
            f"[yellow]{result.stale_tracks} library tracks were analysed by an older cratedig: "
            "they match on that analysis until `cratedig ingest FOLDER` brings them up to "
            "date[/yellow]",
            soft_wrap=True,
        )
    for t, o in result.same_recording.items():
        what = (
            f"an edit of this recording (fingerprints agree piece by piece, {o.pieces} pieces, "
            if o.edit
            else "this recording in another file (fingerprints agree "
        )
        out.print(
            f"  [dim]left out: {shown(result.same_recording_paths.get(t) or t)} is {what}"
            f"on {o.seconds:.0f} s, {100 * (1 - o.ber):.0f} % of bits)[/dim]",
            soft_wrap=True,
        )
    for m in result.matches:
        q = m.query
        out.print(
            f"\n[bold]segment {q.index}[/bold]  {clock(q.start)}–{clock(q.end)}  {q.label}  "
            f"{q.bars} bars  {q.key.name} {q.key.mode[:3]} {q.key.camelot}  {q.tempo:.1f} BPM"
        )
        if not m.candidates:
            out.print("  [dim]no segment within the tempo and key limits[/dim]")
            continue
        if m.fit == "none":
            out.print("  [yellow]no partner fits well: the best ones are listed anyway[/yellow]")
        for r, c in enumerate(m.candidates, start=1):
            ratio = {1.0: "1:1", 2.0: "2:1", 0.5: "1:2"}.get(
                c["tempo_ratio"], str(c["tempo_ratio"])
            )
            name = names.get(c["track_id"]) or (
                Path(c["path"]).name if c["path"] else c["track_id"]
            )
            out.print(
                f"  {r:>2}. [bold]{shown(name)}[/bold] #{c['segment'].rsplit('_', 1)[-1]} "
                f"{clock(c['start'])}–{clock(c['end'])}  score [bold]{c['score']:.2f}[/bold]  "
                f"{ratio} {100 * c['stretch']:+.1f}%  {c['semitones']:+d} st"
                f"{cents_text(c.get('cents', 0.0))}  "
                f"{c['camelot']} ({c['key_relation']})",
                soft_wrap=True,
            )
            out.print(f"      [dim]{shown(c['reason'])}[/dim]", soft_wrap=True)


def index_command(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from scratch.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Bring the match index up to date with the library (or rebuild it)."""
    from cratedig.library.db import open_library
    from cratedig.match.store import sync_index

    with open_library(db) as lib:
        _, report = sync_index(lib, rebuild=rebuild)
    if json_out:
        print(json.dumps(report.to_json()), flush=True)
        return
    state = "rebuilt" if report.rebuilt else ("updated" if report.written else "up to date")
    out.print(
        f"match index {state}: {report.segments} segments "
        f"(+{report.added_tracks} tracks, -{report.removed_tracks} tracks) at {report.path}",
        soft_wrap=True,
    )


def clusters_command(
    refit: Annotated[
        bool, typer.Option("--refit", help="Train a new model on every segment.")
    ] = False,
    k: Annotated[int | None, typer.Option("--k", min=2, help="Number of clusters.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Groups of segments that sound alike (PCA + k-means), with their typical key/tempo/energy."""
    from cratedig.learn.clusters import cluster_summary, refresh_clusters
    from cratedig.library.db import open_library

    with open_library(db) as lib:
        report = refresh_clusters(lib, refit=refit, k=k)
        infos = cluster_summary(lib)
    if json_out:
        print(
            json.dumps({"model": report.to_json(), "clusters": [i.to_json() for i in infos]}),
            flush=True,
        )
        return
    if report.skipped:
        out.print(f"[yellow]no clusters: {report.skipped}[/yellow]")
        return
    m = report.metrics
    head = f"model v{report.version}, k={report.k}"
    if report.fitted:
        head += (
            f", fitted on {m['segments']} segments ({m['components']} PCA components, "
            f"{100 * m['explained_variance']:.0f} % variance, silhouette {m['silhouette']:.2f})"
        )
    elif report.assigned:
        head += f", {report.assigned} new segments assigned"
    if report.gate is not None:
        head += f"; training gate: {report.gate.summary()}"
    t = Table(title=head)
    for col in ("#", "segs", "tracks", "key", "BPM", "energy", "band", "labels"):
        t.add_column(col, justify="left" if col in ("key", "band", "labels") else "right")
    for i in infos:
        t.add_row(
            str(i.cluster),
            str(i.segments),
            str(i.tracks),
            f"{i.camelot} {100 * i.camelot_share:.0f}%",
            f"{i.tempo:.1f}",
            f"{i.energy:.2f}",
            i.band,
            i.labels,
        )
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``match``, ``index`` and ``clusters`` to ``app``."""
    app.command("match")(match_command)
    app.command("index")(index_command)
    app.command("clusters")(clusters_command)
