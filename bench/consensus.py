"""Produced music without human truth: where three independent analysers agree, is cratedig right?

None of the real sets holds much produced music (the real-music set is mostly tracker modules,
string quartets and scores; two Frets on Fire songs; the stems set the same). This set is game
soundtracks from Debian that a studio or a musician produced and mixed as audio (electronic,
industrial, rock, orchestral and ambient): Nexuiz, Warzone 2100, UFO: Alien Invasion, Endgame:
Singularity, HyperRogue, Advanced Strategic Command, Drascula, SuperTux, Extreme Tux Racer,
MegaGlest, OpenClonk, and (stop 30) Colobot, Fish Fillets NG, Pushover and Pathological. None of them carries a tempo,
so the truth is a **consensus of peers**: madmom's neural beat tracker (RNN + DBN, a
reference trained on annotated music), Essentia's RhythmExtractor2013 (multifeature) and
Mixxx's analyser (what a DJ's player shows). A piece counts where madmom and Essentia agree
on the tempo within 4 % (and, in the stricter row, Mixxx too); its beats are madmom's.

What this can and cannot say:

- where the peers agree, they are very likely right (three methods, one of them trained), so a
  cratedig reading that differs is very likely wrong: the figure is a **disagreement rate on
  the pieces that are easy for others**, not an accuracy on produced music at large;
- pieces where the peers disagree are reported separately (which of them cratedig sides with),
  never scored;
- keys: madmom's CNN key classifier and Essentia's KeyExtractor, where they agree exactly.

Excerpts: :data:`EXCERPT_S` seconds of each track from :data:`OFFSET_S` in (or its middle if
shorter), mono 44.1 kHz FLAC under ``bench/.cache/consensus/``; tracks under
:data:`MIN_TRACK_S` are left out (jingles, stingers). Split dev/held-out by sha1 of the source
id as realset's (``realset.split_of``): tune on dev, report held-out. The peers' estimates are
cached (``peers.json``); they run once, ~15 min on 2 cores.

Usage::

    .venv/bin/python bench/consensus.py --split dev
    .venv/bin/python bench/consensus.py --split heldout
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent / ".cache" / "consensus"
OUT = Path(__file__).resolve().parent / "out"
#: Debian package -> folder (or ``.pk3`` zip) that holds its music. None is in the brief's
#: reserved list (LMMS, hedgewars, supertuxkart, wesnoth, frozen-bubble) or in realset/stemset.
PACKAGES = {
    "nexuiz-music": "usr/share/games/nexuiz/data/music.pk3",
    "warzone2100-music": "usr/share/games/warzone2100/music",
    "ufoai-music": "usr/share/games/ufoai/base/0music.pk3",
    "singularity-music": "usr/share/games/singularity/music",
    "hyperrogue-music": "usr/share/hyperrogue",
    "asc-music": "usr/share/games/asc/music",
    "drascula-music": "usr/share/scummvm/drascula/audio",
    "supertux-data": "usr/share/games/supertux2/music",
    "extremetuxracer-data": "usr/share/games/etr/music",
    "megaglest-data": "usr/share/games/megaglest",
    "openclonk-data": "usr/share/games/openclonk/Music.ocg",
    # added at stop 30 (fresh pieces for both halves)
    "colobot-common-sounds": "usr/share/games/colobot/music",
    "fillets-ng-data": "usr/share/games/fillets-ng/music",
    "pushover-data": "usr/share/pushover/themes",
    "pathological": "usr/share/games/pathological/music",
}
#: Only files whose path has this part (MegaGlest's tilesets carry minute-long ambience: night
#: crickets and rain, no music).
ONLY = {"megaglest-data": "/music/"}
AUDIO = (".ogg", ".opus", ".mp3", ".flac", ".wav")
EXCERPT_S, OFFSET_S, MIN_TRACK_S = 60.0, 30.0, 45.0
SR = 44100
TOL = 0.04
PEERS = ("madmom", "essentia", "mixxx")


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _sources(root: Path, packages: list[str]) -> list[tuple[str, str, Any]]:
    """(package, source id, opener) of every music file: a path, or a (zip, member) pair."""
    out: list[tuple[str, str, Any]] = []
    for package in packages:
        rel = PACKAGES[package]
        where = root / "pkgroot" / rel
        if rel.endswith(".pk3"):
            with zipfile.ZipFile(where) as z:
                for m in sorted(z.namelist()):
                    if m.lower().endswith(AUDIO):
                        out.append((package, f"{package}/{m}", (where, m)))
        else:
            for f in sorted(where.rglob("*")):
                if f.suffix.lower() in AUDIO and ONLY.get(package, "") in f"/{f}":
                    out.append((package, f"{package}/{f.relative_to(where)}", f))
    return out


def _excerpt(args: tuple[str, str, Any, Path]) -> dict[str, Any] | None:
    import tempfile

    import soundfile as sf

    from cratedig.audio.decode import decode

    package, sid, src, out = args
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(src, tuple):
            path = Path(tmp) / Path(src[1]).name
            with zipfile.ZipFile(src[0]) as z:
                path.write_bytes(z.read(src[1]))
        else:
            path = src
        try:
            audio = decode(path, sr=SR, mono=True)
        except Exception as exc:  # a file the decoder refuses is no item
            log(f"  skipped {sid}: {type(exc).__name__}: {exc}")
            return None
    y = audio.samples
    dur = len(y) / SR
    if dur < MIN_TRACK_S:
        return None
    start = OFFSET_S if dur >= OFFSET_S + EXCERPT_S else max(0.0, (dur - EXCERPT_S) / 2)
    cut = y[int(start * SR) : int((start + EXCERPT_S) * SR)]
    if float(np.max(np.abs(cut))) < 1e-3:
        return None
    sf.write(out, cut, SR, format="FLAC")
    import realset

    return {
        "id": sid,
        "package": package,
        "file": out.name,
        "start": round(start, 2),
        "track_seconds": round(dur, 1),
        "split": realset.split_of(sid),
    }


def build() -> list[dict[str, Any]]:
    """Fetch the packages and cut the excerpts (cached: ``items.json``; a package added to
    :data:`PACKAGES` is cut on the next run, the others are kept)."""
    manifest = ROOT / "items.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    if isinstance(data, list):  # the first layout: items only, of the first seven packages
        data = {"packages": list(PACKAGES)[:7], "items": data}
    done = list(data.get("packages", []))
    items = [
        it
        for it in data.get("items", [])
        if it["package"] in PACKAGES and ONLY.get(it["package"], "") in f"/{it['id']}"
    ]
    todo = [p for p in PACKAGES if p not in done]
    if not todo:
        return items
    from concurrent.futures import ProcessPoolExecutor

    import realset

    for package in todo:
        log(f"fetching {package} ...")
        realset.fetch_package(package, ROOT)
    songs = ROOT / "songs"
    songs.mkdir(parents=True, exist_ok=True)
    jobs = []
    for package, sid, src in _sources(ROOT, todo):
        name = sid.replace("/", "__").rsplit(".", 1)[0] + ".flac"
        jobs.append((package, sid, src, songs / name))
    log(f"cutting {len(jobs)} excerpts ...")
    with ProcessPoolExecutor(2) as ex:
        items += [r for r in ex.map(_excerpt, jobs) if r is not None]
    manifest.write_text(json.dumps({"packages": done + todo, "items": items}, indent=1))
    return items


def _estimate_json(e: Any) -> dict[str, Any]:
    return {
        "tempo": e.tempo,
        "tonic": e.tonic,
        "mode": e.mode,
        "beats": [round(float(b), 4) for b in e.beats],
        "downbeats": [round(float(b), 4) for b in e.downbeats],
        "error": e.error,
    }


def peer_estimates(items: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{system: {item id: estimate}} for the peers, computed once and cached."""
    import accuracy

    cache = ROOT / "peers.json"
    data: dict[str, dict[str, dict[str, Any]]] = (
        json.loads(cache.read_text()) if cache.exists() else {}
    )
    makers = {
        "madmom": accuracy.madmom_system,
        "essentia": accuracy.essentia_system,
        "mixxx": accuracy.mixxx_system,
    }
    for name in PEERS:
        todo = [it for it in items if it["id"] not in data.get(name, {})]
        if not todo:
            continue
        system = makers[name]()
        if system.run is None:
            raise SystemExit(f"{name}: {system.unavailable}")
        log(f"{name}: {len(todo)} excerpts ...")
        for i, it in enumerate(todo):
            est, _, _ = accuracy.call(system, str(ROOT / "songs" / it["file"]))
            data.setdefault(name, {})[it["id"]] = _estimate_json(est)
            if i % 20 == 19:
                cache.write_text(json.dumps(data))
        cache.write_text(json.dumps(data))
    return data


def _close(a: float, b: float, tol: float = TOL) -> bool:
    return bool(np.isfinite(a) and np.isfinite(b) and b > 0 and abs(a / b - 1.0) <= tol)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args(argv)
    import accuracy

    items = build()
    peers = peer_estimates(items)
    items = [it for it in items if a.split == "all" or it["split"] == a.split]
    if a.limit:
        items = items[: a.limit]
    systems = [accuracy.cratedig_system(), accuracy.librosa_system()]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for it in items:
        m = peers["madmom"][it["id"]]
        e = peers["essentia"][it["id"]]
        x = peers["mixxx"][it["id"]]
        two = _close(e["tempo"], m["tempo"])
        three = two and _close(x["tempo"], m["tempo"])
        key_agree = m["tonic"] is not None and (m["tonic"], m["mode"]) == (e["tonic"], e["mode"])
        row: dict[str, Any] = {
            "id": it["id"],
            "package": it["package"],
            "split": it["split"],
            "madmom": round(m["tempo"], 2),
            "essentia": round(e["tempo"], 2),
            "mixxx": round(x["tempo"], 2) if x["tempo"] == x["tempo"] else None,
            "consensus": "3" if three else "2" if two else "",
            "consensus_key": accuracy.PITCH_CLASSES[m["tonic"]] + " " + m["mode"]
            if key_agree
            else "",
        }
        for s in systems:
            assert s.run is not None
            est, _, _ = accuracy.call(s, str(ROOT / "songs" / it["file"]))
            row[s.name] = round(est.tempo, 2)
            row[f"{s.name}_key"] = est.key_name
            if two:
                acc1, acc2 = accuracy.tempo_scores(m["tempo"], est.tempo)
                row[f"{s.name}_acc1"], row[f"{s.name}_acc2"] = acc1, acc2
                row[f"{s.name}_ratio"] = accuracy.ratio_class(m["tempo"], est.tempo)
                row[f"{s.name}_beat_f"] = round(accuracy.beat_f_trimmed(m["beats"], est.beats), 4)
                row[f"{s.name}_beat_f_any"] = round(
                    accuracy.beat_f_any_level(m["beats"], est.beats), 4
                )
                if s.name == "cratedig" and len(m["downbeats"]) >= 4:
                    row["cratedig_bar_lines_as_madmom"] = round(
                        accuracy.beat_f_trimmed(m["downbeats"], est.downbeats), 4
                    )
            else:
                row[f"{s.name}_sides_with"] = (
                    "madmom"
                    if _close(est.tempo, m["tempo"])
                    else "essentia"
                    if _close(est.tempo, e["tempo"])
                    else "mixxx"
                    if _close(est.tempo, x["tempo"])
                    else "none"
                )
            if key_agree and est.tonic is not None:
                ref = {"key": accuracy.PITCH_CLASSES[m["tonic"]], "mode": m["mode"]}
                row[f"{s.name}_key_mirex"] = accuracy.key_score(ref, est)[0]
            if s.name == "cratedig":
                row["cratedig_tempo_confidence"] = est.confidence.get("tempo")
                row["cratedig_alternative"] = round(est.tempo_alternative, 2)
        rows.append(row)
    elapsed = time.perf_counter() - t0
    report(rows, systems, a.split, elapsed)
    return 0


def _mean(v: list[Any]) -> float:
    v = [float(x) for x in v if x is not None]
    return float(np.mean(v)) if v else float("nan")


def report(rows: list[dict[str, Any]], systems: list[Any], split: str, elapsed: float) -> None:
    agreed = [r for r in rows if r["consensus"]]
    strict = [r for r in rows if r["consensus"] == "3"]
    keyed = [r for r in rows if r["consensus_key"]]
    print(
        f"consensus --split {split}: {len(rows)} excerpts of produced game music; madmom and "
        f"Essentia agree on the tempo (4 %) on {len(agreed)}, Mixxx too on {len(strict)}; "
        f"madmom and Essentia name the same key on {len(keyed)}"
    )
    head = ("system", "n", "Acc1", "Acc2", "beat F", "beat F any", "key MIREX")
    print("  " + "".join(f"{h:>12s}" for h in head))
    summary: dict[str, Any] = {"split": split, "excerpts": len(rows), "systems": {}}
    for s in systems:
        for label, rs in (("2 peers", agreed), ("3 peers", strict)):
            vals = (
                len(rs),
                _mean([r[f"{s.name}_acc1"] for r in rs]),
                _mean([r[f"{s.name}_acc2"] for r in rs]),
                _mean([r[f"{s.name}_beat_f"] for r in rs]),
                _mean([r[f"{s.name}_beat_f_any"] for r in rs]),
                _mean([r.get(f"{s.name}_key_mirex") for r in keyed])
                if label == "2 peers"
                else float("nan"),
            )
            print(
                f"  {s.name + ', ' + label:>24s}"
                + "".join(f"{v:12.3f}" if isinstance(v, float) else f"{v:12d}" for v in vals)
            )
            summary["systems"][f"{s.name} ({label})"] = dict(zip(head[1:], vals, strict=True))
    conf = Counter(r["cratedig_ratio"] for r in agreed)
    print(
        "  cratedig tempo : consensus, 2 peers: "
        + ", ".join(f"{k} {v}" for k, v in conf.most_common())
    )
    bars = [
        r["cratedig_bar_lines_as_madmom"]
        for r in agreed
        if r.get("cratedig_bar_lines_as_madmom") is not None and r["cratedig_acc1"]
    ]
    print(
        f"  cratedig bar lines where madmom puts them (F, 70 ms), tempo right: {_mean(bars):.3f} of {len(bars)} (madmom's bar lines are no truth)"
    )
    sides = Counter(r.get("cratedig_sides_with") for r in rows if not r["consensus"])
    print(
        "  no consensus: cratedig sides with "
        + ", ".join(f"{k} {v}" for k, v in sides.most_common())
    )
    by_pkg: dict[str, list[dict[str, Any]]] = {}
    for r in agreed:
        by_pkg.setdefault(r["package"], []).append(r)
    print(
        "  by package (2 peers): "
        + "; ".join(
            f"{p} {_mean([r['cratedig_acc1'] for r in rs]):.2f} of {len(rs)} (librosa {_mean([r['librosa_acc1'] for r in rs]):.2f})"
            for p, rs in sorted(by_pkg.items())
        )
    )
    print("  cratedig misses (2 peers):")
    for r in agreed:
        if not r["cratedig_acc1"]:
            print(
                f"    {r['id'][:60]:60s} peers {r['madmom']:6.1f} / {r['essentia']:6.1f} / {r['mixxx']}, "
                f"cratedig {r['cratedig']:6.1f} ({r['cratedig_ratio']}; conf {r['cratedig_tempo_confidence']:.2f}, or {r['cratedig_alternative']}), librosa {r['librosa']:6.1f}"
            )
    print(f"  ({elapsed:.0f} s for cratedig and librosa)")
    OUT.mkdir(exist_ok=True)
    (OUT / f"consensus_{split}.json").write_text(
        json.dumps({**summary, "rows": rows}, indent=1, default=float)
    )
    with (OUT / f"consensus_{split}_files.csv").open("w", newline="") as f:
        keys = sorted({k for r in rows for k in r})
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    print(f"  wrote {OUT / f'consensus_{split}.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
