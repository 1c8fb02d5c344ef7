"""``cratedig demo``: the whole job on a generated library. Parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cratedig.cli._options import err, out


def demo_command(
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
    for col in ("phrase", "time", "best partner", "score", "fit", "why"):
        t.add_column(col, overflow="fold")
    for m in r["matches"]:
        t.add_row(
            m["query_segment"].rsplit("_", 1)[-1],
            f"{m['query_start']:.1f}–{m['query_end']:.1f} s",
            f"{Path(m['path']).name} #{m['segment'].rsplit('_', 1)[-1]}",
            f"{m['score']:.2f}",
            {"none": "poor"}.get(str(m.get("fit")), str(m.get("fit") or "")),
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
    db = f"sqlite:///{Path(r['db']).resolve()}"
    out.print(f"Next: cratedig match {q['path']} --db {db}", soft_wrap=True)
    out.print(f"      cratedig serve --db {db} --music {r['music']}", soft_wrap=True)
    xml = Path(r["db"]).resolve().parent / "rekordbox.xml"
    out.print(f"      cratedig export-rekordbox {xml} --db {db}", soft_wrap=True)


def _mark(ok: bool, text: str) -> str:
    return f"[green]{text}[/green]" if ok else f"[red]{text} ✗[/red]"


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo_command)
