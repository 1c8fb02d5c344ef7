"""Do a song's layers get the song's grid? Beats and bar lines of each stem layer alone.

For every song of a split of ``bench/stemset.py`` with exact beats, the two layers the
retrieval bench uses (the **query**: the lead line with the drum channels, or Frets on Fire's
lead guitar alone; the **partner**: the band without the lead) are analysed alone with the
shipped pipeline, and their beats and bar lines are scored (``mir_eval.beat.f_measure``, 70 ms):

- against the song's true beats and bar lines (tracker rows, Frets on Fire's MIDI), and
- against each other: query beats vs partner beats, query bar lines vs partner bar lines.

The second is what the matcher needs (issue 10): where the two layers of one song disagree by
half a beat or a beat of the bar, no partner phrase lines up with the query's phrase, whatever
the scoring (``retrieval_diagnose.py`` counts those phrases). A lead alone, or a band without
its drums, is what a DJ's acapella or instrumental is.

``--query-bpm`` analyses the query layer at the song's true tempo (``--bpm``: a DJ who knows
the acapella's tempo). ``--fold-nets PREFIX`` scores each song with the beat network ``PREFIX{k}.npz``, ``k`` the
song's fold of ``bench/fit_beat_net.py --folds 4`` (``stemset:<id>``), for networks trained
with these songs' layers (stop 33: measured, not kept; ``bench/README.md``).

Usage::

    .venv/bin/python bench/stem_grids.py --split dev
    .venv/bin/python bench/stem_grids.py --split heldout
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import stemset  # noqa: E402

OUT_DIR = HERE / "out"
LAYERS = ("query", "partner")


def _analyse(
    job: tuple[str, str, str | None, float | None],
) -> tuple[str, np.ndarray, np.ndarray, float]:
    """(key, beats, downbeats, tempo) of one layer, with the beat network of ``net`` if given
    and at the tempo ``bpm`` if given."""
    key, path, net_path, bpm = job
    from cratedig.analysis import beatnet
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.analysis.rhythm import GridHint
    from cratedig.audio import decode

    if net_path is not None:
        net = beatnet.BeatNet.from_npz(net_path)
        beatnet.default_net = lambda: net  # type: ignore[assignment]
    audio = decode(path)
    a = analyze_signal(
        audio.samples,
        sr=audio.sr,
        path=path,
        track_id=key,
        hint=None if bpm is None else GridHint(bpm=bpm),
    )
    return key, np.asarray(a.beats), np.asarray(a.downbeats), float(a.tempo)


def measure(
    split: str, fold_nets: str | None, workers: int, *, query_bpm: bool = False
) -> dict[str, Any]:
    """Per-song rows and the split's means (see the module docstring)."""
    import mir_eval

    songs = [
        s
        for s in json.loads((stemset.CACHE_ROOT / "stems.json").read_text())["songs"]
        if s["split"] == split and s.get("beats_exact")
    ]
    jobs = []
    for s in songs:
        net = None
        if fold_nets:
            group = "stemset:" + s["id"]
            net = f"{fold_nets}{zlib.crc32(group.encode()) % 4}.npz"
        for layer in LAYERS:
            bpm = float(s["tempo"]) if query_bpm and layer == "query" else None
            if bpm is not None and not 30.0 <= bpm <= 300.0:
                bpm = None  # a truth at the eighth-note level (6/8 at 345): no DJ says that
            path = str(stemset.CACHE_ROOT / s[f"{layer}_path"])
            jobs.append((f"{s['id']}|{layer}", path, net, bpm))
    with ProcessPoolExecutor(workers) as ex:
        got = {k: (b, d, t) for k, b, d, t in ex.map(_analyse, jobs)}
    rows = []
    for s in songs:
        tb = np.asarray(s["beats"], float)
        td = np.asarray(s.get("downbeats") or [], float)  # Freedoom's MIDI marks no bar lines

        def bar_f(est: np.ndarray, td: np.ndarray = td) -> float | None:
            return mir_eval.beat.f_measure(td, est) if len(td) else None

        qb, qd, qt = got[f"{s['id']}|query"]
        pb, pd, pt = got[f"{s['id']}|partner"]
        rows.append(
            {
                "song": s["id"],
                "tempo": float(s["tempo"]),
                "query_tempo": round(qt, 2),
                "partner_tempo": round(pt, 2),
                "query_beat_f": mir_eval.beat.f_measure(tb, qb),
                "query_downbeat_f": bar_f(qd),
                "partner_beat_f": mir_eval.beat.f_measure(tb, pb),
                "partner_downbeat_f": bar_f(pd),
                "layers_beat_f": mir_eval.beat.f_measure(pb, qb),
                "layers_downbeat_f": mir_eval.beat.f_measure(pd, qd),
            }
        )
    cols = [k for k in rows[0] if k.endswith("_f")] if rows else []
    means = {
        k: float(np.mean([r[k] for r in rows if r[k] is not None]))
        if any(r[k] is not None for r in rows)
        else float("nan")
        for k in cols
    }
    means["songs_layers_agree"] = int(  # beats and bar lines of the two layers
        sum(r["layers_beat_f"] >= 0.9 and r["layers_downbeat_f"] >= 0.9 for r in rows)
    )
    return {"split": split, "fold_nets": fold_nets, "query_bpm": query_bpm,
            "n_songs": len(rows), "means": means, "songs": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("dev", "heldout", "freedoom"), default="dev")
    p.add_argument("--fold-nets", default=None, help="PREFIX of PREFIX0..3.npz beat networks")
    p.add_argument(
        "--query-bpm",
        action="store_true",
        help="analyse the query layer at the song's true tempo (--bpm, as a DJ who knows it)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)
    res = measure(args.split, args.fold_nets, args.workers, query_bpm=args.query_bpm)

    def f(x: float | None) -> str:
        return "  - " if x is None else f"{x:.2f}"

    for r in res["songs"]:
        print(
            f"  {r['song'][:30]:<30} {r['tempo']:6.1f} BPM | query {r['query_tempo']:6.1f} "
            f"beat F {f(r['query_beat_f'])} bar F {f(r['query_downbeat_f'])} | partner "
            f"{r['partner_tempo']:6.1f} {f(r['partner_beat_f'])} {f(r['partner_downbeat_f'])} "
            f"| layers agree {r['layers_beat_f']:.2f} {r['layers_downbeat_f']:.2f}"
        )
    m = res["means"]
    print(
        f"{args.split}, {res['n_songs']} songs: beat F / bar-line F, query "
        f"{m['query_beat_f']:.3f} / {m['query_downbeat_f']:.3f}, partner "
        f"{m['partner_beat_f']:.3f} / {m['partner_downbeat_f']:.3f}; the layers against each "
        f"other {m['layers_beat_f']:.3f} / {m['layers_downbeat_f']:.3f}; songs whose layers "
        f"agree (both >= 0.9) {m['songs_layers_agree']}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stem_grids_{args.split}{'_query_bpm' if args.query_bpm else ''}.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
