"""Render speed (and beat accuracy) of :func:`cratedig.render.engine.render_pair`.

Two workloads, on songs synthesized with exact beat grids (``cratedig.synth``):

- **pair**: a 16-bar query phrase at 124 BPM (A minor) with a 16-bar partner at 118 BPM
  (G minor): +5.1 % stretch and +2 semitones. Rendered with pieces of one beat, one bar (the
  default) and one constant stretch; for each mode the table gives milliseconds of render per
  second of output (median of ``--repeats``), the speed as x realtime and the largest error
  of the partner's beats against the query's (the partner's drum stem rendered the same way,
  onsets found as the first sample above a quarter of the local peak, minus the same
  detector's bias on the source drums).
- **mashup**: a ~2-minute query song (64 bars at 124 BPM, eight 8-bar phrases) and four partner
  songs (120, 126 and 128 BPM, and 63 BPM played as half time; four keys); each query phrase
  gets every partner phrase as a hand-made candidate (transform from the tempos and keys, a
  fixed-seed score), :func:`cratedig.render.plan.plan_mashup` picks one per phrase and every
  phrase is rendered with ``render_pair`` and concatenated. Planning is included in the time.

Usage::

    .venv/bin/python bench/render.py                 # 44.1 kHz mono, 5 repeats
    .venv/bin/python bench/render.py --sr 22050 --repeats 3 --stereo
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "out"
QUERY_BPM = 124.0
MODES: dict[str, int | None] = {"per beat": 1, "per bar": 4, "constant": None}


def _cut(song: Any, first_bar: int, bars: int, pad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``bars`` bars from ``first_bar`` with ``pad`` seconds either side; beats relative."""
    start = song.downbeats[first_bar]
    end = song.downbeats[first_bar + bars] if first_bar + bars < song.bars else song.duration
    lo = max(int(round((start - pad) * song.sr)), 0)
    hi = int(round((end + pad) * song.sr))
    beats = song.beats[(song.beats >= start - 1e-6) & (song.beats < end - 1e-6)]
    return song.audio[lo:hi], beats - lo / song.sr


def _onsets_near(y: np.ndarray, sr: int, times: np.ndarray, radius: float = 0.04) -> np.ndarray:
    out = []
    for t in times:
        lo = max(int(round((t - radius) * sr)), 0)
        env = np.abs(y[lo : int(round((t + radius) * sr))])
        out.append((lo + int(np.flatnonzero(env > 0.25 * env.max())[0])) / sr)
    return np.array(out)


def _median_time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _stereo(y: np.ndarray) -> np.ndarray:
    return np.stack([y, 0.8 * y]).astype(np.float32)


def bench_pair(sr: int, repeats: int, stereo: bool) -> dict[str, Any]:
    from cratedig.render.engine import render_pair
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    sections = [("verse", 8), ("chorus", 10)]
    q_song = synthesize_song(
        tempo=QUERY_BPM, key=Key.parse("A minor"), bars=18, sr=sr, seed=1, sections=sections
    )
    c_song = synthesize_song(
        tempo=118.0, key=Key.parse("G minor"), bars=18, sr=sr, seed=2, sections=sections
    )
    q, q_beats = _cut(q_song, 1, 16)
    c, c_beats = _cut(c_song, 1, 16, pad=0.3)
    drums = c_song.stems["drums"]
    lo = int(round((c_song.downbeats[1] - 0.3) * sr))
    c_drums = drums[lo : lo + len(c)]
    bias = float(np.median(_onsets_near(drums, sr, c_song.beats[4:60]) - c_song.beats[4:60]))
    if stereo:
        q, c = _stereo(q), _stereo(c)
    seconds = q.shape[-1] / sr
    render_pair(q, sr, q_beats, c, c_beats, semitones=2)  # warm-up: imports, FFT plans
    rows = {}
    for name, piece_beats in MODES.items():
        t = _median_time(
            lambda pb=piece_beats: render_pair(
                q, sr, q_beats, c, c_beats, semitones=2, piece_beats=pb
            ),
            repeats,
        )
        out = render_pair(
            np.zeros(q.shape[-1], np.float32), sr, q_beats, c_drums, c_beats, semitones=2,
            piece_beats=piece_beats, fade=0.0,
        )  # fmt: skip
        err = np.abs(_onsets_near(out.partner, sr, q_beats) - bias - q_beats)
        rows[name] = {
            "seconds": t,
            "ms_per_output_second": 1000 * t / seconds,
            "x_realtime": seconds / t,
            "beat_error_max_ms": 1000 * float(err.max()),
            "beat_error_median_ms": 1000 * float(np.median(err)),
            "downbeat_error_max_ms": 1000 * float(err[::4].max()),
        }
    return {"output_seconds": seconds, "modes": rows}


def _candidates(
    partners: list[Any], phrase_bars: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Every phrase of every partner song as a match-like record for an A minor 124 BPM query."""
    from cratedig.theory import Key, key_relation

    query_key = Key.parse("A minor")
    out = []
    for t, song in enumerate(partners):
        ratio = 2.0 if song.tempo * 1.5 < QUERY_BPM else 1.0
        shift = (query_key.tonic - song.key.tonic + 6) % 12 - 6
        for p in range(song.bars // phrase_bars):
            label = next(
                lab for s, e, lab in song.sections if s <= song.downbeats[p * phrase_bars] < e
            )
            out.append(
                {
                    "segment": f"t{t}_{p}",
                    "track_id": f"t{t}",
                    "path": f"<synth {song.tempo:g} BPM {song.key}>",
                    "start": float(song.downbeats[p * phrase_bars]),
                    "end": float(song.downbeats[(p + 1) * phrase_bars])
                    if (p + 1) * phrase_bars < song.bars
                    else song.duration,
                    "score": round(float(0.55 + 0.35 * rng.random()), 4),
                    "tempo_ratio": ratio,
                    "stretch": round(QUERY_BPM / (song.tempo * ratio) - 1.0, 4),
                    "semitones": int(shift),
                    "key_relation": key_relation(query_key, song.key.transpose(shift)),
                    "energy": {"chorus": 0.9, "drop": 1.0, "break": 0.3}.get(label, 0.6),
                    "_song": t,
                    "_bar": p * phrase_bars,
                }
            )
    return out


def bench_mashup(sr: int, repeats: int, stereo: bool) -> dict[str, Any]:
    from cratedig.render.engine import render_pair
    from cratedig.render.plan import plan_mashup
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    phrase = 8
    query = synthesize_song(tempo=QUERY_BPM, key=Key.parse("A minor"), bars=64, sr=sr, seed=21)
    specs = [(120.0, "A minor"), (126.0, "E minor"), (63.0, "G minor"), (128.0, "C major")]
    partners = [
        synthesize_song(tempo=t, key=Key.parse(k), bars=32, sr=sr, seed=30 + i)
        for i, (t, k) in enumerate(specs)
    ]
    segments = [
        {
            "id": f"q_{i}",
            "start": float(query.downbeats[i * phrase]),
            "end": float(query.downbeats[(i + 1) * phrase])
            if (i + 1) * phrase < query.bars
            else query.duration,
            "bars": phrase,
        }
        for i in range(query.bars // phrase)
    ]
    rng = np.random.default_rng(5)
    pool = _candidates(partners, phrase, rng)
    per_segment = [
        sorted(
            ({**c, "score": round(float(0.55 + 0.35 * rng.random()), 4)} for c in pool),
            key=lambda c: -c["score"],
        )[:6]
        for _ in segments
    ]

    def run() -> tuple[np.ndarray, Any]:
        plan = plan_mashup(segments, per_segment)
        out = []
        for cue, seg in zip(plan.cues, segments, strict=True):
            i = int(seg["id"].split("_")[1])
            q, q_beats = _cut(query, i * phrase, phrase)
            if stereo:
                q = _stereo(q)
            if cue.partner is None:
                out.append(q * 10 ** (-3 / 20))
                continue
            song = partners[cue.partner["_song"]]
            bars = phrase // 2 if cue.partner["tempo_ratio"] == 2.0 else phrase
            c, c_beats = _cut(song, cue.partner["_bar"], bars, pad=0.3)
            if stereo:
                c = _stereo(c)
            pair = render_pair(
                q, sr, q_beats, c, c_beats, semitones=cue.partner["semitones"],
                tempo_ratio=cue.partner["tempo_ratio"],
            )  # fmt: skip
            out.append(pair.mix)
        return np.concatenate(out, axis=-1), plan

    mix, plan = run()
    seconds = mix.shape[-1] / sr
    t = _median_time(run, repeats)
    return {
        "output_seconds": seconds,
        "phrases": len(segments),
        "seconds": t,
        "ms_per_output_second": 1000 * t / seconds,
        "x_realtime": seconds / t,
        "peak_dbfs": 20 * float(np.log10(np.abs(mix).max())),
        "partners": [None if c.partner is None else c.partner["segment"] for c in plan.cues],
        "totals": plan.totals,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sr", type=int, default=44100, help="sample rate of the songs (Hz)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    p.add_argument("--stereo", action="store_true", help="render two-channel audio")
    p.add_argument("--skip-mashup", action="store_true")
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)

    layout = "stereo" if args.stereo else "mono"
    res: dict[str, Any] = {"sr": args.sr, "layout": layout, "repeats": args.repeats}
    res["pair"] = pair = bench_pair(args.sr, args.repeats, args.stereo)
    print(
        f"render: {args.sr} Hz {layout}, median of {args.repeats}; 16-bar pair 118 -> 124 BPM, "
        f"+2 st ({pair['output_seconds']:.1f} s of output)"
    )
    print(f"  {'mode':<10} {'ms/s out':>9} {'x realtime':>11} {'beat err max':>13} "
          f"{'median':>7} {'downbeats':>10}")  # fmt: skip
    for name, r in pair["modes"].items():
        print(
            f"  {name:<10} {r['ms_per_output_second']:>9.1f} {r['x_realtime']:>11.1f} "
            f"{r['beat_error_max_ms']:>10.1f} ms {r['beat_error_median_ms']:>4.1f} ms "
            f"{r['downbeat_error_max_ms']:>7.1f} ms"
        )
    modes = pair["modes"]
    for name in ("per beat", "per bar"):
        ratio = modes[name]["seconds"] / modes["constant"]["seconds"]
        print(f"  {name} / constant stretch time: {ratio:.2f}x")
    if not args.skip_mashup:
        res["mashup"] = m = bench_mashup(args.sr, args.repeats, args.stereo)
        print(
            f"  mashup: {m['output_seconds']:.0f} s song, {m['phrases']} phrases, "
            f"{m['totals']['with_partner']} partnered from {m['totals']['partner_tracks']} tracks: "
            f"{m['ms_per_output_second']:.1f} ms per output second "
            f"({m['x_realtime']:.1f}x realtime), peak {m['peak_dbfs']:.2f} dBFS"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "render.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
