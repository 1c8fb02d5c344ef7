"""Training audio with beat-level truth for the learned tempo-level ranker
(``bench/fit_tempo_level.py``; issue 9).

None of it is a source of ``bench/realset.py`` (its corpus composers are left out whole) or of
``tests/``:

- **Scores of the music21 corpus** by composers realset does not use: Bach (chorales and the
  rest), Monteverdi's madrigals, the trecento pieces. The first ~70 s exported to MIDI and
  grid truth by realset's own rules (``realset._corpus_midi`` / ``_corpus_truth``: beats in the
  signature's unit from the score's bars, pickups handled). Corpus files carry no tempo (120
  when unmarked, the MIDI default), so each excerpt is **played at a drawn tempo**: its notated
  beat log-uniform in 45-180 BPM. A level ranker trained on scores all at 120 would learn that
  120 is the beat; at drawn tempi only the music can say which level the notation's beat is.
  Instruments are drawn from keyset's pool (one for all parts or one per part). Kept: steady
  tempo and a beat unit of a quarter (x/4; x/2 and x/8 meters name no sure level).
- **Dance loops with syncopation** (:func:`groove_item`, FluidSynth, GM drums): the patterns
  that issue 9 found taken for the beat in produced music, each drawn with others over a
  diatonic progression in 4/4: a four-on-the-floor or backbeat kit at 70-175 BPM, or a
  breakdown of off-beat open hats alone, or no drums, at 100-150 BPM; a continuous dotted-eighth pluck line with its delay echo, a 3-3-2 bass,
  off-beat stabs, sixteenth arpeggios, held pads; the kick's loudness drawn, often below the
  pluck's. Truth: the quarter note. Written here with
  pretty_midi and GM sounds, apart from the numpy patterns the tests render.
- **FluidSynth songs** of ``bench/truthset.py`` and **numpy songs** of ``cratedig.synth``,
  already rendered by ``bench/keyset.py`` (seeds 31000 and 70000): their tempo is the song's,
  at the quarter-note beat (the drums' level).

Each item: mono 11025 Hz int16 under ``bench/.cache/temposet/`` and a ``manifest.jsonl`` line
(tempo, beats, downbeats, meter). Resumable.

Usage::

    .venv/bin/python bench/keyset.py           # first (the songs are read from its cache)
    .venv/bin/python bench/temposet.py         # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import keyset  # noqa: E402  (bench/ is on the path only from here)

CACHE = HERE / ".cache" / "temposet"
SR = 11025
COMPOSERS = ("bach", "monteverdi", "trecento")
BPM_RANGE = (45.0, 180.0)
SECONDS = 60.0


def corpus_paths() -> list[str]:
    from music21 import corpus

    out = []
    for c in COMPOSERS:
        out += sorted(str(p) for p in corpus.getComposer(c) if str(p).endswith((".mxl", ".xml")))
    return out


def score_item(path: str) -> dict[str, Any]:
    """One corpus excerpt at a drawn tempo, drawn instruments; beats by realset's rules."""
    import warnings

    import pretty_midi
    import soundfile as sf

    import realset
    from truthset import fluidsynth_render

    rel = path.split("/corpus/", 1)[1]
    rng = np.random.default_rng(zlib.crc32(("tempo:" + rel).encode()))
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        item, score, final, pickup_q = realset._corpus_midi(path, mid)
        realset._corpus_truth(item, score, final, pickup_q, mid, lambda t: t + 70.0)
        if not (item.get("tempo_steady") and item.get("beat_level_certain") and item.get("tempo")):
            return {"id": rel, "skip": "not steady or beat unit not a quarter"}
        target = float(np.exp(rng.uniform(*np.log(BPM_RANGE))))
        s = float(item["tempo"]) / target  # time scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(mid))
        end = pm.get_end_time()
        pm.adjust_times([0.0, end], [0.0, end * s])
        one = int(rng.choice(keyset.PROGRAM_POOL)) if rng.random() < 0.5 else None
        for inst in pm.instruments:
            if not inst.is_drum:
                inst.program = one if one is not None else int(rng.choice(keyset.PROGRAM_POOL))
        pm.write(str(mid))
        fluidsynth_render(mid, wav, 44100)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    beats = np.asarray(item["beats"]) * s
    downbeats = np.asarray(item["downbeats"]) * s
    first = float(beats[0]) if len(beats) else 0.0
    dur = min(len(y) / sr, first + SECONDS)
    y = y.mean(axis=1)[: int(dur * sr)]
    return {
        "id": rel,
        "source": "corpus",
        "tempo": round(float(item["tempo"]) / s, 4),
        "meter": item.get("meter"),
        "beats": np.round(beats[beats < dur], 4).tolist(),
        "downbeats": np.round(downbeats[downbeats < dur], 4).tolist(),
        "path": keyset._save("corpus_" + rel, y, sr, root=CACHE),
    }


GROOVE_SEED = 92000
GROOVES = 300


def groove_item(index: int) -> dict[str, Any]:
    """One syncopated dance loop (seed :data:`GROOVE_SEED` + ``index``), truth the quarter."""
    import pretty_midi
    import soundfile as sf

    from truthset import fluidsynth_render

    rng = np.random.default_rng([GROOVE_SEED, index])
    kit = str(rng.choice(["four", "backbeat", "hats", "none", "four"]))
    # Without a kick the quarter is the beat only at a moderate tempo (at 75 the eighths are).
    tempo = float(
        rng.uniform(70.0, 175.0) if kit in ("four", "backbeat") else rng.uniform(100, 150)
    )
    spb = 60.0 / tempo
    six = spb / 4
    bars = int(np.ceil(36.0 / (4 * spb)))
    tonic = int(rng.integers(12))
    minor = bool(rng.random() < 0.5)
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    prog = [int(d) for d in rng.choice(7, size=4)]
    prog[0] = 0
    per = int(rng.choice([1, 2]))
    lead_in = float(rng.uniform(0.0, 1.5))
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)

    def inst(program: int, drum: bool = False) -> Any:
        i = pretty_midi.Instrument(program=program, is_drum=drum)
        pm.instruments.append(i)
        return i

    def note(i: Any, pitch: int, t: float, dur: float, vel: int) -> None:
        vel = int(np.clip(vel + rng.integers(-8, 9), 20, 127))
        i.notes.append(pretty_midi.Note(vel, int(pitch), lead_in + t, lead_in + t + dur))

    def chord(bar: int) -> list[int]:
        d = prog[(bar // per) % len(prog)]
        return [tonic + scale[(d + k) % 7] + 12 * ((d + k) // 7) for k in (0, 2, 4)]

    layers = [
        x
        for x in ("dotted", "tresillo", "stabs", "arp", "pad")
        if rng.random() < (0.6 if x in ("dotted", "tresillo") else 0.4)
    ] or ["dotted"]
    drums = inst(0, drum=True)
    pluck = inst(int(rng.choice([25, 46, 80, 81, 84, 105, 4, 11])))
    bass = inst(int(rng.choice([33, 34, 38, 39, 87])))
    pad = inst(int(rng.choice([48, 50, 89, 90, 91, 94])))
    kick = int(rng.uniform(55, 115))  # a kick quieter than the pluck above it, or not
    if "dotted" in layers:  # a continuous dotted-eighth line with its delay echo
        t, k = 0.0, 0
        while t < bars * 4 * spb - 0.05:
            c = chord(int(t // (4 * spb)))
            pitch = 60 + c[k % 3] % 12 + 12 * (k % 2)
            note(pluck, pitch, t, 2 * six, 110)
            note(pluck, pitch, t + 3 * six, 2 * six, 60)
            t, k = t + 3 * six, k + 1
    for bar in range(bars):
        t0 = bar * 4 * spb
        c = chord(bar)
        for b in range(4):
            tb = t0 + b * spb
            if kit == "four":
                note(drums, 36, tb, 0.1, kick)
                note(drums, 46 if rng.random() < 0.7 else 42, tb + 2 * six, 0.1, 80)
                if b % 2 == 1:
                    note(drums, 39, tb, 0.1, 90)
            elif kit == "backbeat":
                if b in (0, 2):
                    note(drums, 36, tb, 0.1, kick)
                if b in (1, 3):
                    note(drums, 38, tb, 0.1, 100)
                for k in range(2):
                    note(drums, 42, tb + 2 * k * six, 0.05, 70)
            elif kit == "hats":
                note(drums, 46, tb + 2 * six, 0.15, 85)
        if "tresillo" in layers:  # 3-3-2 eighths in the bass
            for j in (0, 6, 12):
                note(bass, 36 + c[0] % 12, t0 + j * six, 2.5 * six, 100)
        else:
            note(bass, 36 + c[0] % 12, t0, 3.5 * spb, 95)
        if "stabs" in layers:
            for b in range(4):
                for p in c:
                    note(pad, 60 + p % 12, t0 + b * spb + 2 * six, 1.5 * six, 85)
        if "arp" in layers:
            for j in range(16):
                note(pluck, 72 + c[j % 3] % 12, t0 + j * six, six, 60 + 20 * (j % 4 == 0))
        if "pad" in layers:
            for p in c:
                note(pad, 48 + p % 12, t0, 4 * spb - 0.05, 65)
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        pm.write(str(mid))
        fluidsynth_render(mid, wav, 44100)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    beats = lead_in + spb * np.arange(bars * 4)
    iid = f"groove_{GROOVE_SEED}_{index}"
    return {
        "id": iid,
        "source": "groove",
        "kit": kit,
        "layers": layers,
        "tempo": round(tempo, 4),
        "meter": 4,
        "beats": np.round(beats, 4).tolist(),
        "downbeats": np.round(beats[::4], 4).tolist(),
        "path": keyset._save(iid, y.mean(axis=1), sr, root=CACHE),
    }


def song_items() -> list[dict[str, Any]]:
    """The keyset's FluidSynth and numpy songs with their tempo (specs re-drawn, not rendered)."""
    import truthset

    out = []
    manifest = keyset.CACHE / "manifest.jsonl"
    for line in manifest.read_text().splitlines():
        it = json.loads(line)
        if it.get("source") == "fluidsynth":
            index = int(it["id"].rsplit("_", 1)[1])
            spec = truthset.draw_spec(keyset.SONG_SEED, index)
            tempo, meter = float(spec.tempo), int(spec.meter)
        elif it.get("source") in ("numpy", "modal"):
            seed = keyset.SYNTH_SEED if it["source"] == "numpy" else keyset.MODAL_SEED
            index = int(it["id"].rsplit("_", 1)[1])
            rng = np.random.default_rng([seed, index])
            if it["source"] == "numpy":
                rng.integers(24)
            else:
                rng.integers(12)
            tempo = float(rng.uniform(80, 165))
            meter = int(rng.choice([3, 4, 4, 4]))
        else:
            continue
        out.append(
            {
                "id": it["id"],
                "source": it["source"],
                "tempo": round(tempo, 4),
                "meter": meter,
                "path": str((keyset.CACHE / it["path"]).resolve()),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    if not (keyset.CACHE / "manifest.jsonl").exists():
        print(f"error: no keyset at {keyset.CACHE}: run bench/keyset.py first", file=sys.stderr)
        return 2
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest = CACHE / "manifest.jsonl"
    done = set()
    if manifest.exists():
        done = {json.loads(x)["id"] for x in manifest.read_text().splitlines() if x.strip()}
    paths = [p for p in corpus_paths() if p.split("/corpus/", 1)[1] not in done]
    if args.limit:
        paths = paths[: args.limit]
    with manifest.open("a") as fh:
        if "songs" not in done:
            for it in song_items():
                fh.write(json.dumps(it) + "\n")
            fh.write(json.dumps({"id": "songs", "skip": "marker: keyset songs listed"}) + "\n")
            fh.flush()
        with ProcessPoolExecutor(args.workers) as ex:
            futs = {ex.submit(score_item, p): p.split("/corpus/", 1)[1] for p in paths}
            futs |= {
                ex.submit(groove_item, i): f"groove_{GROOVE_SEED}_{i}"
                for i in range(GROOVES)
                if f"groove_{GROOVE_SEED}_{i}" not in done
            }
            keyset.collect(futs, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
