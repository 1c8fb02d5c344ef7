"""The library overview page (``cratedig report``): Camelot key wheel, tempo histogram, cluster
map, analysis confidence, quality flags and the models' evaluation history."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.reports.page import figure_png, page_html, pyplot, table, write_page

TITLE = "cratedig library report"
#: Segments drawn for the cluster map at most (a scatter of more shows nothing more).
MAP_SEGMENTS = 4000


def library_overview(library: Any, *, seed: int = 0) -> dict[str, Any]:
    """Everything the page shows, as data: tracks, the cluster map sample, models."""
    from cratedig.learn.clusters import KIND, current_model, segment_features
    from cratedig.library import repository as repo
    from cratedig.match.batch import SegmentBatch

    with library.reader() as s:
        tracks = repo.track_overview(s)
        models = repo.all_models(s)
        stats = repo.library_stats(s)
        current = repo.current_track_ids(s)
    points: dict[str, Any] = {"x": [], "y": [], "cluster": [], "k": 0, "segments": 0}
    have = current_model(library)
    if have is not None and current:
        model = have[0]
        rng = np.random.default_rng(seed)
        ids = sorted(current)
        # Whole tracks are sampled (segments load by track): about MAP_SEGMENTS phrases.
        per_track = max(stats.segments / max(stats.tracks, 1), 1.0)
        take = min(len(ids), max(int(MAP_SEGMENTS / per_track), 1))
        chosen = [ids[i] for i in sorted(rng.choice(len(ids), take, replace=False))]
        with library.reader() as s:
            segments = repo.load_segments(s, track_ids=chosen)
        if segments:
            x = segment_features(SegmentBatch.from_segments(segments))
            e = model.embed(x)
            labels, _ = model.nearest(x)
            points = {
                "x": e[:, 0].tolist(),
                "y": e[:, 1].tolist() if e.shape[1] > 1 else [0.0] * len(e),
                "cluster": labels.tolist(),
                "k": model.k,
                "segments": len(segments),
            }
    return {
        "stats": stats.to_json(),
        "tracks": tracks,
        "map": points,
        "models": [
            {
                "kind": m.kind,
                "version": m.version,
                "trained_at": m.trained_at.isoformat(),
                "metrics": {k: v for k, v in m.metrics.items() if k != "reference"},
            }
            for m in models
        ],
        "cluster_kind": KIND,
    }


def _camelot_wheel(tracks: list[dict[str, Any]]) -> str:
    plt = pyplot()
    counts = Counter(t["camelot"] for t in tracks)
    top = max(counts.values(), default=1)
    fig = plt.figure(figsize=(4.6, 4.6))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    width = 2 * np.pi / 12
    cmap = plt.get_cmap("YlOrRd")
    for n in range(1, 13):
        theta = (n % 12) * width  # 12 at the top, clockwise by fifths
        for ring, letter, bottom in ((0.8, "B", 1.6), (0.8, "A", 0.8)):
            c = counts.get(f"{n}{letter}", 0)
            ax.bar(
                theta,
                ring,
                width=width * 0.96,
                bottom=bottom,
                color=cmap(0.1 + 0.85 * c / top) if c else "#f2f2f2",
                edgecolor="white",
            )
            ax.text(theta, bottom + 0.4, f"{n}{letter}\n{c}", ha="center", va="center", fontsize=7)
    ax.set_ylim(0, 2.45)
    ax.set_axis_off()
    ax.set_title("Camelot key wheel (tracks per key; outer B major, inner A minor)", fontsize=9)
    return figure_png(fig, "Camelot key wheel")


def _tempo_histogram(tracks: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    tempi = [t["tempo"] for t in tracks]
    meters = [t["meter"] for t in tracks]
    bins = np.arange(60, 201, 5)
    for m, color in ((4, "#2c3e50"), (3, "#e67e22")):
        sel = [x for x, mm in zip(tempi, meters, strict=True) if mm == m]
        if sel:
            ax.hist(sel, bins=bins, color=color, alpha=0.85, label=f"{m}/4 ({len(sel)})")
    other = [x for x, mm in zip(tempi, meters, strict=True) if mm not in (3, 4)]
    if other:
        ax.hist(other, bins=bins, color="#95a5a6", label=f"other ({len(other)})")
    ax.set_xlabel("BPM")
    ax.set_ylabel("tracks")
    ax.set_title("Tempo histogram", fontsize=9)
    if tempi:
        ax.legend(fontsize=8)
    return figure_png(fig, "Tempo histogram")


def _cluster_map(points: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    if points["segments"]:
        k = max(int(points["k"]), 1)
        cmap = plt.get_cmap("tab20" if k > 10 else "tab10", k)
        sc = ax.scatter(
            points["x"],
            points["y"],
            c=points["cluster"],
            cmap=cmap,
            vmin=-0.5,
            vmax=k - 0.5,
            s=9,
            alpha=0.8,
            lw=0,
        )
        fig.colorbar(sc, ax=ax, label="cluster", ticks=range(k))
    else:
        ax.text(0.5, 0.5, "no cluster model yet", ha="center", transform=ax.transAxes)
    ax.set_xlabel("PCA 1")
    ax.set_ylabel("PCA 2")
    ax.set_title(
        f"Cluster map: {points['segments']} phrases, k={points['k']} (model's PCA plane)",
        fontsize=9,
    )
    return figure_png(fig, "Cluster map")


def _confidence(tracks: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    names = (
        ("beat_strength", "beat strength"),
        ("key_clarity", "key clarity"),
        ("tempo_stability", "tempo stability"),
    )
    for ax, (key, label) in zip(axes, names, strict=True):
        v = [
            t["quality"]["confidence"][key]
            for t in tracks
            if t["quality"].get("confidence", {}).get(key) is not None
        ]
        if key == "key_clarity" and not v:
            v = [t["key_clarity"] for t in tracks]
        ax.hist(v, bins=20, range=(0, 1), color="#2980b9")
        ax.set_title(f"{label} ({len(v)} tracks)", fontsize=9)
        ax.set_xlim(0, 1)
    return figure_png(fig, "Analysis confidence")


def _quality_flags(tracks: list[dict[str, Any]]) -> str:
    plt = pyplot()
    flags = Counter(f for t in tracks for f in t["quality"].get("flags", []))
    unassessed = sum(1 for t in tracks if not t["quality"])
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    names = list(flags) + (["not assessed"] if unassessed else [])
    values = list(flags.values()) + ([unassessed] if unassessed else [])
    if names:
        ax.barh(names, values, color=["#c0392b"] * len(flags) + ["#bdc3c7"] * bool(unassessed))
    else:
        ax.text(0.5, 0.5, "no quality flag raised", ha="center", transform=ax.transAxes)
    ax.set_xlabel("tracks")
    ax.set_title(f"Quality flags ({len(tracks)} tracks)", fontsize=9)
    return figure_png(fig, "Quality flags")


def _history(models: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    ms = [m for m in models if "silhouette" in m["metrics"]]
    if ms:
        v = [m["version"] for m in ms]
        ax.plot(v, [m["metrics"]["silhouette"] for m in ms], "o-", label="silhouette")
        ax.set_xlabel("model version")
        ax.set_xticks(v)
        ax2 = ax.twinx()
        ax2.plot(v, [m["metrics"].get("segments", 0) for m in ms], "s--", color="#7f8c8d")
        ax2.set_ylabel("training segments")
        ax.set_ylabel("silhouette")
    else:
        ax.text(0.5, 0.5, "no model trained yet", ha="center", transform=ax.transAxes)
    ax.set_title("Model evaluation history (clusters)", fontsize=9)
    return figure_png(fig, "Model evaluation history")


def library_html(overview: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the library overview (:func:`library_overview`) as one HTML page."""
    return write_page(path, TITLE, library_body(overview))


def library_page(overview: dict[str, Any]) -> str:
    """The library overview as an HTML string (what the app serves at ``/reports``)."""
    return page_html(TITLE, library_body(overview))


def library_body(overview: dict[str, Any]) -> str:
    """The body of the library page."""
    st, tracks = overview["stats"], overview["tracks"]
    low = [t for t in tracks if t["quality"].get("level") == "low"]
    body = [
        "<h1>cratedig library report</h1>",
        f'<p class="sub">{st["tracks"]} tracks, {st["segments"]} phrases, '
        f"{st['hours']:.2f} h of audio, {st['errors']} ingest errors.</p>",
        "<h2>Keys and tempi</h2>",
        f'<div class="grid">{_camelot_wheel(tracks)}{_tempo_histogram(tracks)}</div>',
        "<h2>Segment clusters</h2>",
        _cluster_map(overview["map"]),
        "<h2>Analysis confidence</h2>",
        _confidence(tracks),
        "<h2>Input quality</h2>",
        f'<div class="grid">{_quality_flags(tracks)}</div>',
    ]
    if low:
        body.append(f"<p>{len(low)} suspect tracks (cratedig tracks --quality low):</p>")
        body.append(
            table(
                ["track", "format", "why"],
                [
                    [t["id"], t["format"], "; ".join(t["quality"].get("reasons", {}).values())]
                    for t in low[:200]
                ],
                set(),
            )
        )
    body.append("<h2>Models</h2>")
    body.append(_history(overview["models"]))
    if overview["models"]:
        body.append(
            table(
                ["kind", "version", "trained", "segments", "k", "silhouette", "gate"],
                [
                    [
                        m["kind"],
                        m["version"],
                        m["trained_at"][:19],
                        m["metrics"].get("segments", ""),
                        m["metrics"].get("k", ""),
                        m["metrics"].get("silhouette", ""),
                        (m["metrics"].get("gate") or {}).get("summary", ""),
                    ]
                    for m in overview["models"]
                ],
                {1, 3, 4, 5},
            )
        )
    return "\n".join(body)


__all__ = ["library_body", "library_html", "library_overview", "library_page"]
