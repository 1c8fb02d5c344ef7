"""Matching commands: ``match``, ``index``, ``clusters``. Parse, call, print.

Wire them into the main app with :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cratedig.cli_library import DbOption, JsonOption, err, out, shown
from cratedig.errors import ParameterError


def _clock(seconds: float) -> str:
    m, s = divmod(round(max(seconds, 0.0), 1), 60)
    return f"{int(m)}:{s:04.1f}"


def resolve_query(lib: Any, query: str, *, max_duration: float = 1800.0) -> tuple[Any, bool]:
    """The analysis of ``query`` (a file, or a library track id or id prefix) and whether the
    track is in the library. A file already in the library uses its stored analysis, so its
    segment ids are the library's."""
    from cratedig.library import repository as repo

    path = Path(query).expanduser()
    if path.exists():
        from cratedig.analysis.pipeline import analyze_file

        analysis = analyze_file(path, max_duration=max_duration)
        with lib.reader() as s:
            stored = repo.load_analysis(s, analysis.track_id)
        if stored is not None and stored.analysis_version == analysis.analysis_version:
            stored.path = str(path)
            return stored, True
        return analysis, False
    with lib.reader() as s:
        track_id = repo.resolve_track_id(s, query)
        stored = repo.load_analysis(s, track_id) if track_id else None
    if stored is None:
        raise ParameterError(f"{query}: neither an audio file nor a track id in the library")
    return stored, True


def match_command(
    query: Annotated[
        str, typer.Argument(help="An audio file (need not be in the library) or a track id.")
    ],
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Candidates per segment.")] = 5,
    segment: Annotated[
        int | None, typer.Option("--segment", "-s", min=0, help="Only this query segment (index).")
    ] = None,
    max_shift: Annotated[
        int, typer.Option("--max-shift", min=0, max=6, help="Largest pitch shift, semitones.")
    ] = 3,
    max_stretch: Annotated[
        float,
        typer.Option("--max-stretch", min=0.0, max=0.5, help="Largest time-stretch (0.08 = 8 %)."),
    ] = 0.08,
    own: Annotated[
        bool,
        typer.Option("--include-own-track", help="Also suggest segments of the query's own track."),
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """For each segment of a song, the segments of other songs that mix with it."""
    from cratedig.library.db import open_library
    from cratedig.match.query import MatchOptions, match_analysis
    from cratedig.match.store import sync_index

    options = MatchOptions(
        top=top,
        max_shift=max_shift,
        max_stretch=max_stretch,
        segment=segment,
        include_own_track=own,
    )
    options.check()
    with open_library(db) as lib:
        if json_out:
            analysis, in_library = resolve_query(lib, query)
        else:
            with err.status(f"analysing {query}", spinner="dots"):
                analysis, in_library = resolve_query(lib, query)
        index, _ = sync_index(lib)
        result = match_analysis(lib, index, analysis, options=options, in_library=in_library)
    if json_out:
        print(json.dumps(result.to_json()), flush=True)
        return
    _print_matches(result)


def _print_matches(result: Any) -> None:
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
    for m in result.matches:
        q = m.query
        out.print(
            f"\n[bold]segment {q.index}[/bold]  {_clock(q.start)}–{_clock(q.end)}  {q.label}  "
            f"{q.bars} bars  {q.key.name} {q.key.mode[:3]} {q.key.camelot}  {q.tempo:.1f} BPM"
        )
        if not m.candidates:
            out.print("  [dim]no segment within the tempo and key limits[/dim]")
            continue
        for r, c in enumerate(m.candidates, start=1):
            ratio = {1.0: "1:1", 2.0: "2:1", 0.5: "1:2"}.get(
                c["tempo_ratio"], str(c["tempo_ratio"])
            )
            name = Path(c["path"]).name if c["path"] else c["track_id"]
            out.print(
                f"  {r:>2}. [bold]{shown(name)}[/bold] #{c['segment'].rsplit('_', 1)[-1]} "
                f"{_clock(c['start'])}–{_clock(c['end'])}  score [bold]{c['score']:.2f}[/bold]  "
                f"{ratio} {100 * c['stretch']:+.1f}%  {c['semitones']:+d} st  "
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


def after_ingest(lib: Any, json_out: bool) -> dict[str, Any]:
    """Update the match index and segment clusters once an ingest has stored its tracks."""
    from cratedig.learn.clusters import refresh_clusters
    from cratedig.match.store import sync_index

    _, idx = sync_index(lib)
    cl = refresh_clusters(lib)
    if not json_out:
        err.print(
            f"match index: {idx.segments} segments (+{idx.added_tracks}/-{idx.removed_tracks} "
            f"tracks); clusters: "
            + (
                cl.skipped
                or f"k={cl.k}, {cl.assigned} segments {'fitted' if cl.fitted else 'assigned'}"
            ),
            soft_wrap=True,
        )
    return {"index": idx.to_json(), "clusters": cl.to_json()}


def register(app: typer.Typer) -> None:
    """Add ``match``, ``index`` and ``clusters`` to ``app``."""
    app.command("match")(match_command)
    app.command("index")(index_command)
    app.command("clusters")(clusters_command)
