"""Section boundaries and labels of cratedig beside a librosa baseline, on held-out songs.

The songs come from the numpy synthesizer (``cratedig.synth``) with varied forms (intro-A-B-A-
outro, break-drop-break-drop, verse/chorus songs, 4-bar sections off the 8-bar grid, a lead-in,
dance build-ups into drops, a drop a bar off the grid)
and seeds that no test uses (1400..), so nothing here was tuned on them. Truth is the
synthesizer's own section list.

Reported, per system, in one run:

- boundary hit rate F-measure at 3 s and 0.5 s (``mir_eval.segment.detection``, ``trim=True``:
  the track's start and end are not counted as boundaries);
- label accuracy per 4-bar phrase of the truth: ``exact`` (the label itself; a ``build``
  counts for a truth ``verse`` or ``break`` only if it leads into a drop/chorus, never), and
  ``role`` (intro, outro, low = break, mid = verse/build, peak = drop/chorus);
- time: cratedig's section stage beside the whole analysis (the stage must stay < 10 %).

``--truthset`` adds an independent check on the FluidSynth songs of ``bench/truthset.py`` (GM
instruments, its held-out n=40 seed=2026 set, built without copies if missing): their only
marked section is the drumless, melody-less *breakdown* phrase some songs carry, so it reports,
over those songs, the hit rate of the breakdown's two boundaries at 3 s and 0.5 s and how often
its bars are labelled ``break`` (other boundaries, such as instruments entering in the intro,
are unmarked there, so no precision is computed).

``--set real --split dev|heldout`` measures the real-music set instead (``bench/realset.py``:
tracker modules rendered through libopenmpt and MuseScore scores, each with section truth read
from its source file). Truth: for a module, a section starts where the set of instruments in
play changes by half or more from one order (played pattern) to the next (a pattern change
alone is no section: most modules change pattern every 64 rows); for a score, after double or
final barlines, at rehearsal marks and section breaks, and where the play goes back (repeats,
D.S.). Reported per split: boundary F at 3 s and 0.5 s pooled over the pieces (hits summed,
so a piece without interior truth still counts the boundaries it invents) and the mean
per-piece F of the pieces with interior truth, beside librosa agglomerative given the true
count and given a count read from the audio (one section per 16 bars of its beat track: like
for like, cratedig is not told the count); ``cratedig_true_downbeats`` is cratedig's section
stage on the true bar grid (the piece's downbeats), which separates section errors from beat
and meter errors upstream; **grouping** per order of the modules: of the pairs of orders playing the same pattern,
the share cratedig puts in one section group (repeats grouped), and of the pairs whose
instrument sets differ by half or more, the share in different groups (changes told apart).
The sources carry no drop/break/verse semantics, so no label accuracy is computed there. Only
the ``dev`` split was looked at while tuning.

The librosa baseline is the textbook recipe: ``librosa.load``, ``beat_track``, beat-synchronous
MFCC + chroma (``chroma_stft``), ``librosa.segment.agglomerative`` given the *true* number of
sections (an oracle advantage), boundaries on beats.

Usage::

    .venv/bin/python bench/sections.py             # 32 songs
    .venv/bin/python bench/sections.py --limit 4   # quicker
    .venv/bin/python bench/sections.py --set real --split heldout   # the real-music set
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from cratedig.analysis.pipeline import analyze_signal
from cratedig.synth import default_sections, synthesize_song
from cratedig.theory import Key

SR = 22050
OUT = Path(__file__).parent / "out"

# (name, sections): the forms. Lengths in bars.
FORMS: list[tuple[str, list[tuple[str, int]]]] = [
    (
        "intro-A-B-A-outro",
        [("intro", 8), ("verse", 16), ("chorus", 16), ("verse", 16), ("outro", 8)],
    ),
    (
        "build-drop-break-drop",
        [("intro", 8), ("break", 8), ("drop", 16), ("break", 16), ("drop", 16), ("outro", 8)],
    ),
    (
        "verse-chorus x2",
        [
            ("intro", 8),
            ("verse", 8),
            ("chorus", 8),
            ("verse", 8),
            ("chorus", 8),
            ("break", 8),
            ("chorus", 16),
            ("outro", 8),
        ],
    ),
    (
        "4-bar sections",
        [("intro", 4), ("verse", 12), ("chorus", 8), ("break", 4), ("drop", 12), ("outro", 8)],
    ),
    ("club", [("intro", 16), ("drop", 16), ("break", 8), ("drop", 16), ("outro", 16)]),
    ("short song", [("intro", 4), ("verse", 8), ("chorus", 8), ("outro", 4)]),
    ("drop first", [("drop", 8), ("break", 8), ("verse", 8), ("drop", 16), ("outro", 8)]),
    ("long verse", [("intro", 8), ("verse", 24), ("break", 8), ("chorus", 16), ("outro", 8)]),
    ("demo 32 bars", default_sections(32)),
    ("demo 48 bars", default_sections(48)),
    (
        "build-drop 4-bar",
        [("intro", 8), ("verse", 4), ("drop", 8), ("break", 4), ("drop", 8), ("outro", 4)],
    ),
    ("long breakdown", [("intro", 8), ("drop", 16), ("break", 16), ("drop", 16), ("outro", 8)]),
    # Dance build-ups (no kick or bass, a snare roll, the level rising) into the drops.
    (
        "build-drop x2",
        [
            ("intro", 8),
            ("build", 8),
            ("drop", 16),
            ("break", 8),
            ("build", 8),
            ("drop", 16),
            ("outro", 8),
        ],
    ),
    ("verse-build-drop", [("intro", 8), ("verse", 16), ("build", 8), ("drop", 16), ("outro", 8)]),
    (
        "break then 4-bar build",
        [("intro", 8), ("drop", 16), ("break", 8), ("build", 4), ("drop", 16), ("outro", 8)],
    ),
    # A drop that comes a bar early: off the 4-bar grid by one bar (a 7-bar intro).
    ("drop a bar early", [("intro", 7), ("drop", 9), ("break", 8), ("drop", 8), ("outro", 8)]),
]
#: ``--fills``: a drum fill in the last bar of every section (set by main).
FILLS = False
KEYS = ["A minor", "C major", "F minor", "G major", "D minor", "E major", "B minor", "Bb major"]

ROLE = {
    "intro": "intro",
    "outro": "outro",
    "break": "low",
    "verse": "mid",
    "build": "mid",
    "chorus": "peak",
    "drop": "peak",
}


def songs(limit: int, seed: int = 1400) -> list[tuple[str, object]]:
    out = []
    for i in range(limit):
        name, form = FORMS[i % len(FORMS)]
        bars = sum(b for _, b in form)
        # Tempo, key and lead-in drawn from the seed: the development and held-out sets differ
        # in more than melodies.
        rng = np.random.default_rng(seed + i)
        song = synthesize_song(
            tempo=float(rng.integers(96, 151)),
            key=Key.parse(KEYS[int(rng.integers(len(KEYS)))]),
            bars=bars,
            seed=seed + i,
            sr=SR,
            sections=form,
            lead_in=float(rng.choice([0.0, 0.0, 0.0, 0.6, 1.3])),
            fills=FILLS,
        )
        out.append((name, song))
    return out


def librosa_sections(y: np.ndarray, sr: int, k: int) -> np.ndarray:
    """Boundary times (s) from librosa's agglomerative segmentation into ``k`` parts."""
    import librosa

    _, beats = librosa.beat.beat_track(y=y, sr=sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    feats = np.vstack(
        [librosa.util.sync(mfcc, beats), librosa.util.sync(chroma, beats, aggregate=np.median)]
    )
    feats = librosa.util.normalize(feats, axis=1)
    bounds = librosa.segment.agglomerative(feats, k)
    beat_times = librosa.frames_to_time(librosa.util.fix_frames(beats, x_min=0), sr=sr)
    # Its first boundary is the track's start (beat 0), not a section change.
    return np.asarray(beat_times[np.clip(bounds[1:], 0, len(beat_times) - 1)])


def librosa_sections_auto(y: np.ndarray, sr: int, bars_per_section: int = 16) -> np.ndarray:
    """:func:`librosa_sections` with the section count read from the audio, not the truth: one
    section per ``bars_per_section`` 4-beat bars of librosa's own beat track (at least two)."""
    import librosa

    _, beats = librosa.beat.beat_track(y=y, sr=sr)
    k = max(2, round(len(beats) / (4 * bars_per_section)))
    return librosa_sections(y, sr, k)


def oracle_grid_bounds(path: str, downbeats: list[float], meter: int) -> np.ndarray:
    """cratedig's section boundaries (s) when its bar grid is replaced by the true downbeats:
    what the section stage scores without the beat and meter errors upstream."""
    from cratedig.analysis import features as feat
    from cratedig.analysis.frontend import compute_frontend
    from cratedig.analysis.structure import bar_bounds, bar_cues, segment_structure
    from cratedig.analysis.tonal import chroma_from_frontend, estimate_tuning
    from cratedig.audio.decode import ANALYSIS_SR, decode

    audio = decode(path, sr=ANALYSIS_SR)
    fe = compute_frontend(audio.samples, sr=audio.sr)
    chroma = chroma_from_frontend(fe, tuning=estimate_tuning(fe))
    db = np.asarray(downbeats, dtype=float)
    if db.size < 2:
        return np.zeros(0)
    starts, ends = bar_bounds(db, float(np.median(np.diff(db))) / meter, meter, fe.duration)
    cues = bar_cues(fe, feat.bar_chroma(chroma, fe.tonal_fps, starts, ends), starts, ends)
    s = segment_structure(cues, starts, ends)
    return np.array([starts[s.phrases[p0][0]] for p0, *_ in s.sections[1:]])


def intervals(bounds: np.ndarray, end: float) -> np.ndarray:
    b = np.unique(np.r_[0.0, bounds[(bounds > 0.05) & (bounds < end - 0.05)], end])
    return np.stack([b[:-1], b[1:]], axis=1)


def phrase_labels(song, sections: list[tuple[float, float, str]]) -> list[tuple[str, str]]:
    """(truth, estimate) label per 4-bar phrase of the truth, the estimate at its middle.

    A ``build`` estimated in a truth ``verse`` or ``break`` that leads into a drop or chorus
    counts as right (the synthesizer's forms call such a lead-in a break or verse; a DJ calls
    it the build-up): the pair is then ``("build", "build")``.
    """
    pairs = []
    for i, (st, en, lab) in enumerate(song.sections):
        nxt = song.sections[i + 1][2] if i + 1 < len(song.sections) else None
        bar_len = 4 * 60.0 / song.tempo
        t = st
        while t < en - 1e-6:
            mid = t + 2 * bar_len
            est = next((e for s0, e0, e in sections if s0 <= mid < e0), sections[-1][2])
            lead_in = lab in ("verse", "break") and nxt in ("drop", "chorus")
            pairs.append(("build", est) if est == "build" and lead_in else (lab, est))
            t += 4 * bar_len
    return pairs


def truthset_breakdowns(with_baseline: bool, n: int = 40, seed: int = 2026) -> dict[str, float]:
    """Breakdown boundary hit rates and ``break`` labels on the FluidSynth truth set."""
    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).parent))
    import truthset

    data = truthset.load(n, seed, 44100, 0)
    hits = {"f3": [], "f05": [], "lib_f3": [], "lib_f05": []}
    labelled = []
    for rec in data["songs"]:
        p = rec["spec"]["breakdown_phrase"]
        if p is None:
            continue
        db = np.asarray(rec["downbeats"])
        bar = float(np.median(np.diff(db)))
        # Boundaries closer than 4 bars to the end are no DJ section (and below the 4-bar
        # minimum by design): a breakdown that ends the song is its outro, not counted.
        if 8 * (p + 1) > len(db) - 4:
            continue
        lo, hi = float(db[8 * p]), float(db[8 * (p + 1)])
        y, sr = sf.read(rec["path"], dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        a = analyze_signal(y, sr=sr)
        est = np.array([s.start for s in a.sections[1:]])
        for key, bounds in (("", est),) + (
            (("lib_", librosa_sections(y, sr, 3)),) if with_baseline else ()
        ):
            for w, name in ((3.0, "f3"), (0.5, "f05")):
                hits[key + name] += [
                    float(bool(bounds.size) and np.min(np.abs(bounds - t)) <= w) for t in (lo, hi)
                ]
        mids = (db[8 * p : 8 * (p + 1)] + bar / 2).tolist()
        labelled += [
            _label_at([(s.start, s.end, s.label) for s in a.sections], t) == "break" for t in mids
        ]
        print(
            f"{rec['id']:24s} breakdown bars {8 * p}-{8 * p + 8}: "
            + " ".join(f"{s.label}/{s.bar}+{s.bars}" for s in a.sections),
            file=sys.stderr,
        )
    out = {
        "songs": len(hits["f3"]) // 2,
        "boundary_hit_rate@3s": float(np.mean(hits["f3"])) if hits["f3"] else float("nan"),
        "boundary_hit_rate@0.5s": float(np.mean(hits["f05"])) if hits["f05"] else float("nan"),
        "breakdown_bars_labelled_break": float(np.mean(labelled)) if labelled else float("nan"),
    }
    if with_baseline and hits["lib_f3"]:
        out["librosa_boundary_hit_rate@3s"] = float(np.mean(hits["lib_f3"]))
        out["librosa_boundary_hit_rate@0.5s"] = float(np.mean(hits["lib_f05"]))
    return out


def _label_at(sections: list[tuple[float, float, str]], t: float) -> str:
    return next((lab for s0, e0, lab in sections if s0 <= t < e0), sections[-1][2])


def _hits(ref: np.ndarray, est: np.ndarray, window: float) -> int:
    """Boundaries matched one-to-one within ``window`` s (as ``mir_eval.segment.detection``)."""
    import mir_eval

    return len(mir_eval.util.match_events(ref, est, window))


def _interior(bounds: list[float] | np.ndarray, end: float) -> np.ndarray:
    b = np.asarray(bounds, dtype=float)
    return np.unique(b[(b > 0.05) & (b < end - 0.05)])


def real_set(split: str, with_baseline: bool, source: str = "real") -> dict[str, object]:
    """Boundaries and grouping on the real-music set's pieces with section truth (``source``
    "modules": on ``bench/moduleset.py``'s modules instead)."""
    import librosa
    import mir_eval

    from cratedig.analysis.pipeline import analyze_file

    sys.path.insert(0, str(Path(__file__).parent))
    import realset

    if source == "modules":
        import moduleset

        data = moduleset.load()
    else:
        data = realset.load()
    items = [
        s
        for s in data["songs"]
        if s["split"] == split and s["kind"] in ("tracker", "musescore") and s.get("sections")
    ]
    systems: tuple[str, ...] = ("cratedig", "cratedig_true_downbeats")
    if with_baseline:
        systems += ("librosa", "librosa_auto")
    pooled = {k: {"ref": 0, "est": 0, "h3": 0, "h05": 0} for k in systems}
    per_piece: dict[str, list[tuple[float, float]]] = {k: [] for k in systems}
    repeats_grouped: list[bool] = []
    changes_apart: list[bool] = []
    t_total = t_sections = 0.0
    rows = []
    for item in items:
        truth = item["sections"]
        t0 = time.perf_counter()
        a = analyze_file(item["path"], use_tags=False)
        t_total += time.perf_counter() - t0
        t_sections += a.timings.get("sections", a.timings.get("structure", 0.0))
        end = float(a.duration)
        ref = _interior(truth["boundaries"], end)
        est = {"cratedig": _interior([s.start for s in a.sections[1:]], end)}
        est["cratedig_true_downbeats"] = _interior(
            oracle_grid_bounds(item["path"], item["downbeats"], int(item["meter"] or 4)), end
        )
        if with_baseline:
            y, sr = librosa.load(item["path"], sr=SR, mono=True)
            est["librosa"] = (
                _interior(librosa_sections(y, sr, len(ref) + 1), end) if len(ref) else np.zeros(0)
            )
            est["librosa_auto"] = _interior(librosa_sections_auto(y, sr), end)
        line = []
        for k in systems:
            e = est[k]
            h3, h05 = _hits(ref, e, 3.0), _hits(ref, e, 0.5)
            p = pooled[k]
            p["ref"] += len(ref)
            p["est"] += len(e)
            p["h3"] += h3
            p["h05"] += h05
            if len(ref):
                f3 = mir_eval.segment.detection(
                    intervals(ref, end), intervals(e, end), window=3.0, trim=True
                )[2]
                f05 = mir_eval.segment.detection(
                    intervals(ref, end), intervals(e, end), window=0.5, trim=True
                )[2]
                per_piece[k].append((f3, f05))
            line.append(f"{k} {len(e)} est, {h3} hits@3 {h05} @.5")
        units = truth.get("units") or []
        if units:
            mids = [
                0.5 * (u["start"] + (units[i + 1]["start"] if i + 1 < len(units) else end))
                for i, u in enumerate(units)
            ]
            group = [
                next((s.group for s in a.sections if s.start <= t < s.end), a.sections[-1].group)
                for t in mids
            ]
            for i in range(len(units)):
                for j in range(i + 1, len(units)):
                    if units[i]["pattern"] == units[j]["pattern"]:
                        repeats_grouped.append(group[i] == group[j])
                    else:
                        si, sj = set(units[i]["instruments"]), set(units[j]["instruments"])
                        if si | sj and 1 - len(si & sj) / len(si | sj) >= realset.INSTRUMENT_CHANGE:
                            changes_apart.append(group[i] != group[j])
        rows.append(
            {
                "id": item["id"],
                "kind": item["kind"],
                "truth": ref.tolist(),
                "cratedig": est["cratedig"].tolist(),
            }
        )
        print(
            f"{item['id']:32s} {item['kind']:9s} truth {len(ref):2d} | " + " | ".join(line),
            file=sys.stderr,
        )

    def f(h: int, r: int, e: int) -> float:
        return 2 * h / (r + e) if r + e else float("nan")

    out: dict[str, object] = {
        "split": split,
        "pieces": len(items),
        "pieces_with_interior_truth": len(per_piece["cratedig"]),
        "truth_boundaries": pooled["cratedig"]["ref"],
        "truth": "modules: instrument set changes by Jaccard >= "
        f"{realset.INSTRUMENT_CHANGE} between orders; scores: barlines/marks/returns",
    }
    for k in systems:
        p = pooled[k]
        name = {
            "librosa": "librosa_agglomerative_oracle_k",
            "librosa_auto": "librosa_agglomerative_k_per_16_bars",
        }.get(k, k)
        out[name] = {
            "estimated_boundaries": p["est"],
            "F@3s_pooled": f(p["h3"], p["ref"], p["est"]),
            "F@0.5s_pooled": f(p["h05"], p["ref"], p["est"]),
            "P@3s_pooled": p["h3"] / p["est"] if p["est"] else float("nan"),
            "R@3s_pooled": p["h3"] / p["ref"] if p["ref"] else float("nan"),
            "F@3s_mean_per_piece": float(np.mean([x for x, _ in per_piece[k]]))
            if per_piece[k]
            else float("nan"),
            "F@0.5s_mean_per_piece": float(np.mean([x for _, x in per_piece[k]]))
            if per_piece[k]
            else float("nan"),
        }
    out["grouping"] = {
        "same_pattern_pairs": len(repeats_grouped),
        "same_pattern_in_one_group": float(np.mean(repeats_grouped))
        if repeats_grouped
        else float("nan"),
        "instrument_change_pairs": len(changes_apart),
        "instrument_change_in_different_groups": float(np.mean(changes_apart))
        if changes_apart
        else float("nan"),
    }
    out["time"] = {
        "analysis_s": t_total,
        "sections_s": t_sections,
        "sections_share": t_sections / max(t_total, 1e-9),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"sections_{source}_{split}.json").write_text(
        json.dumps({"summary": out, "pieces": rows}, indent=1)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument(
        "--seed", type=int, default=1400, help="first seed (held-out: 1400; development: 900)"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip librosa (development)")
    ap.add_argument(
        "--fills", action="store_true", help="a drum fill in the last bar of every section"
    )
    ap.add_argument("--truthset", action="store_true", help="also the FluidSynth breakdowns")
    ap.add_argument(
        "--truthset-dev", action="store_true", help="the development truth set (n=32, seed=7)"
    )
    ap.add_argument(
        "--set",
        choices=("synth", "real", "modules"),
        default="synth",
        help="real: bench/realset.py pieces; modules: bench/moduleset.py's",
    )
    ap.add_argument(
        "--split", choices=("dev", "heldout"), default="dev", help="with --set real or modules"
    )
    args = ap.parse_args(argv)
    global FILLS
    FILLS = args.fills
    import mir_eval

    warnings.filterwarnings("ignore")
    if args.set in ("real", "modules"):
        print(json.dumps(real_set(args.split, not args.no_baseline, args.set), indent=1))
        return 0
    rows = []
    labels_all: list[tuple[str, str]] = []
    t_total = t_sections = t_lib = 0.0
    for name, song in songs(args.limit, args.seed):
        y = song.audio
        end = len(y) / SR
        ref = np.array([[s, e] for s, e, _ in song.sections])
        # The lead-in silence belongs to the first section (no boundary at the first beat).
        ref[0, 0], ref[-1, 1] = 0.0, end
        t0 = time.perf_counter()
        a = analyze_signal(y, sr=SR)
        t_total += time.perf_counter() - t0
        t_sections += a.timings.get("sections", a.timings.get("structure", 0.0))
        est = intervals(np.array([s.start for s in a.sections[1:]]), end)
        f3 = mir_eval.segment.detection(ref, est, window=3.0, trim=True)[2]
        f05 = mir_eval.segment.detection(ref, est, window=0.5, trim=True)[2]
        lf3 = lf05 = float("nan")
        if not args.no_baseline:
            t0 = time.perf_counter()
            lib_b = librosa_sections(y, SR, len(song.sections))
            t_lib += time.perf_counter() - t0
            lest = intervals(lib_b, end)
            lf3 = mir_eval.segment.detection(ref, lest, window=3.0, trim=True)[2]
            lf05 = mir_eval.segment.detection(ref, lest, window=0.5, trim=True)[2]
        pairs = phrase_labels(song, [(s.start, s.end, s.label) for s in a.sections])
        labels_all += pairs
        exact = np.mean([t == e for t, e in pairs])
        rows.append(
            {
                "form": name,
                "f3": f3,
                "f05": f05,
                "librosa_f3": lf3,
                "librosa_f05": lf05,
                "label_exact": exact,
                "truth": [lab for _, _, lab in song.sections],
                "estimate": [f"{s.label}/{s.bars}" for s in a.sections],
            }
        )
        print(
            f"{name:24s} F3 {f3:.2f} F.5 {f05:.2f} | librosa F3 {lf3:.2f} F.5 {lf05:.2f} | "
            f"labels {exact:.2f}  {' '.join(r for r in rows[-1]['estimate'])}",
            file=sys.stderr,
        )
    exact = float(np.mean([t == e for t, e in labels_all]))
    role = float(np.mean([ROLE.get(t) == ROLE.get(e) for t, e in labels_all]))
    summary = {
        "songs": len(rows),
        "cratedig": {
            "F@3s": float(np.mean([r["f3"] for r in rows])),
            "F@0.5s": float(np.mean([r["f05"] for r in rows])),
            "label_accuracy_exact": exact,
            "label_accuracy_role": role,
        },
        "librosa_agglomerative_oracle_k": {
            "F@3s": float(np.mean([r["librosa_f3"] for r in rows])),
            "F@0.5s": float(np.mean([r["librosa_f05"] for r in rows])),
        },
        "time": {
            "analysis_s": t_total,
            "sections_s": t_sections,
            "sections_share": t_sections / max(t_total, 1e-9),
            "librosa_baseline_s": t_lib,
        },
    }
    if args.truthset:
        n, seed = (32, 7) if args.truthset_dev else (40, 2026)
        summary["truthset_breakdowns"] = truthset_breakdowns(not args.no_baseline, n, seed)
    OUT.mkdir(exist_ok=True)
    (OUT / "sections.json").write_text(json.dumps({"summary": summary, "songs": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
