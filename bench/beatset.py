"""Training audio with exact beats and bar lines for the beat network of
:mod:`cratedig.analysis.beatnet` (``bench/fit_beat_net.py``; issue 9).

Development halves only, never a held-out half, a reserved package or anything ``tests/`` uses:

- **realset, dev half** (``bench/realset.py``): tracker modules rendered by libopenmpt (beats
  from the module's rows), Hydrogen demo songs, Frets on Fire songs, MuseScore demo scores and
  music21 corpus scores, with their beats and downbeats (items without trusted beats are left
  out: ``beats_exact`` false, unsteady tempo).
- **stemset, dev half** (``bench/stemset.py``): the tracker modules that realset does not have,
  lead and accompaniment mixed back together.
- **Planet Blupi, dev pieces** (``bench/rendered.py``): the produced audio of the three dev
  pieces whole (10-29 minutes each), beats and bar lines from the MIDI beside it, moved by the
  lag ``rendered.py`` measured and checked.
- **FluidSynth songs, seed 7** (``bench/truthset.py``, the dev seed).
- **Grooves** (``bench/grooveset.py``): drum grooves of 16 styles over syncopated bass, chords
  and melody, FluidSynth with GM kits of two soundfonts: which sounds mark the beat, in the
  grooves where the off-beat is the louder.
- **More tracker modules** (``--part modules``, written apart to ``modules.npz``): the dev
  half of ``bench/moduleset.py`` (modules of 21 more game packages), beats and bar lines from
  their rows as realset's trackers (items without trusted beats left out).
- **More scores** (``--corpus``, written apart to ``corpus.npz``): music21 corpus scores by
  composers that ``realset.py`` never takes (Bach, Monteverdi, the trecento, Josquin...), rendered with FluidSynth (half of them with drawn GM instruments, as
  ``keyset.py`` draws them), their first minute, with the score's beats, bar lines and pickups
  (``realset.midi_grid_truth``); pieces whose tempo changes are left out. Pickups, 3/4 and
  compound meters, which the other sources hardly hold.

Each item's front end is computed exactly as the analysis computes it (decoded at the
analysis rate -> :func:`cratedig.analysis.frontend.compute_frontend`), and its log-mel frames,
beat and downbeat times are written to ``bench/.cache/beatset/beatset.npz``. Items are tagged
with a group (the piece) so that training can hold out whole pieces for validation.

Usage::

    .venv/bin/python bench/beatset.py                 # ~10 min on 2 cores (the grooves' renders)
    .venv/bin/python bench/beatset.py --part corpus   # the scores part alone
    .venv/bin/python bench/beatset.py --part modules  # moduleset's dev half alone
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

CACHE = HERE / ".cache"
OUT = CACHE / "beatset" / "beatset.npz"
#: The scores part (``--corpus``), written apart: it is slow to render and rarely rebuilt.
OUT_CORPUS = CACHE / "beatset" / "corpus.npz"
#: The modules part (``--part modules``): moduleset's dev half.
OUT_MODULES = CACHE / "beatset" / "modules.npz"
#: music21 corpus folders of the scores part, with the share of each taken (by a hash of the
#: path). None of them is a realset composer (``realset.CORPUS_COMPOSERS``).
CORPUS_SOURCES = {
    "bach": 1.0,
    "monteverdi": 1.0,
    "trecento": 1.0,
    "josquin": 1.0,
    "luca": 1.0,
    "ciconia": 1.0,
}
#: Planet Blupi pieces are cut into chunks of this many seconds (whole pieces are long).
CHUNK_S = 60.0


def _items(grooves: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"id": f"groove:{i}", "group": f"groove:{i}", "groove": i} for i in range(grooves)
    ]
    truth = json.loads((CACHE / "realset" / "truth.json").read_text())
    known = set()
    for s in truth["songs"]:
        known.add(s.get("source_id"))
        if s["split"] != "dev" or not s.get("beats") or len(s["beats"]) < 16:
            continue
        if s.get("beats_exact") is False or not s.get("tempo_steady", True):
            continue
        items.append(
            {
                "id": f"realset:{s['id']}",
                "group": f"realset:{s['id']}",
                "path": str(CACHE / "realset" / s["path"]),
                "beats": s["beats"],
                "downbeats": s.get("downbeats") or [],
                "offset": 0.0,
            }
        )
    stems = json.loads((CACHE / "stemset" / "stems.json").read_text())
    for s in stems["songs"]:
        if s["split"] != "dev" or s.get("source_id") in known or not s.get("beats_exact"):
            continue
        items.append(
            {
                "id": f"stemset:{s['id']}",
                "group": f"stemset:{s['id']}",
                "paths": [
                    str(CACHE / "stemset" / s["query_path"]),
                    str(CACHE / "stemset" / s["partner_path"]),
                ],
                "beats": s["beats"],
                "downbeats": s.get("downbeats") or [],
                "offset": 0.0,
            }
        )
    rendered = json.loads((CACHE / "rendered" / "items.json").read_text())["items"]
    lags = {i["piece"]: i["lag_ms"] / 1000.0 for i in rendered if i["split"] == "dev"}
    music = CACHE / "rendered" / "pkgroot" / "usr" / "share" / "planetblupi" / "music"
    for piece, lag in sorted(lags.items()):
        items.append(
            {
                "id": f"planetblupi:{piece}",
                "group": f"planetblupi:{piece}",
                "midi": str(music / f"{piece}.mid"),
                "path": str(music / f"{piece}.ogg"),
                "lag": lag,
            }
        )
    for d in sorted(p for p in (CACHE / "truthset").glob("n*-seed7-*") if p.is_dir()):
        t = json.loads((d / "truth.json").read_text())
        for s in t["songs"]:
            items.append(
                {
                    "id": f"truthset7:{s['id']}",
                    "group": f"truthset7:{s['id']}",
                    "path": str(d / s["path"]),
                    "beats": s["beats"],
                    "downbeats": s["downbeats"],
                    "offset": 0.0,
                }
            )
    return items


def module_items() -> list[dict[str, Any]]:
    """moduleset's dev half: modules with exact beats and a steady tempo."""
    import moduleset

    items = []
    for s in moduleset.load()["songs"]:
        if s["split"] != "dev" or not s.get("beats") or len(s["beats"]) < 16:
            continue
        if not s.get("beats_exact") or not s.get("tempo_steady"):
            continue
        items.append(
            {
                "id": f"modules:{s['id']}",
                "group": f"modules:{s['id']}",
                "path": s["path"],
                "beats": s["beats"],
                "downbeats": s.get("downbeats") or [],
                "offset": 0.0,
            }
        )
    return items


def corpus_items() -> list[dict[str, Any]]:
    """The scores part: one item per music21 corpus score of :data:`CORPUS_SOURCES`."""
    import zlib

    from music21 import corpus

    import realset

    items = []
    for folder, share in CORPUS_SOURCES.items():
        assert folder not in realset.CORPUS_COMPOSERS, folder
        for p in sorted(str(x) for x in corpus.getComposer(folder)):
            rel = p.split("/corpus/", 1)[1]
            if rel.endswith(".krn") and any(
                Path(p).with_suffix(e).exists() for e in (".mxl", ".xml", ".musicxml")
            ):
                continue  # a .krn twin of a MusicXML score
            if zlib.crc32(rel.encode()) % 1000 >= share * 1000:
                continue
            items.append({"id": f"corpus:{rel}", "group": f"corpus:{rel}", "score": p})
    return items


def _render_score(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A corpus score's first minute rendered at the analysis rate with its beats and bar lines,
    or None where its truth is not exact (tempo changes) or it cannot be read."""
    import tempfile
    import zlib

    import soundfile as sf

    import realset
    from cratedig.analysis.pipeline import ANALYSIS_SR
    from cratedig.audio.decode import decode
    from keyset import draw_instruments
    from truthset import fluidsynth_render

    rel = path.split("/corpus/", 1)[1]
    rng = np.random.default_rng(zlib.crc32(rel.encode()))
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        try:
            item, score, final, pickup_q = realset._corpus_midi(path, mid)
            _, dur = realset._corpus_truth(
                item, score, final, pickup_q, mid, lambda t: t + realset.CORPUS_SECONDS
            )
        except Exception as exc:  # a score music21 cannot export: skipped, named
            print(f"skip {rel}: {type(exc).__name__}: {exc}"[:160], file=sys.stderr)
            return None
        if not item.get("tempo_steady") or not item.get("beats_exact"):
            return None
        if rng.random() < 0.5:  # drawn instruments, as keyset.py draws them
            draw_instruments(mid, rng)
        fluidsynth_render(mid, wav, 44100)
        y = decode(str(wav), sr=ANALYSIS_SR).samples
        sf.info(str(wav))  # the render is a readable file
    y = y[: int(min(dur, len(y) / ANALYSIS_SR) * ANALYSIS_SR)]
    beats = np.asarray(item["beats"], np.float64)
    downbeats = np.asarray(item["downbeats"], np.float64)
    if len(beats) < 16:
        return None
    return y, beats, downbeats


def _features(y: np.ndarray, sr: int) -> np.ndarray:
    from cratedig.analysis.frontend import compute_frontend

    return compute_frontend(y, sr=sr).mel_db.astype(np.float16)


def _one(item: dict[str, Any]) -> list[dict[str, Any]]:
    from cratedig.analysis.pipeline import ANALYSIS_SR
    from cratedig.audio.decode import decode

    if "score" in item or "groove" in item:
        if "score" in item:
            got = _render_score(item["score"])
            if got is None:
                return []
            y, beats, downbeats = got
        else:
            import grooveset

            y, beats, downbeats, _ = grooveset.render(item["groove"], ANALYSIS_SR)
        return [
            {
                "id": item["id"],
                "group": item["group"],
                "mel": _features(y, ANALYSIS_SR),
                "beats": beats,
                "downbeats": downbeats,
            }
        ]
    if "paths" in item:
        layers = [decode(p, sr=ANALYSIS_SR).samples for p in item["paths"]]
        n = min(len(x) for x in layers)
        y = np.sum([x[:n] for x in layers], axis=0).astype(np.float32)
    else:
        y = decode(item["path"], sr=ANALYSIS_SR).samples
    if "midi" not in item:
        return [
            {
                "id": item["id"],
                "group": item["group"],
                "mel": _features(y, ANALYSIS_SR),
                "beats": np.asarray(item["beats"], np.float64),
                "downbeats": np.asarray(item["downbeats"], np.float64),
            }
        ]
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(item["midi"])
    beats = pm.get_beats() + item["lag"]
    downbeats = pm.get_downbeats() + item["lag"]
    out = []
    dur = len(y) / ANALYSIS_SR
    start = 0.0
    while start + 20.0 <= dur:
        end = min(start + CHUNK_S, dur)
        seg = y[int(start * ANALYSIS_SR) : int(end * ANALYSIS_SR)]
        b = beats[(beats >= start) & (beats < end)] - start
        d = downbeats[(downbeats >= start) & (downbeats < end)] - start
        if len(b) >= 16:
            out.append(
                {
                    "id": f"{item['id']}@{int(start)}",
                    "group": item["group"],
                    "mel": _features(seg, ANALYSIS_SR),
                    "beats": b,
                    "downbeats": d,
                }
            )
        start = end
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grooves", type=int, default=480, help="grooves of bench/grooveset.py")
    ap.add_argument(
        "--part",
        choices=("all", "base", "corpus", "modules"),
        default="all",
        help="which part to (re)build: beatset.npz (base), corpus.npz (corpus), modules.npz "
        "(modules) or all three",
    )
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    parts = ("base", "corpus", "modules") if args.part == "all" else (args.part,)
    for part in parts:
        if part == "base":
            write(_items(args.grooves), OUT, args.workers)
        elif part == "corpus":
            write(corpus_items(), OUT_CORPUS, args.workers)
        else:
            write(module_items(), OUT_MODULES, args.workers)
    return 0


def write(items: list[dict[str, Any]], out: Path, workers: int) -> None:
    print(f"{len(items)} items for {out.name}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as ex:
        for got in ex.map(_one, items, chunksize=4):
            rows += got
    out.parent.mkdir(parents=True, exist_ok=True)
    lens = np.array([r["mel"].shape[1] for r in rows])
    nb = np.array([len(r["beats"]) for r in rows])
    nd = np.array([len(r["downbeats"]) for r in rows])
    np.savez_compressed(
        out,
        ids=np.array([r["id"] for r in rows]),
        groups=np.array([r["group"] for r in rows]),
        mel=np.concatenate([r["mel"] for r in rows], axis=1),
        lengths=lens,
        beats=np.concatenate([r["beats"] for r in rows]),
        n_beats=nb,
        downbeats=np.concatenate([r["downbeats"] for r in rows]),
        n_downbeats=nd,
    )
    hours = lens.sum() / (11025 / 256) / 3600
    print(f"{len(rows)} excerpts, {hours:.2f} h, {out}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
