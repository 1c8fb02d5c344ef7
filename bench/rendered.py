"""Produced audio with its score beside it: tempo, beats and bar lines with exact truth.

Planet Blupi's music ships twice in Debian: as MIDI (``planetblupi-music-midi``) and as the
audio its composer produced from it (``planetblupi-music-ogg``: drums, bass, pads and leads,
mixed and mastered, 10-29 minutes a piece). The audio follows the MIDI's timeline (onset
envelope against the MIDI's note onsets, in the first two minutes and again in two minutes from
the middle: where both agree within :data:`LAG_AGREE_S`, the MIDI's times moved by that lag are
the audio's; a piece where they disagree is left out with the reason), so the MIDI's beats and
bar lines (``pretty_midi``: its tempo map and time signatures) are the audio's, exactly. That is what the
consensus set (``bench/consensus.py``) lacks: there madmom's bar lines are the only reference,
and they are no truth. Neither package is reserved, nor used by another set.

Items: :data:`STARTS` (three excerpts of :data:`EXCERPT_S` seconds per piece), split dev /
held-out by piece (``realset.split_of``): tune on dev, report held-out. The MIDI files carry
no key (every key signature is C major, the format's default), so no key is scored.

Systems in one run: cratedig, the plain librosa pipeline of ``accuracy.py`` and, with
``--madmom``, madmom's RNN + DBN beat and bar tracker (a trained reference, ~20x slower; its
estimates are cached).

Usage::

    .venv/bin/python bench/rendered.py --split dev
    .venv/bin/python bench/rendered.py --split heldout --madmom
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent / ".cache" / "rendered"
OUT = Path(__file__).resolve().parent / "out"
PACKAGES = ("planetblupi-music-midi", "planetblupi-music-ogg")
MUSIC = "usr/share/planetblupi/music"
EXCERPT_S = 60.0
STARTS = (30.0, 210.0, 390.0)
SR = 44100
#: The audio's lag against the MIDI, measured in two places, must agree within this (s).
LAG_AGREE_S = 0.02


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _lag(y: np.ndarray, sr: int, onsets: np.ndarray) -> float:
    """Lag (s) of the audio against the MIDI note onsets: the onset envelope's best match."""
    import librosa

    hop = 256
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    fps = sr / hop
    imp = np.zeros_like(env)
    idx = np.round(onsets * fps).astype(int)
    np.add.at(imp, idx[(idx >= 0) & (idx < len(imp))], 1.0)
    lags = np.arange(-int(1.0 * fps), int(1.0 * fps) + 1)
    n = len(env)
    score = [
        float(np.dot(env[max(0, k) : n + min(0, k)], imp[max(0, -k) : n - max(0, k)])) for k in lags
    ]
    return float(lags[int(np.argmax(score))] / fps)


def build() -> list[dict[str, Any]]:
    """Fetch both packages, check each piece's alignment, cut the excerpts (cached)."""
    manifest = ROOT / "items.json"
    if manifest.exists():
        return list(json.loads(manifest.read_text())["items"])
    import pretty_midi
    import soundfile as sf

    import realset
    from cratedig.audio.decode import decode

    for package in PACKAGES:
        log(f"fetching {package} ...")
        realset.fetch_package(package, ROOT)
    songs = ROOT / "songs"
    songs.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for mid in sorted((ROOT / "pkgroot" / MUSIC).glob("*.mid")):
        piece = mid.stem
        ogg = mid.with_suffix(".ogg")
        if not ogg.exists():
            skipped[piece] = "no audio beside the MIDI"
            continue
        pm = pretty_midi.PrettyMIDI(str(mid))
        beats, downbeats = pm.get_beats(), pm.get_downbeats()
        _, tempi = pm.get_tempo_changes()
        meters = {(t.numerator, t.denominator) for t in pm.time_signature_changes}
        y = decode(ogg, sr=SR, mono=True).samples
        notes = np.array([n.start for i in pm.instruments for n in i.notes])
        mid_s = float(int(len(y) / SR / 2))
        lag = _lag(y[: int(120 * SR)], SR, notes[notes < 120])
        again = _lag(
            y[int(mid_s * SR) : int((mid_s + 120) * SR)],
            SR,
            notes[(notes >= mid_s) & (notes < mid_s + 120)] - mid_s,
        )
        if abs(lag - again) > LAG_AGREE_S:
            skipped[piece] = (
                f"lag {lag * 1000:+.0f} ms at the start, {again * 1000:+.0f} ms mid-way"
            )
            continue
        beats, downbeats = beats + lag, downbeats + lag
        for start in STARTS:
            end = start + EXCERPT_S
            if end > len(y) / SR:
                continue
            name = f"{piece}_{int(start):04d}.flac"
            sf.write(songs / name, y[int(start * SR) : int(end * SR)], SR, format="FLAC")
            inside = (beats >= start) & (beats < end)
            items.append(
                {
                    "id": f"{piece}@{int(start)}",
                    "piece": piece,
                    "file": name,
                    "split": realset.split_of(f"planetblupi:{piece}"),
                    "tempo": round(float(tempi[0]), 4)
                    if len(set(np.round(tempi, 2))) == 1
                    else None,
                    "meter": sorted(meters)[0][0] if len(meters) == 1 else None,
                    "beats": [round(float(b - start), 5) for b in beats[inside]],
                    "downbeats": [
                        round(float(b - start), 5)
                        for b in downbeats[(downbeats >= start) & (downbeats < end)]
                    ],
                    "lag_ms": round(lag * 1000, 1),
                }
            )
    ROOT.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"items": items, "skipped": skipped}, indent=1))
    for piece, why in skipped.items():
        log(f"  left out {piece}: {why}")
    return items


def _madmom(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    import accuracy

    cache = ROOT / "madmom.json"
    data: dict[str, dict[str, Any]] = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [it for it in items if it["id"] not in data]
    if todo:
        system = accuracy.madmom_system()
        if system.run is None:
            raise SystemExit(f"madmom: {system.unavailable}")
        log(f"madmom: {len(todo)} excerpts ...")
        for it in todo:
            est, _, _ = accuracy.call(system, str(ROOT / "songs" / it["file"]))
            data[it["id"]] = {
                "tempo": est.tempo,
                "beats": [round(float(b), 4) for b in est.beats],
                "downbeats": [round(float(b), 4) for b in est.downbeats],
            }
            cache.write_text(json.dumps(data))
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    ap.add_argument("--madmom", action="store_true", help="also madmom (cached after one run)")
    a = ap.parse_args(argv)
    import accuracy

    items = [it for it in build() if a.split == "all" or it["split"] == a.split]
    peers = _madmom(items) if a.madmom else {}
    systems = [accuracy.cratedig_system(), accuracy.librosa_system()]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for it in items:
        row: dict[str, Any] = {"id": it["id"], "truth_tempo": it["tempo"]}
        ests: dict[str, Any] = {}
        for s in systems:
            est, _, _ = accuracy.call(s, str(ROOT / "songs" / it["file"]))
            ests[s.name] = (est.tempo, est.beats, est.downbeats)
            if s.name == "cratedig":
                row["cratedig_conf"] = est.confidence.get("tempo")
                row["cratedig_bar_conf"] = est.confidence.get("downbeat")
        if it["id"] in peers:
            m = peers[it["id"]]
            ests["madmom"] = (m["tempo"], np.asarray(m["beats"]), np.asarray(m["downbeats"]))
        for name, (tempo, beats, downbeats) in ests.items():
            acc1, acc2 = accuracy.tempo_scores(it["tempo"], tempo)
            row[f"{name}_tempo"] = round(float(tempo), 2)
            row[f"{name}_acc1"], row[f"{name}_acc2"] = acc1, acc2
            row[f"{name}_ratio"] = accuracy.ratio_class(it["tempo"], tempo)
            row[f"{name}_beat_f"] = accuracy.beat_f_trimmed(it["beats"], np.asarray(beats))
            row[f"{name}_downbeat_f"] = accuracy.beat_f_trimmed(
                it["downbeats"], np.asarray(downbeats)
            )
        rows.append(row)
    report(rows, list(ests), a.split, time.perf_counter() - t0)
    return 0


def report(rows: list[dict[str, Any]], names: list[str], split: str, elapsed: float) -> None:
    print(
        f"rendered --split {split}: {len(rows)} excerpts of {EXCERPT_S:.0f} s, "
        f"{len({r['id'].split('@')[0] for r in rows})} pieces (Planet Blupi, truth from the MIDI)"
    )
    head = ("system", "n", "Acc1", "Acc2", "beat F", "downbeat F", "downbeat F | Acc1")
    print("  " + "".join(f"{h:>18s}" for h in head))
    summary: dict[str, Any] = {"split": split, "excerpts": len(rows), "systems": {}}
    for name in names:
        rs = [r for r in rows if f"{name}_acc1" in r]
        right = [r for r in rs if r[f"{name}_acc1"]]
        vals = (
            float(np.mean([r[f"{name}_acc1"] for r in rs])),
            float(np.mean([r[f"{name}_acc2"] for r in rs])),
            float(np.mean([r[f"{name}_beat_f"] for r in rs])),
            float(np.mean([r[f"{name}_downbeat_f"] for r in rs])),
            float(np.mean([r[f"{name}_downbeat_f"] for r in right])) if right else float("nan"),
        )
        print(f"  {name:>18s}{len(rs):18d}" + "".join(f"{v:18.3f}" for v in vals))
        summary["systems"][name] = dict(zip(head[1:], (len(rs), *vals), strict=True))
    for r in rows:
        wrong = [n for n in names if not r.get(f"{n}_acc1", True)]
        bars = r.get("cratedig_downbeat_f", 1.0) < 0.5
        if wrong or bars:
            print(
                f"    {r['id']:18s} truth {r['truth_tempo']:7.2f}  "
                + "  ".join(
                    f"{n} {r[f'{n}_tempo']:7.2f} ({r[f'{n}_ratio']}, bars F {r[f'{n}_downbeat_f']:.2f})"
                    for n in names
                    if f"{n}_tempo" in r
                )
            )
    print(f"  ({elapsed:.0f} s)")
    OUT.mkdir(exist_ok=True)
    (OUT / f"rendered_{split}.json").write_text(
        json.dumps({**summary, "rows": rows}, indent=1, default=float)
    )
    print(f"  wrote {OUT / f'rendered_{split}.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
