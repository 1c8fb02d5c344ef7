"""The drift report as HTML: verdict, per-feature PSI/KS table, reference-vs-new figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.learn.drift import DESCRIPTIONS, PSI_DRIFT, DriftReport
from cratedig.reports.page import esc, figure_png, pyplot, table, write_page


def _psi_figure(report: DriftReport) -> str:
    plt = pyplot()
    feats = report.features
    fig, ax = plt.subplots(figsize=(9, 3.2))
    colors = ["#c0392b" if f.drifted else "#e67e22" if f.moderate else "#7f8c8d" for f in feats]
    ax.bar([f.feature for f in feats], [f.psi for f in feats], color=colors)
    ax.axhline(PSI_DRIFT, color="#c0392b", ls="--", lw=1, label=f"drift threshold {PSI_DRIFT}")
    ax.axhline(0.1, color="#e67e22", ls=":", lw=1, label="moderate 0.1")
    ax.set_ylabel("PSI")
    ax.set_title("Population stability index per feature (red: drifted)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="upper right", fontsize=8)
    return figure_png(fig, "PSI per feature")


def _feature_figure(f: Any) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    x = np.arange(len(f.bins))
    ax.bar(x - 0.2, f.reference, width=0.4, label="training", color="#34495e")
    ax.bar(x + 0.2, f.new, width=0.4, label="new", color="#c0392b" if f.drifted else "#16a085")
    ax.set_xticks(x)
    ax.set_xticklabels(f.bins, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share")
    stat = f"KS {f.statistic:.2f}" if f.statistic is not None else "chi²"
    ax.set_title(
        f"{DESCRIPTIONS[f.feature]}\nPSI {f.psi:.2f}, {stat}, p={f.p_value:.2g}", fontsize=9
    )
    ax.legend(fontsize=7)
    return figure_png(fig, f"{DESCRIPTIONS[f.feature]}: training vs new")


def drift_html(report: DriftReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as a self-contained HTML page at ``path``."""
    cls = "bad" if report.drift else "warn" if report.retrain else "good"
    body = [
        "<h1>cratedig drift report</h1>",
        f'<p class="sub">Cluster model v{esc(report.model_version)} trained '
        f"{esc(report.trained_at)}; new data: {esc(report.selection)} "
        f"({report.new_tracks} tracks, {report.new_segments} segments) against "
        f"{report.reference_tracks} training tracks ({report.reference_segments} segments).</p>",
        f'<div class="verdict {cls}">{esc(report.verdict)}</div>',
    ]
    if report.features:
        body.append("<h2>Features</h2>")
        body.append(
            table(
                ["feature", "what", "PSI", "test", "statistic", "p-value", "drift"],
                [
                    [
                        f.feature,
                        DESCRIPTIONS[f.feature],
                        f"{f.psi:.3f}",
                        f.test,
                        "" if f.statistic is None else f"{f.statistic:.3f}",
                        f"{f.p_value:.2g}",
                        "DRIFT" if f.drifted else "moderate" if f.moderate else "",
                    ]
                    for f in report.features
                ],
                {2, 4, 5},
            )
        )
        body.append(_psi_figure(report))
        body.append('<div class="grid">')
        body.extend(_feature_figure(f) for f in report.features)
        body.append("</div>")
    body.append("<h2>What the model represents worse</h2>")
    if report.worse:
        body.append(
            table(
                ["by", "group", "segments", "far from every centroid", "in training"],
                [
                    [
                        g["by"],
                        g["group"],
                        g["segments"],
                        f"{100 * g['far_share']:.0f} %",
                        f"{100 * g['reference_far_share']:.0f} %",
                    ]
                    for g in report.worse
                ],
                {2, 3, 4},
            )
        )
    else:
        body.append("<p>No group of the new music lies unusually far from the clusters.</p>")
    fl = report.failures
    body.append("<h2>Ingest failures and ratings</h2>")
    body.append(
        f"<p>Ingest: {esc(fl.get('failed', 0))} failed, {esc(fl.get('analysed', 0))} analysed "
        f"(failure rate {100 * float(fl.get('rate') or 0):.1f} %).</p>"
    )
    rt = report.ratings
    if rt.get("since"):
        body.append(
            f"<p>Ratings since training: {rt['since']} (mean {rt['mean_since']}), before: "
            f"{rt['before']} (mean {rt['mean_before']}). Worse: "
            f"{esc(', '.join(rt.get('worse') or []) or 'nothing')}.</p>"
        )
    else:
        body.append("<p>No ratings since the model was trained.</p>")
    return write_page(path, "cratedig drift report", "\n".join(body))
