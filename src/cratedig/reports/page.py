"""The page and figure plumbing shared by the reports (matplotlib, Agg backend, PNG or SVG)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cratedig.fileio import atomic_path

#: Figure resolution: sharp on screen, a few tens of kB per figure.
DPI = 80
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:0.2em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666}.verdict{padding:10px 14px;border-radius:6px;margin:14px 0;font-weight:600}
.bad{background:#fde8e8;color:#8a1c1c}.good{background:#e6f4ea;color:#1e5c2e}
.warn{background:#fff4e0;color:#7a4b00}
table{border-collapse:collapse;margin:8px 0;font-size:0.92em}
th,td{border-bottom:1px solid #eee;padding:4px 10px;text-align:left}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid img{border:1px solid #eee}
"""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, alt: str) -> str:
    """An ``<img>`` tag with the figure as an embedded PNG (``alt`` says what it shows);
    closes the figure."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" title="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure_svg(fig: Any, alt: str) -> str:
    """The figure as inline ``<svg>`` (text kept as text, so it stays small and searchable),
    titled ``alt``; closes the figure."""
    import re

    plt = pyplot()
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cratedig"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    return svg.replace(">", f' role="img" aria-label="{esc(alt)}"><title>{esc(alt)}</title>', 1)


def esc(x: object) -> str:
    return html.escape(str(x))


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], numeric: set[int]) -> str:
    """An HTML table; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(v)}</td>' if i in numeric else f"<td>{esc(v)}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def page_html(title: str, body: str) -> str:
    """A complete HTML page around ``body``."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def write_page(path: str | os.PathLike[str], title: str, body: str) -> Path:
    """Write a complete HTML page atomically; returns its path."""
    p = Path(path)
    with atomic_path(p) as tmp:
        Path(tmp).write_text(page_html(title, body), encoding="utf-8")
    return p
