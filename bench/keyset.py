"""Training audio with key truth for the key network (``bench/fit_key_net.py``; issue 9).

Three sources, none of them a source of ``bench/realset.py`` (whose corpus composers are
left out whole, so no movement of a realset work is trained on) and none used by ``tests/``:

- **Bach chorales** of the music21 corpus (PyPI ``music21``; ``bach`` is not a realset
  composer), the first 60 s exported to MIDI and rendered with FluidSynth as the realset's
  corpus scores are, with key truth by the same rules (``realset._corpus_truth``: the one key
  signature over the excerpt, the mode from the tag or the final bass note, else no key). Each
  chorale is played by instruments drawn from a pool (piano, organ, strings, choir, winds,
  brass, guitar, harp, pads), one for all parts or one per part, so that timbre is not a cue.
  Every 5th chorale (the dev chorales of the key experiments, ``bench/README.md``) is
  ``valid``; the others ``train``.
- **FluidSynth songs** of ``bench/truthset.py`` (GM drums, bass, chords and melody over a
  diatonic progression; key dealt from all 24), drawn from seed 31000, not a bench seed.
- **numpy-synthesized songs** (``cratedig.synth``, the demo's synthesizer), seeds from 70000,
  random key, tempo, meter, drums on or off;
- **modal loops** of the same synthesizer (seeds from 80000): Mixolydian, Dorian and Aeolian
  vamps (:data:`MODAL_LOOPS`) labelled as a musician names them (I-bVII-IV-I in G is G major,
  i-IV in D is D minor), a family the major/minor sources above lack.

Each item is stored as mono 11025 Hz int16 (what the front end reads) under
``bench/.cache/keyset/`` with a ``manifest.jsonl`` line; an item already stored is skipped,
so an interrupted build resumes.

Usage::

    .venv/bin/python bench/keyset.py                 # ~15 min on 2 cores
    .venv/bin/python bench/keyset.py --songs 60 --synth 60
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

CACHE = HERE / ".cache" / "keyset"
SR = 11025
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: General MIDI programs a chorale may be played by.
PROGRAM_POOL = (0, 1, 4, 6, 19, 20, 21, 24, 40, 41, 42, 46, 48, 49, 52, 56, 57, 60, 61, 65,
                68, 70, 71, 73, 88, 89)  # fmt: skip
SONG_SEED = 31000
SYNTH_SEED = 70000


def key_index(tonic: str, mode: str) -> int:
    """Index in :meth:`cratedig.theory.Key.index` order: majors by tonic, then minors."""
    return PITCH_CLASSES.index(tonic) + (12 if mode == "minor" else 0)


def _save(item_id: str, y: np.ndarray, sr: int, root: Path = CACHE) -> str:
    """Store ``y`` as mono SR int16 under ``root``/audio/; return its path relative to ``root``."""
    import soxr

    x = y if sr == SR else soxr.resample(y, sr, SR, quality="HQ")
    peak = max(float(np.abs(x).max()), 1e-9)
    rel = f"audio/{item_id.replace('/', '_')}.npy"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    np.save(root / rel, np.round(x / peak * 30000).astype(np.int16))
    return rel


def draw_instruments(mid: Path, rng: np.random.Generator) -> None:
    """Rewrite ``mid`` with GM programs drawn from PROGRAM_POOL: one for all its parts (half the
    time) or one per part; drum tracks are kept."""
    import warnings

    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(mid))
    one = int(rng.choice(PROGRAM_POOL)) if rng.random() < 0.5 else None
    for inst in pm.instruments:
        if not inst.is_drum:
            inst.program = one if one is not None else int(rng.choice(PROGRAM_POOL))
    pm.write(str(mid))


def chorale(path: str) -> dict[str, Any]:
    """Render one chorale with drawn instruments; its key truth by the realset's rules."""

    import soundfile as sf

    import realset
    from truthset import fluidsynth_render

    rel = path.split("/corpus/", 1)[1]
    rng = np.random.default_rng(zlib.crc32(rel.encode()))
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        item, score, final, pickup_q = realset._corpus_midi(path, mid)
        first, dur = realset._corpus_truth(
            item, score, final, pickup_q, mid, lambda t: t + realset.CORPUS_SECONDS
        )
        if not item.get("key"):
            return {"id": rel, "skip": "; ".join(item.get("notes", []))[:120]}
        draw_instruments(mid, rng)
        fluidsynth_render(mid, wav, 44100)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    y = y.mean(axis=1)[: int(min(dur, len(y) / sr) * sr)]
    return {
        "id": rel,
        "source": "chorale",
        "split": "valid" if rel in VALID_CHORALES else "train",
        "key": key_index(item["key"], item["mode"]),
        "key_certain": bool(item.get("key_certain", True)),
        "path": _save("chorale_" + rel, y, sr),
    }


def song(index: int) -> dict[str, Any]:
    """One FluidSynth song of ``truthset`` (seed :data:`SONG_SEED`)."""
    import soundfile as sf

    import truthset

    spec = truthset.draw_spec(SONG_SEED, index)
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        truthset.compose(spec).write(str(mid))
        truthset.fluidsynth_render(mid, wav, 44100)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return {
        "id": f"song_{SONG_SEED}_{index}",
        "source": "fluidsynth",
        "split": "train",
        "key": spec.tonic + (12 if spec.mode == "minor" else 0),
        "key_certain": True,
        "path": _save(f"song_{SONG_SEED}_{index}", y.mean(axis=1), sr),
    }


def _numpy_song(
    rng: np.random.Generator, key_index: int, seed: int, progression: list[int] | None = None
) -> Any:
    """A song of ``cratedig.synth`` with tempo, meter, length, lead-in and drums from ``rng``."""
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    return synthesize_song(
        tempo=float(rng.uniform(80, 165)),
        key=Key.from_index(key_index),
        meter=int(rng.choice([3, 4, 4, 4])),
        bars=int(rng.choice([16, 24, 32])),
        sr=22050,
        lead_in=float(rng.uniform(0, 2)),
        seed=seed,
        drums=bool(rng.random() < 0.8),
        progression=progression,
    )


def synth(index: int) -> dict[str, Any]:
    """One numpy-synthesized song (seed :data:`SYNTH_SEED` + index)."""
    rng = np.random.default_rng([SYNTH_SEED, index])
    k = int(rng.integers(24))
    s = _numpy_song(rng, k, SYNTH_SEED + index)
    return {
        "id": f"synth_{SYNTH_SEED}_{index}",
        "source": "numpy",
        "split": "train",
        "key": k,
        "key_certain": True,
        "path": _save(f"synth_{SYNTH_SEED}_{index}", s.audio, s.sr),
    }


#: Modal loops as a musician names them (issue 9, item 4): (parent-scale degrees, semitones
#: from the parent major's tonic to the named tonic, mode). The harmony is diatonic in the
#: parent major scale; the loop starts on its tonic chord, where the bass states it.
MODAL_LOOPS = (
    ((5, 4, 1, 5), 7, "major"),  # Mixolydian I-bVII-IV-I
    ((5, 4), 7, "major"),  # Mixolydian I-bVII vamp
    ((5, 4, 5, 1), 7, "major"),  # Mixolydian I-bVII-I-IV
    ((2, 5), 2, "minor"),  # Dorian i-IV vamp
    ((2, 5, 2, 1), 2, "minor"),  # Dorian i-IV-i-bVII
    ((6, 5, 4, 5), 9, "minor"),  # Aeolian i-bVII-bVI-bVII
    ((6, 4, 5, 6), 9, "minor"),  # Aeolian i-bVI-bVII-i
    ((6, 2, 6, 5), 9, "minor"),  # Aeolian i-iv-i-bVII
)
MODAL_SEED = 80000


def modal(index: int) -> dict[str, Any]:
    """One numpy-synthesized modal loop (seed :data:`MODAL_SEED` + index), labelled by the
    tonic its bass and loop start state."""
    rng = np.random.default_rng([MODAL_SEED, index])
    degrees, offset, mode = MODAL_LOOPS[index % len(MODAL_LOOPS)]
    parent = int(rng.integers(12))
    tonic = (parent + offset) % 12
    s = _numpy_song(rng, parent, MODAL_SEED + index, list(degrees))
    return {
        "id": f"modal_{MODAL_SEED}_{index}",
        "source": "modal",
        "split": "train",
        "key": tonic + (12 if mode == "minor" else 0),
        "key_certain": True,
        "path": _save(f"modal_{MODAL_SEED}_{index}", s.audio, s.sr),
    }


VALID_CHORALES: set[str] = set()


def chorale_paths() -> list[str]:
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith(".mxl"))
    VALID_CHORALES.update(p.split("/corpus/", 1)[1] for p in paths[::5])
    return paths


def _init(valid: list[str]) -> None:
    VALID_CHORALES.update(valid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chorales", type=int, default=10_000, help="at most this many")
    ap.add_argument("--songs", type=int, default=240)
    ap.add_argument("--synth", type=int, default=240)
    ap.add_argument("--modal", type=int, default=160)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest = CACHE / "manifest.jsonl"
    done = set()
    if manifest.exists():
        done = {json.loads(line)["id"] for line in manifest.read_text().splitlines() if line}
    jobs: list[tuple[Any, Any, str]] = []
    for p in chorale_paths()[: args.chorales]:
        rel = p.split("/corpus/", 1)[1]
        jobs.append((chorale, p, rel))
    jobs += [(song, i, f"song_{SONG_SEED}_{i}") for i in range(args.songs)]
    jobs += [(synth, i, f"synth_{SYNTH_SEED}_{i}") for i in range(args.synth)]
    jobs += [(modal, i, f"modal_{MODAL_SEED}_{i}") for i in range(args.modal)]
    jobs = [j for j in jobs if j[2] not in done]
    print(f"{len(done)} stored, {len(jobs)} to make", flush=True)
    with (
        ProcessPoolExecutor(
            args.workers, initializer=_init, initargs=(sorted(VALID_CHORALES),)
        ) as ex,
        manifest.open("a") as out,
    ):
        collect({ex.submit(fn, arg): name for fn, arg, name in jobs}, out)
    return 0


def collect(futs: dict[Any, str], out: Any) -> None:
    """Write each finished job's record (futures mapped to item ids) to the open manifest
    ``out`` as it comes; a job that raised is written as a skip with the reason (a score
    music21 cannot export: say so, go on), so one bad item never stops a build."""
    for n, fut in enumerate(as_completed(futs), 1):
        try:
            rec = fut.result()
        except Exception as e:
            rec = {"id": futs[fut], "skip": f"{type(e).__name__}: {e}"[:160]}
        out.write(json.dumps(rec) + "\n")
        out.flush()
        if n % 25 == 0:
            print(f"{n}/{len(futs)}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
