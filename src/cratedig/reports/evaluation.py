"""The evaluation report as HTML: rule vs learned vs blend, and the learning curve per scorer.

One self-contained page (figures are inline SVG, no script, no CDN) from the JSON of
:func:`cratedig.workflows.evaluate_rankers`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cratedig.reports.page import esc, figure_svg, pyplot, table, write_page

SCORER_COLOURS = {"rule": "#34495e", "learned": "#c0392b", "blend": "#16a085"}
SOURCE_TITLES = {"stems": "stem partners", "ratings": "ratings"}
METRIC_TITLES = {
    "ndcg@10": "NDCG@10",
    "mrr": "MRR",
    "pairwise_accuracy": "pairwise accuracy",
    "top1": "stem-partner top-1",
}


def shown_measure(m: dict[str, Any]) -> str:
    """``0.812 (n=40)``, or ``n/a: <reason>``."""
    if m["value"] is None:
        return f"n/a: {m.get('reason', 'nothing to measure')}"
    return f"{m['value']:.3f} (n={m['queries']})"


def _curve_figure(result: dict[str, Any], source: str, metric: str) -> str | None:
    curve = result["learning_curve"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    drawn = False
    for sc, colour in SCORER_COLOURS.items():
        pts = [
            (p["fraction"], p["metrics"][source][metric][sc]["value"])
            for p in curve
            if p["metrics"][source][metric][sc]["value"] is not None
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", color=colour, label=sc, ls="--" if sc == "rule" else "-")
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xticks([p["fraction"] for p in curve])
    ax.set_xticklabels(
        [
            f"{p['fraction']:.0%}\n{p['stem_pairs']:.0f} pairs\n{p['ratings']:.0f} ratings"
            for p in curve
        ],
        fontsize=7,
    )
    ax.set_xlabel("share of each fold's training pairs (mean per fold)")
    ax.set_ylabel(METRIC_TITLES[metric])
    ax.set_title(f"{METRIC_TITLES[metric]} on held-out tracks: {SOURCE_TITLES[source]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_svg(fig, f"learning curve, {METRIC_TITLES[metric]}, {SOURCE_TITLES[source]}")


def _bars_figure(result: dict[str, Any], source: str) -> str | None:
    ms = result["metrics"][source]
    names = [m for m in METRIC_TITLES if any(ms[m][sc]["value"] is not None for sc in ms[m])]
    if not names:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    width = 0.26
    for i, (sc, colour) in enumerate(SCORER_COLOURS.items()):
        xs = [j + (i - 1) * width for j in range(len(names))]
        ys = [ms[m][sc]["value"] or 0.0 for m in names]
        ax.bar(xs, ys, width=width, color=colour, label=sc)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([METRIC_TITLES[m] for m in names], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"held-out tracks, full training set: {SOURCE_TITLES[source]}")
    ax.legend(fontsize=8)
    return figure_svg(fig, f"rule vs learned vs blend, {SOURCE_TITLES[source]}")


def evaluation_body(result: dict[str, Any]) -> str:
    """The report's HTML body."""
    pairs = result["pairs"]
    body = [
        "<h1>cratedig evaluation: rule vs learned vs blend</h1>",
        f'<p class="sub">{esc(result["split"])}: {result["tracks"]} tracks in '
        f"{result['folds']} folds; {pairs['stems']} stem pairs and {pairs['ratings']} rated "
        "pairs.</p>",
    ]
    for note in result["notes"]:
        body.append(f'<p class="sub">{esc(note)}</p>')
    for source in ("stems", "ratings"):
        body.append(f"<h2>{esc(SOURCE_TITLES[source].capitalize())}</h2>")
        ms = result["metrics"][source]
        every = [ms[m][sc] for m in METRIC_TITLES for sc in SCORER_COLOURS]
        if all(x["value"] is None for x in every) and len({x["reason"] for x in every}) == 1:
            body.append(f"<p>Nothing measured: {esc(every[0]['reason'])}.</p>")
            continue
        body.append(
            table(
                ["measure", "rule", "learned", "blend"],
                [
                    [METRIC_TITLES[m], *(shown_measure(ms[m][sc]) for sc in SCORER_COLOURS)]
                    for m in METRIC_TITLES
                ],
                numeric=set(),
            )
        )
        figs = [_bars_figure(result, source)]
        figs += [_curve_figure(result, source, m) for m in ("ndcg@10", "mrr")]
        shown = [f for f in figs if f]
        if shown:
            body.append('<div class="grid">' + "".join(shown) + "</div>")
        else:
            body.append("<p>Nothing to plot: no query of this kind among the test tracks.</p>")
    body.append("<h2>Learning curve</h2>")
    rows: list[list[object]] = []
    reasons: dict[str, int] = {}
    for p in result["learning_curve"]:
        ms = p["metrics"]
        cells = []
        for source in ("stems", "ratings"):
            for sc in SCORER_COLOURS:
                m = ms[source]["ndcg@10"][sc]
                if m["value"] is None:
                    reasons.setdefault(m.get("reason", "nothing to measure"), len(reasons) + 1)
                    cells.append(f"n/a [{reasons[m.get('reason', 'nothing to measure')]}]")
                else:
                    cells.append(f"{m['value']:.3f}")
        rows.append(
            [f"{p['fraction']:.0%}", f"{p['stem_pairs']:.0f}", f"{p['ratings']:.0f}", p["models"],
             *cells]
        )  # fmt: skip
    body.append(
        table(
            [
                "share",
                "stem pairs",
                "ratings",
                "models",
                "stems NDCG rule",
                "learned",
                "blend",
                "ratings NDCG rule",
                "learned",
                "blend",
            ],
            rows,
            numeric={1, 2, 3},
        )  # fmt: skip
    )
    for reason, i in reasons.items():
        body.append(f'<p class="sub">[{i}] {esc(reason)}</p>')
    return "\n".join(body)


def evaluation_html(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the evaluation ``result`` as a self-contained HTML page at ``path``."""
    return write_page(path, "cratedig evaluation", evaluation_body(result))
