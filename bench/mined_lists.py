"""Cost of `cratedig train`'s training data: lists mined from stems, one process against two,
and against the stop-35 stem pairs, side by side on the same songs.

```sh
.venv/bin/python bench/mined_lists.py --songs 12 --runs 3
```

The songs are the first ``--songs`` dev songs of the real stem set (`bench/stemset.py`: lead +
drums as the ``lead`` stem, the band as another), given as files, as a library gives them (each
decoded where it is analysed). Each run times:

- ``lists, 1 process``: :func:`cratedig.match.lists.mined_lists` in this process;
- ``lists, 2 processes``: the same on a :class:`cratedig.compute.ProcessPoolExecutor` of 2
  (what ``cratedig train --workers 2`` does; the lists must come out identical);
- ``pairs``: :func:`cratedig.learn.pairs.stem_pairs` and their features (``train`` until stop
  35), decoding included.

Medians of the runs and their ratios are printed; machines are noisy, so are single runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--songs", type=int, default=12)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)

    import stemset
    from cratedig.audio.decode import decode
    from cratedig.compute import ProcessPoolExecutor
    from cratedig.learn.pairs import stem_pairs
    from cratedig.match.lists import mined_lists
    from cratedig.workflows import _pair_matrix

    sr = 22050
    data = stemset.load(workers=2)
    dev = sorted((s for s in data["songs"] if s["split"] == "dev"), key=lambda s: s["id"])
    chosen = dev[: args.songs]
    files = {
        s["id"]: {"lead": (s["query_path"], 0), "band": (s["partner_path"], 0)} for s in chosen
    }
    audio_s = sum(decode(s["partner_path"], sr=sr).duration for s in chosen)

    def lists_here() -> object:
        return mined_lists(files, sr=sr)

    def lists_pool() -> object:
        with ProcessPoolExecutor(2) as pool:
            return mined_lists(files, sr=sr, executor=pool)

    def pairs() -> object:
        songs = {}
        for name, st in files.items():
            arrays = {k: decode(path, sr=sr).samples for k, (path, _) in st.items()}
            n = min(len(a) for a in arrays.values())
            songs[name] = {k: a[:n] for k, a in arrays.items()}
        made = stem_pairs(songs, sr=sr)
        return _pair_matrix([(q.query, q.candidate) for q in made])

    systems = {"lists, 1 process": lists_here, "lists, 2 processes": lists_pool, "pairs": pairs}
    times: dict[str, list[float]] = {k: [] for k in systems}
    outputs: dict[str, object] = {}
    for run in range(args.runs):
        for name, fn in systems.items():
            t0 = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - t0)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))
    a, b = outputs["lists, 1 process"], outputs["lists, 2 processes"]
    same = a is not None and b is not None and np.array_equal(a.y, b.y) and np.allclose(a.X, b.X)  # type: ignore[attr-defined]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(chosen)} dev songs, {audio_s / 60:.1f} min of audio, {args.runs} runs (medians):")
    for k, v in med.items():
        print(f"  {k:<20} {v:7.1f} s  ({audio_s / v:5.1f}x realtime)")
    print(
        f"  lists, 2 processes against 1: {med['lists, 1 process'] / med['lists, 2 processes']:.2f}x faster"
    )
    print(
        f"  lists (1 process) against pairs: {med['pairs'] / med['lists, 1 process']:.2f}x faster"
    )
    print(f"  the two processes' lists identical to one's: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
