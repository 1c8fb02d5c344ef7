"""A learned choice of the beat's metrical level where the onsets mark no pulse: built as
analysis v15 in stop 23, **rejected by the held-out half** and kept here, with its training set
and fit, for the next attempt (``bench/README.md``, "A learned tempo-level ranker").

- **Gate** (:func:`soft_onsets`): the low and high band onsets both fold weakly at the rules'
  tempo (fold contrast below :data:`SOFT_LOW` / :data:`SOFT_HIGH`): no kick and no hats mark a
  pulse (string quartets, choirs). Elsewhere the rules' tempo stands.
- **Candidates**: the rules' tempo times 1/4, 1/3, 1/2, 2/3, 3/4, 1, 4/3, 3/2, 2, 3 and 4,
  inside :data:`BPM_RANGE`; off the rules' pulse family only where their confidence is below
  :data:`FAMILY_BELOW` (and by :data:`FAMILY_MARGIN` log-odds), and never where the chords
  chose the family (``keep_family``).
- **Features per candidate** (:func:`candidate_features`): the log tempo and its square, the
  ratio to the rules' choice, whether it is their choice (also scaled by their confidence) or
  their runner-up; for six envelopes (broadband, low, mid, high band flux, harmonic change,
  note flux), locally normalised over the active span: the fold contrast and between/on-beat
  ratio at the candidate period, at twice and at half of it, and how cleanly the envelope's
  onset peaks form a pulse there (:func:`rhythm.pulse_qualities`). They must be read at the
  fitted grid's exact tempo: a period 1 % off smears a minute's folds.
- **Model**: a linear score per candidate soft-maxed over the candidates (conditional logit),
  fitted by ``bench/fit_tempo_level.py``; confidence = log-odds of the first candidate over
  the second / :data:`CONFIDENCE_SCALE`. Stored as ``.npz`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The gate: fold contrast of the low / high band onsets at the rules' tempo below these (a
#: kick or hats marking a pulse fold at 4-12; string quartets at 0.5-2). Set on the dev half.
SOFT_LOW = 1.5
SOFT_HIGH = 2.0

#: Tempo ratios to the rules' choice that are candidates.
RATIOS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 2.0, 3.0, 4.0)
#: Candidate beat tempi (BPM), the rules' beat range widened slightly downwards.
BPM_RANGE = (50.0, 215.0)
#: Envelopes whose folds and pulses describe a candidate.
ENVELOPES = ("all", "low", "mid", "high", "harm", "nf")
#: The rules' 3:4 / 2:3 family decision (kick on the beat, a dotted pluck explained, chords
#: choosing the family of drumless music) stands where their confidence in it is at least this:
#: then only octaves (1/4 .. 4) are candidates. Chosen on the dev half (leave-one-piece-out):
#: without it, Acc1 on level-certain pieces 0.731, with it 0.769.
FAMILY_BELOW = 0.7
#: ...and a candidate of another family must then beat the best octave of the rules' tempo by
#: this much log-odds.
FAMILY_MARGIN = 0.0
#: Confidence = log(p_first / p_second) / CONFIDENCE_SCALE, clipped to [0, 1]. Chosen on the
#: dev half's leave-one-piece-out log-odds so that a flag (< 0.5) catches about as many wrong
#: tempi (0.40) as the rules' margins did, for as few right ones (0.15).
CONFIDENCE_SCALE = 4.0


@dataclass(frozen=True)
class LevelModel:
    """Feature names, their standardisation and the linear weights of the level ranker."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    version: str

    @classmethod
    def from_npz(cls, path) -> LevelModel:
        with np.load(path, allow_pickle=False) as z:
            names = tuple(str(s) for s in z["names"])
            mean, scale, w = (np.asarray(z[k], dtype=np.float64) for k in ("mean", "scale", "w"))
            version = str(z["version"]) if "version" in z.files else "unknown"
        if not (len(names) == len(mean) == len(scale) == len(w)) or set(names) - set(
            feature_names()
        ):
            raise ValueError(f"{path}: features of another layout")
        if not all(np.isfinite(a).all() for a in (mean, scale, w)) or np.any(scale <= 0):
            raise ValueError(f"{path}: weights that are not finite")
        return cls(names=names, mean=mean, scale=scale, weights=w, version=version)

    def scores(self, feats: list[dict[str, float]]) -> np.ndarray:
        x = np.array([[f[k] for k in self.names] for f in feats], dtype=np.float64)
        return ((x - self.mean) / self.scale) @ self.weights


def soft_onsets(fe, bpm: float) -> bool:
    """True where neither the low nor the high band onsets fold clearly at ``bpm``."""
    from cratedig.analysis import rhythm as rh

    start, end = rh.active_span(fe)
    period = 60.0 * fe.fps / bpm
    if end - start < 2 * period:
        return False
    for band, limit in ((0, SOFT_LOW), (2, SOFT_HIGH)):
        env = rh._local_normalise(np.asarray(fe.onset_bands[band][start:end], np.float64), fe.fps)
        if rh.fold_peak(env, period)[1] >= limit:
            return False
    return True


def evidence_of(fe, harmony: np.ndarray, chroma: np.ndarray | None) -> LevelEvidence:
    """The envelopes the ranker reads, from the pipeline's front end, over its active span."""
    from cratedig.analysis import rhythm as rh

    start, end = rh.active_span(fe)
    envs = {
        "all": fe.onset,
        "low": fe.onset_bands[0],
        "mid": fe.onset_bands[1],
        "high": fe.onset_bands[2],
        "harm": rh.harmonic_flux(fe, harmony if chroma is None else chroma, harmony),
        "nf": fe.onset if fe.note_flux is None else fe.note_flux,
    }
    return level_evidence({k: v[start:end] for k, v in envs.items()}, fe.fps)


def feature_names() -> list[str]:
    names = ["lbpm", "lbpm2", "lr", "rule", "rule_conf", "alt", "binrel"]
    for k in ENVELOPES:
        for tag in ("", "_x2", "_h"):
            names += [f"con_{k}{tag}", f"bo_{k}{tag}"]
        names += [f"pq_{k}", f"pr_{k}", f"pq_{k}_x2", f"pq_{k}_h", f"pr_{k}_h"]
    return names


@dataclass(frozen=True)
class LevelEvidence:
    """Locally normalised envelopes over the active span, and their onset peaks (seconds)."""

    fps: float
    envs: dict[str, np.ndarray]
    peaks: dict[str, tuple[np.ndarray, np.ndarray]]


def level_evidence(envs: dict[str, np.ndarray], fps: float) -> LevelEvidence:
    """``envs``: raw envelopes (rhythm frames) cropped to the active span, by :data:`ENVELOPES`."""
    from cratedig.analysis import rhythm as rh

    norm = {k: rh._local_normalise(np.asarray(envs[k], np.float64), fps) for k in ENVELOPES}
    peaks = {k: rh.onset_peaks(v, fps, threshold=0.25) for k, v in norm.items()}
    return LevelEvidence(fps=fps, envs=norm, peaks=peaks)


def candidate_features(
    ev: LevelEvidence, bpm: float, *, confidence: float, alternative: float
) -> list[tuple[float, float, dict[str, float]]]:
    """(ratio to ``bpm``, candidate BPM, features) of every candidate level of the rules'
    ``bpm`` (with their ``confidence`` and runner-up ``alternative``, BPM)."""
    from cratedig.analysis import rhythm as rh

    fps = ev.fps
    n = len(ev.envs["all"])
    span = (0.0, n / fps)
    cands = [(r, bpm * r) for r in RATIOS if BPM_RANGE[0] <= bpm * r <= BPM_RANGE[1]]
    multiples = ((1.0, ""), (2.0, "_x2"), (0.5, "_h"))
    rows = []
    for r, cand in cands:
        lbpm = float(np.log2(cand / 120.0))
        f = {
            "lbpm": lbpm,
            "lbpm2": lbpm * lbpm,
            "lr": float(np.log2(r)),
            "rule": float(r == 1.0),
            "rule_conf": float(r == 1.0) * float(confidence),
            "alt": float(abs(cand / alternative - 1.0) < 0.03) if alternative > 0 else 0.0,
            "binrel": float(abs(np.log2(r) - round(np.log2(r))) < 1e-6),
        }
        rows.append((r, cand, f))
    if not rows:
        return rows
    # Candidates' periods and their doubles and halves coincide (the double of one is the next
    # octave's own): each distinct period is folded once per envelope, and each envelope's
    # pulses are judged at every period in one call.
    periods = np.array([60.0 / cand * m for _, cand in cands for m, _ in multiples])
    keys = [round(float(x), 9) for x in periods]
    for k in ENVELOPES:
        env = ev.envs[k]
        folds: dict[float, tuple[float, float]] = {}
        for key, period in zip(keys, periods, strict=True):
            pp = period * fps
            if key in folds:
                continue
            if n < 2 * pp or pp < 2:
                folds[key] = (0.0, 1.0)
                continue
            _, con = rh.fold_peak(env, pp)
            on, between = rh._grid_strengths(env, pp)
            folds[key] = (con, between / max(on, 1e-9))
        t, h = ev.peaks[k]
        tol = (0.05, 0.12) if k == "harm" else rh.PULSE_TOL
        q, pr = rh.pulse_qualities(t, h, periods, span, tol=tol)
        for i, (_, _, f) in enumerate(rows):
            for j, (_, tag) in enumerate(multiples):
                f[f"con_{k}{tag}"], f[f"bo_{k}{tag}"] = folds[keys[3 * i + j]]
            f[f"pq_{k}"], f[f"pr_{k}"] = float(q[3 * i]), float(pr[3 * i])
            f[f"pq_{k}_x2"], f[f"pq_{k}_h"] = float(q[3 * i + 1]), float(q[3 * i + 2])
            f[f"pr_{k}_h"] = float(pr[3 * i + 2])
    return rows


def gate_families(scores: np.ndarray, octave: list[bool]) -> np.ndarray:
    """Scores with every candidate off the rules' family lowered below the best octave unless
    it beats that octave by :data:`FAMILY_MARGIN`."""
    s = np.asarray(scores, dtype=np.float64).copy()
    octave_ = np.asarray(octave, dtype=bool)
    if octave_.any() and (~octave_).any():
        best = float(s[octave_].max())
        weak = ~octave_ & (s < best + FAMILY_MARGIN)
        s[weak] = np.minimum(s[weak], best - FAMILY_MARGIN)
    return s


@dataclass(frozen=True)
class LevelChoice:
    ratio: float  # chosen tempo / the rules' tempo
    confidence: float  # log-odds of the first candidate over the second, scaled to [0, 1]
    alternative_ratio: float  # the runner-up's tempo / the rules' tempo


def choose_level(
    ev: LevelEvidence,
    bpm: float,
    *,
    confidence: float,
    alternative: float,
    family_confidence: float | None = None,
    keep_family: bool = False,
    model: LevelModel,
) -> LevelChoice | None:
    """The model's beat level among the candidates of the rules' ``bpm`` (``confidence``: the
    rules' tempo confidence, ``family_confidence``: that of their pulse-family decision alone);
    ``keep_family``: only octaves (the chords chose the family). None without candidates
    (then the rules' tempo stands)."""
    rows = candidate_features(ev, bpm, confidence=confidence, alternative=alternative)
    family = confidence if family_confidence is None else family_confidence
    rows = [row for row in rows if row[2]["binrel"] or (family < FAMILY_BELOW and not keep_family)]
    if len(rows) < 2:
        return None
    s = gate_families(model.scores([f for _, _, f in rows]), [row[2]["binrel"] > 0 for row in rows])
    p = np.exp(s - s.max())
    p /= p.sum()
    order = np.argsort(-p)
    odds = float(np.log(p[order[0]] / max(p[order[1]], 1e-12)))
    return LevelChoice(
        ratio=float(rows[order[0]][0]),
        confidence=float(np.clip(odds / CONFIDENCE_SCALE, 0.0, 1.0)),
        alternative_ratio=float(rows[order[1]][0]),
    )
