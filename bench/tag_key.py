"""What a key tag does to the key (``tonal.follow_tag_key``): each keyed piece of the real set
(``bench/realset.py``) analysed with no tag, then with a key tag written four ways, as DJ
programs get keys right and wrong:

- ``right``: the reference key;
- ``fifth``: a fifth above it (the dominant, same mode), ``relative``: its relative key (the
  two errors key detectors, ours and DJ programs', make most);
- ``other``: a key related to it by nothing (a tritone away, other mode).

The tag is followed where its score lies within the margin of the best key's (the audio
allows it). Reported per variant and margin: MIREX score against the reference (1 same, 0.5
fifth, 0.3 relative, 0.2 parallel, else 0) and how many pieces followed their tag. The margin is
set on ``--split dev``; held-out reports it.

Usage::

    .venv/bin/python bench/tag_key.py --split dev      # sweep of margins
    .venv/bin/python bench/tag_key.py --split heldout --margins 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

CACHE = HERE / ".cache"
OUT_DIR = HERE / "out"
VARIANTS = ("none", "right", "fifth", "relative", "other")
MARGINS = (0.0, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3)


def _tag(variant: str, key: Any) -> str | None:
    if variant == "none":
        return None
    if variant == "right":
        return str(key.camelot)
    if variant == "fifth":
        return str(key.transpose(7).camelot)
    if variant == "relative":
        return str(key.relative.camelot)
    return str(key.transpose(6).parallel.camelot)


def _run(job: tuple[str, str, str, tuple[float, ...]]) -> tuple[str, dict[str, Any]]:
    """id -> {variant: {margin: (estimated key name, followed)}}."""
    import cratedig.analysis.tonal as tonal
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.audio import decode
    from cratedig.theory import Key

    sid, path, ref, margins = job
    truth = Key.parse(ref)
    a = decode(path)
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        tag = _tag(variant, truth)
        row = {}
        for m in margins if tag else (0.0,):
            tonal.TAG_KEY_MARGIN = m
            r = analyze_signal(
                a.samples, sr=a.sr, path=path, track_id="x", tags={"key": tag} if tag else None
            )
            used = bool(((r.estimates.get("key") or {}).get("tags") or {}).get("used"))
            row[str(m)] = (
                f"{r.key.name} {r.key.mode}",
                used and r.key.camelot != r.estimates["key"]["tags"]["heard"],
            )
        out[variant] = row
    return sid, out


def main(argv: list[str] | None = None) -> int:
    from cratedig.theory import Key, mirex_key_score

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("dev", "heldout"), default="dev")
    p.add_argument("--margins", type=float, nargs="+", default=list(MARGINS))
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    songs = json.loads((CACHE / "realset" / "truth.json").read_text())["songs"]
    todo = [
        (
            s["id"],
            str(CACHE / "realset" / s["path"]),
            f"{s['key']} {s['mode']}",
            tuple(args.margins),
        )
        for s in songs
        if s["split"] == args.split and s.get("key") and s.get("mode")
    ]
    rows: dict[str, Any] = {}
    with ProcessPoolExecutor(args.workers) as ex:
        for sid, out in ex.map(_run, todo):
            rows[sid] = out
    refs = {sid: Key.parse(ref) for sid, _, ref, _ in todo}
    summary: dict[str, Any] = {}
    print(f"real {args.split}: {len(rows)} keyed pieces; MIREX (pieces whose key the tag changed)")
    print(f"  {'tag':<10}" + "".join(f"{'m=' + format(m, 'g'):>14}" for m in args.margins))
    for variant in VARIANTS:
        cells = []
        summary[variant] = {}
        for m in args.margins if variant != "none" else [0.0]:
            scores, moved = [], 0
            for sid, out in rows.items():
                name, changed = out[variant][str(m)]
                scores.append(mirex_key_score(refs[sid], Key.parse(name)))
                moved += int(changed)
            summary[variant][str(m)] = {"mirex": float(np.mean(scores)), "changed": moved}
            cells.append(f"{np.mean(scores):>9.3f} ({moved:>2})")
        print(f"  {variant:<10}" + "".join(f"{c:>14}" for c in cells))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"tag_key_real_{args.split}.json"
    path.write_text(json.dumps({"summary": summary, "pieces": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
