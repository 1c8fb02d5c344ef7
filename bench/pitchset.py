"""Layers with and without pitched content, from music no one here made (issue 9: drum-only
material has no key).

A drum loop or a drum-only song has no key, yet the key estimator names one (a Hydrogen drum
song reads "F# minor, clarity 1.0"), and the matcher then shifts and detunes partners to fit it.
Telling "no pitched content" from a lone lead line needs examples of both, with truth:

* **drums**: the drum channels of the tracker modules of ``bench/stemset.py`` rendered alone
  (libopenmpt, every other channel muted; the channels are stemset's own split: each of their
  instruments plays at one or two pitches, or carries a drum sample name), the GM drum tracks of
  its Freedoom MIDI files rendered alone with FluidSynth, and realset's Hydrogen songs (Hydrogen
  is a drum machine; its demo songs are drums only);
* **pitched**: the same modules' and MIDI files' lead channel alone (one melodic line, the
  hardest case: it must keep its key) and their pitched channels without the drums or the lead,
  stemset's two layers (lead + drums, everything but the lead) and realset's other mixes.

Splits follow the sources: stemset's and realset's ``dev`` / ``heldout`` (a hash of the source),
and Freedoom (``freedoom``) is held out whole, as in stemset.

Layout: ``bench/.cache/pitchset/<id>/{drums,lead,harmony}.flac`` (mono, 22.05 kHz) and
``pitchset.json``: one row per layer file, with its label, split and source.

``--evaluate``: ten spectral measures per file (the share of the 50-2000 Hz energy that
survives a 3-frame minimum filter, the share in narrow peaks, the mean chroma's peak and
entropy, the frames' chroma entropy, the chroma's change over time, the high- and low-band
shares, the spectral flatness, a harmonic-sum salience), a logistic regression fitted on the
dev rows, judged on the held-out and Freedoom rows: how many drum layers it finds where no
pitched layer may lose its key.

Usage::

    .venv/bin/python bench/stemset.py && .venv/bin/python bench/realset.py   # first
    .venv/bin/python bench/pitchset.py              # build (~2 min, cached), print a summary
    .venv/bin/python bench/pitchset.py --evaluate   # the measures (~5 min) and the detector
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import realset  # noqa: E402
import stemset  # noqa: E402

CACHE_ROOT = HERE / ".cache" / "pitchset"
BUILD_VERSION = 1
#: A layer quieter than this (dBFS RMS) is not written: nothing plays in it.
SILENT_DB = stemset.SILENT_DB


def _finish(layers: dict[str, np.ndarray], out: Path, sr: int) -> dict[str, float]:
    """Write each layer (mono, stemset's rate) scaled by one common peak; their levels."""
    peak = max(float(np.abs(y).max()) for y in layers.values())
    levels = {}
    for name, y in layers.items():
        y = stemset.to_mono_sr(y * (0.89 / max(peak, 1e-9)), sr)
        levels[name] = round(stemset.level_db(y), 1)
        if levels[name] >= SILENT_DB:
            stemset.write_flac(y, out / f"{name}.flac")
    return levels


def tracker_layers(args: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    """Drums alone, the lead alone and the other pitched channels of one stemset module."""
    item, out = args
    data = Path(item["origin"]).read_bytes()
    nch = int(item["channels"])
    drums, lead = list(item["drum_channels"]), list(item["lead_channels"])
    harmony = [c for c in range(nch) if c not in drums and c not in lead]
    keep = {"drums": drums, "lead": lead, "harmony": harmony}
    names = [n for n, chans in keep.items() if chans]
    mutes = [[c for c in range(nch) if c not in keep[n]] for n in names]
    rendered, _ = stemset.render_layers(data, float(item["duration"]), mutes)
    return {"levels": _finish(dict(zip(names, rendered, strict=True)), out, stemset.RENDER_SR)}


def midi_layers(args: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    """The GM drum tracks alone, the lead alone and the other pitched tracks of one Freedoom
    file, over stemset's excerpt."""
    import soundfile as sf

    import midiset
    from truthset import fluidsynth_render

    item, out = args
    origin = Path(item["origin"])
    if not origin.is_absolute():  # stemset records the file name of its extracted lumps
        origin = stemset.CACHE_ROOT / "freedoom_midi" / origin
    pm, first, _ = midiset.load_gridded(origin)
    stats = item["channel_stats"]
    drums = {t["track"] for t in stats if t["drum"]}
    lead = set(item["lead_channels"])
    harmony = {t["track"] for t in stats if not t["drum"] and t["notes"]} - lead
    layers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, keep in (("drums", drums), ("lead", lead), ("harmony", harmony)):
            if not keep:
                continue
            sub = copy.deepcopy(pm)
            sub.instruments = [i for k, i in enumerate(sub.instruments) if k in keep]
            mid, wav = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            sub.write(str(mid))
            fluidsynth_render(mid, wav, stemset.RENDER_SR)
            y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            layers[name] = y.mean(axis=1)
    m = int(float(item["duration"]) * stemset.RENDER_SR)
    layers = {k: np.pad(y, (0, max(0, m - len(y))))[:m] for k, y in layers.items()}
    return {"levels": _finish(layers, out, stemset.RENDER_SR)}


def _one(args: tuple[Any, dict[str, Any], Path]) -> dict[str, Any]:
    fn, item, out = args
    cache = out / "item.json"
    if cache.exists():
        done: dict[str, Any] = json.loads(cache.read_text())
        if done.get("build_version") == BUILD_VERSION:
            return done
    out.mkdir(parents=True, exist_ok=True)
    done = fn((item, out))
    done["build_version"] = BUILD_VERSION
    cache.write_text(json.dumps(done))
    return done


def build(workers: int = 2) -> Path:
    """Build (or read) the set; returns the path of ``pitchset.json``."""
    manifest = CACHE_ROOT / "pitchset.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("version") == BUILD_VERSION:
        return manifest
    t0 = time.time()
    stems = stemset.load()
    stem_root = stemset.CACHE_ROOT
    jobs, items = [], []
    for item in stems["songs"]:
        fn = {"tracker": tracker_layers, "midi": midi_layers}.get(item["kind"])
        if fn is not None:
            jobs.append((fn, item, CACHE_ROOT / item["id"]))
            items.append(item)
    stemset.log(f"rendering the layers of {len(jobs)} stemset sources ...")
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_one, jobs))
    for item, res in zip(items, results, strict=True):
        for name, level in res["levels"].items():
            if level < SILENT_DB:
                continue
            rows.append(
                {
                    "path": str(CACHE_ROOT / item["id"] / f"{name}.flac"),
                    "source": item["id"],
                    "kind": item["kind"],
                    "layer": name,
                    "pitched": name != "drums",
                    "split": item["split"],
                    "level_db": level,
                }
            )
    for item in stems["songs"]:  # stemset's own two layers: both carry pitched content
        for name in ("query", "partner"):
            rows.append(
                {
                    "path": str(stem_root / item[f"{name}_path"]),
                    "source": item["id"],
                    "kind": item["kind"],
                    "layer": name,
                    "pitched": True,
                    "split": item["split"],
                    "level_db": item.get(f"{name}_db"),
                }
            )
    truth = json.loads(realset.build().read_text())
    for song in truth["songs"]:
        rows.append(
            {
                "path": str(realset.CACHE_ROOT / song["path"]),
                "source": song["source_id"],
                "kind": song["kind"],
                "layer": "mix",
                "pitched": song["kind"] != "hydrogen",
                "split": song["split"],
                "level_db": None,
            }
        )
    data = {
        "version": BUILD_VERSION,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.time() - t0, 1),
        "rows": rows,
    }
    manifest.write_text(json.dumps(data, indent=1))
    return manifest


def load() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(build().read_text())["rows"]
    return rows


NAMES = ("sus_share", "peak_share", "chroma_peak", "chroma_ent", "frame_ent", "chroma_var",
         "high_share", "low_share", "flatness", "salience")  # fmt: skip


def measures(path: str) -> list[float]:
    """The ten measures of ``--evaluate`` over a whole file."""
    from scipy.ndimage import median_filter

    from cratedig.analysis.frontend import FRONTEND_SR, TONAL_NFFT, compute_frontend
    from cratedig.analysis.tonal import _band_bins, _sustained
    from cratedig.audio.decode import ANALYSIS_SR, decode

    fe = compute_frontend(decode(path, sr=ANALYSIS_SR).samples, sr=ANALYSIS_SR)
    lo, hi = _band_bins(50.0, 2000.0)
    freqs = (np.arange(TONAL_NFFT // 2 + 1) * FRONTEND_SR / TONAL_NFFT)[lo:hi]
    cmap = np.zeros((hi - lo, 12))
    cmap[np.arange(hi - lo), np.round(12 * np.log2(freqs / 440.0)).astype(int) % 12] = 1
    harm = np.zeros((49, hi - lo))
    for i, f0 in enumerate(55.0 * 2 ** (np.arange(49) / 12)):
        for h in range(1, 7):
            if f0 * h <= 2000:
                harm[i, np.argmin(np.abs(freqs - f0 * h))] += 0.8 ** (h - 1)
    raw = fe.tonal_mag[:, lo:hi].astype(np.float64)
    sus = _sustained(fe.tonal_mag, lo, hi)[:, lo:hi].astype(np.float64)
    e_f = (sus**2).sum(axis=1)
    w = e_f / (e_f.sum() + 1e-12)
    ch = (sus**2) @ cmap
    m = ch.sum(axis=0) / (ch.sum() + 1e-12)
    pn = ch / (ch.sum(axis=1, keepdims=True) + 1e-12)
    k = 11
    cw = np.array([ch[i * k : (i + 1) * k].sum(axis=0) for i in range(max(1, len(ch) // k))])
    cw /= np.linalg.norm(cw, axis=1, keepdims=True) + 1e-12
    mean = cw.mean(axis=0) / (np.linalg.norm(cw.mean(axis=0)) + 1e-12)
    band = fe.band_energy.sum(axis=1)
    flat = np.exp(np.log(sus + 1e-9).mean(axis=1)) / (sus.mean(axis=1) + 1e-12)
    return [
        float(e_f.sum() / ((raw**2).sum() + 1e-12)),
        float(
            ((sus**2) * (sus > 3 * median_filter(sus, size=(1, 17)))).sum() / (e_f.sum() + 1e-12)
        ),
        float(m.max() * 12),
        float(-(m * np.log(m + 1e-12)).sum() / np.log(12)),
        float((w * (-(pn * np.log(pn + 1e-12)).sum(axis=1) / np.log(12))).sum()),
        float(1 - (cw @ mean).mean()),
        float(band[2] / band.sum()),
        float(band[0] / band.sum()),
        float((w * flat).sum()),
        float((w * (sus @ harm.T).max(axis=1) / (sus.sum(axis=1) + 1e-12)).sum()),
    ]


def evaluate(rows: list[dict[str, Any]]) -> None:
    """Fit the detector on dev, judge it on held-out and Freedoom (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    cache = CACHE_ROOT / f"measures_v{BUILD_VERSION}.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    for r in rows:
        if r["path"] not in done:
            done[r["path"]] = measures(r["path"])
    cache.write_text(json.dumps(done))

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        take = [r for r in rows if r["split"] == name]
        x = np.array([done[r["path"]] for r in take])
        return x, np.array([0 if r["pitched"] else 1 for r in take])

    xd, yd = split("dev")
    print("dev AUC of each measure alone:",
          {n: round(roc_auc_score(yd, xd[:, i]), 3) for i, n in enumerate(NAMES)})  # fmt: skip
    scale = StandardScaler().fit(xd)
    fit = LogisticRegression(class_weight="balanced", max_iter=2000).fit(scale.transform(xd), yd)
    pd_ = fit.predict_proba(scale.transform(xd))[:, 1]
    keep_all = float(pd_[yd == 0].max())  # no dev pitched layer loses its key
    print(f"dev: {int(yd.sum())} drum / {int((yd == 0).sum())} pitched layers, "
          f"AUC {roc_auc_score(yd, pd_):.3f}")  # fmt: skip
    for name in ("heldout", "freedoom"):
        x, y = split(name)
        pr = fit.predict_proba(scale.transform(x))[:, 1]
        print(f"{name}: AUC {roc_auc_score(y, pr):.3f}")
        for t in (0.5, 0.9, keep_all):
            print(f"  threshold {t:.3f}: drum layers found {int(((pr > t) & (y == 1)).sum())}/"
                  f"{int(y.sum())}, pitched layers losing their key "
                  f"{int(((pr > t) & (y == 0)).sum())}/{int((y == 0).sum())}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--evaluate", action="store_true", help="measure and judge the detector")
    a = p.parse_args(argv)
    rows = load()
    if a.evaluate:
        evaluate(rows)
        return 0
    from collections import Counter

    c = Counter((r["split"], "pitched" if r["pitched"] else "drums", r["layer"]) for r in rows)
    for k in sorted(c):
        print(*k, c[k])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
