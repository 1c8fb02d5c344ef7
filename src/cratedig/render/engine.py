"""Hear a suggestion: beat-aligned time-stretch, pitch shift, loudness match and mixdown. Pure.

Arrays in, arrays out: no database, no files (except :class:`RenderCache`, which only stores
what a caller hands it).

Conventions
-----------
- Audio is float32, mono ``(n,)`` or channels-first ``(channels, n)`` (the layout of librosa and
  pedalboard); sample rates in Hz; times in seconds from the array's first sample.
- ``ratio`` / *speed* is an output speed factor, as pedalboard's ``stretch_factor``: 1.05 plays
  5 % faster (and 5 % shorter). The match records' ``stretch`` is ``speed - 1``.
- ``tempo_ratio`` is the metrical ratio of :data:`cratedig.theory.TEMPO_RATIOS`, with the
  convention of :func:`cratedig.match.scoring.tempo_fit`: ``query_bpm ~ candidate_bpm *
  tempo_ratio``. 2.0: one candidate beat spans two query beats (a 64 BPM candidate under a
  128 BPM query: half time); 0.5: two candidate beats span one query beat (double time).
- Beat arrays start on a downbeat: ``query_beats[0]`` is the query segment's first downbeat
  (about 0.0), ``cand_beats[0]`` the candidate's.

Method
------
**Time map.** Beats of the coarser grid are paired by index (under 2:1 candidate beat ``i``
with query beat ``2 i``), so downbeats meet downbeats. The map is cut into *pieces* of
``piece_beats`` paired beats; each piece is time-stretched on its own by Rubber Band to exactly
its target length in samples, with :data:`PIECE_MARGIN` of context either side so that the
analysis windows never see a cut edge. Seams sit :data:`SEAM_LEAD` before a beat, so that no
onset straddles one (and the onset that follows pre-masks the seam), and are crossfaded over
:data:`SEAM_CROSSFADE` (linearly: both sides render the same source). Every seam beat lands on
its query beat to within a sample, whatever the tempo drift of either track; beats inside a
piece are off by Rubber Band's drift over one piece at most.

Why pieces, measured with pedalboard 0.9.26 at 22.05 kHz (``bench/render.py`` reports the
modes side by side): one constant high-quality stretch drifts linearly against the ideal
``t / speed`` (45 ms after 31 s at +5 %, 28 ms after 34 s at -5 %; even a pure pitch shift at
speed 1 drifts, 57 ms after 32 s at -3 semitones); a per-sample ``stretch_factor`` array adds
~0.5 s of uncompensated latency and an inexact length. With pieces of one 4/4 bar the drums of
a 118 -> 124 BPM render land within 6 ms of every query beat (per beat: 4 ms; constant: 37 ms).
The price of a seam: the two pieces' phase-vocoder phases differ, so a sustained low tone can
dip for a few milliseconds there; fewer seams (a bar, not a beat) keep this rare, and the seam
sits where a downbeat's onset masks it.

**Pitch.** By default the candidate is resampled (soxr, very high quality) to play
``2 ** (semitones / 12)`` faster, and the pieces' stretch absorbs the speed change, exactly as
Rubber Band shifts pitch internally (stretch, then resample). This is time-exact and costs one
cheap pass; Rubber Band's own pitch shift costs a fixed ~70 ms per call (per piece) and drifts.
``preserve_formants=True`` uses it anyway, keeping vocal formants in place.

**Loudness.** The partner is gain-matched to the query by ITU-R BS.1770-4 integrated loudness
(``pyloudnorm``); audio shorter than one 400 ms gating block, or gated to silence, falls back
to RMS level for both layers; a silent partner or query gets 0 dB; the gain is clipped to
``+-MAX_GAIN_DB``.

**DC offset.** Both layers lose their DC offset before they are summed: the cut's mean, then a
zero-phase 2nd-order Butterworth high-pass at :data:`DC_CUTOFF_HZ` (5 Hz: -0.03 dB at 20 Hz) for
a DC that moves with the notes. Tracker modules whose samples are biased carry a lot of it
(0.29 of full scale under a 0.33 RMS in one real module): left in, a partner entering with it
thumps through its 10 ms fade, and the limiter spends the mix's headroom on a constant.
A whole-song mashup takes the query's DC out with the same high-pass run causally
(:class:`DCBlocker`, its state carried from block to block).

**Limiter.** A look-ahead peak limiter on the 4x-oversampled (true-peak) envelope, as the
BS.1770-4 Annex 2 true-peak meter measures it, followed by a safety scale; the result stays
below ``ceiling_db`` dBTP. (pedalboard's JUCE ``Limiter`` has no look-ahead and can overshoot.)

References
----------
Rubber Band Library (Breakfast Quay) through Spotify's pedalboard; ITU-R BS.1770-4 (2015);
EBU R 128 (-1 dBTP ceiling); Davies, M. E. P. et al. (2014) AutoMashUpper, IEEE/ACM TASLP 22(12)
(beat-aligned layering of segments).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cratedig.errors import ParameterError
from cratedig.fileio import atomic_path
from cratedig.theory import TEMPO_RATIOS

__all__ = [
    "RENDER_VERSION",
    "DCBlocker",
    "PairRender",
    "RenderCache",
    "beat_time_map",
    "cache_key",
    "limit_true_peak",
    "limit_true_peak_stream",
    "loudness_db",
    "remove_dc",
    "render_pair",
    "stretch_shift",
]

#: Bumped whenever rendered audio changes; part of every :func:`cache_key`.
RENDER_VERSION = 3  # 2: the candidate is shifted onto the query's tuning; 3: DC taken out

#: Largest pitch shift, semitones either way (an octave: beyond it formants and transients
#: suffer badly; the matcher itself proposes at most +-6).
MAX_SEMITONES = 12.0
#: Range of the speed factor of any piece: half to double speed.
MIN_SPEED, MAX_SPEED = 0.5, 2.0
#: Seams sit this long before each beat so that the onset lies wholly inside one piece.
SEAM_LEAD = 0.02
#: Linear crossfade at each seam, centred on it.
SEAM_CROSSFADE = 0.005
#: Context rendered either side of a piece and thrown away, so that Rubber Band's analysis
#: windows (up to a few thousand samples) never reach a cut edge inside the kept part.
PIECE_MARGIN = 0.25
#: Corner of the high-pass that takes each layer's DC offset out before mixing (Hz).
DC_CUTOFF_HZ = 5.0
#: Default fade-in/out of the partner layer at its cut edges.
DEFAULT_FADE = 0.01
#: Default true-peak ceiling (EBU R 128 recommends -1 dBTP for distribution).
DEFAULT_CEILING_DB = -1.0
#: Two uncorrelated layers of equal loudness sum about 3 dB louder than either.
DEFAULT_MIX_GAIN_DB = -3.0
#: The loudness match never moves the partner further than this.
MAX_GAIN_DB = 24.0
#: RMS below this (dBFS) counts as silence: nothing to match.
SILENCE_DB = -100.0
_BS1770_BLOCK = 0.4
_TRUE_PEAK_OVERSAMPLING = 4
_LIMITER_ATTACK = 0.01  # look-ahead: the gain ramps down over the 10 ms before a peak
_LIMITER_HOLD = 0.05  # and stays down 50 ms after it, so dense peaks do not make it pump


# ---------------------------------------------------------------------------------------------
# Validation


def _check_sr(sr: Any, name: str = "sr") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"{name}={sr!r} must be a positive integer (Hz)")
    return int(sr)


def _as_channels(y: Any, name: str) -> np.ndarray:
    """Validate audio and return it as float32 ``(channels, n)``."""
    if not isinstance(y, np.ndarray):
        raise ParameterError(f"{name} must be a numpy array, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"{name} must hold floating-point samples, got dtype {y.dtype}")
    if y.ndim == 1:
        y2 = y[None, :]
    elif y.ndim == 2:
        if y.shape[0] > 8 and y.shape[1] <= 8:
            raise ParameterError(
                f"{name} has shape {y.shape}: looks like (n, channels); pass channels first, "
                f"e.g. {name}.T"
            )
        y2 = y
    else:
        raise ParameterError(f"{name} must be mono (n,) or (channels, n), got shape {y.shape}")
    if y2.shape[0] == 0 or y2.shape[1] == 0:
        raise ParameterError(f"{name} is empty (shape {y.shape})")
    if not np.all(np.isfinite(y2)):
        raise ParameterError(f"{name} contains NaN or infinite samples")
    return np.ascontiguousarray(y2, dtype=np.float32)


def _check_semitones(semitones: Any) -> float:
    try:
        s = float(semitones)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"semitones={semitones!r} must be a number") from exc
    if not math.isfinite(s) or abs(s) > MAX_SEMITONES:
        raise ParameterError(
            f"semitones={semitones!r} must be within -{MAX_SEMITONES:g}..+{MAX_SEMITONES:g}"
        )
    return s


def _check_speed(speed: Any, what: str = "ratio") -> float:
    try:
        r = float(speed)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what}={speed!r} must be a number") from exc
    if not (math.isfinite(r) and MIN_SPEED <= r <= MAX_SPEED):
        raise ParameterError(
            f"{what}={speed!r} must be within {MIN_SPEED:g}..{MAX_SPEED:g} (half to double speed)"
        )
    return r


def _check_beats(beats: Any, name: str) -> np.ndarray:
    b = np.asarray(beats, dtype=np.float64)
    if b.ndim != 1:
        raise ParameterError(f"{name} must be a 1-D array of beat times in seconds")
    if b.size == 0:
        raise ParameterError(f"{name} is empty: need the beat times of the segment")
    if not np.all(np.isfinite(b)):
        raise ParameterError(f"{name} contains NaN or infinite times")
    if b.size > 1 and np.any(np.diff(b) <= 0):
        i = int(np.flatnonzero(np.diff(b) <= 0)[0])
        raise ParameterError(
            f"{name} must be strictly increasing; {name}[{i}]={b[i]:.3f} s, "
            f"{name}[{i + 1}]={b[i + 1]:.3f} s"
        )
    return b


# ---------------------------------------------------------------------------------------------
# Rubber Band


def _rubberband(
    y: np.ndarray, sr: int, speed: float, semitones: float, *, high_quality: bool
) -> np.ndarray:
    """pedalboard.time_stretch on ``(channels, n)``, trimmed/padded to ``round(n / speed)``."""
    from pedalboard import time_stretch  # GPL backend, loaded only when rendering

    n_out = int(round(y.shape[1] / speed))
    if speed == 1.0 and semitones == 0.0:
        return y.copy()
    out = time_stretch(
        y,
        float(sr),
        stretch_factor=float(speed),
        pitch_shift_in_semitones=float(semitones),
        high_quality=high_quality,
    )
    out = np.asarray(out, dtype=np.float32).reshape(y.shape[0], -1)
    if out.shape[1] >= n_out:
        return out[:, :n_out]
    return np.pad(out, ((0, 0), (0, n_out - out.shape[1])))


def _resample(y: np.ndarray, speed: float) -> np.ndarray:
    """Play ``(channels, n)`` ``speed`` times faster (pitch up by ``12 log2 speed``), via soxr."""
    import soxr

    out = soxr.resample(y.T, in_rate=speed, out_rate=1.0, quality="VHQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, y.shape[0]).T)


def stretch_shift(
    y: np.ndarray,
    sr: int,
    *,
    ratio: float,
    semitones: float,
    high_quality: bool = True,
) -> np.ndarray:
    """Time-stretch and pitch-shift with Rubber Band (one constant speed).

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n), dtype=float32]
    sr : int > 0
    ratio : float in 0.5..2
        Output speed factor: > 1 is faster and shorter.
    semitones : float in -12..12
        Pitch shift; fractional values shift by cents (tuning correction).
    high_quality : bool
        Rubber Band's finer engine (R3). Its time map drifts by ~0.1 % of the duration on long
        buffers; :func:`render_pair` works in short pieces to stay on the beat.

    Returns
    -------
    np.ndarray [shape like ``y`` with ``round(n / ratio)`` samples, dtype=float32]

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 220 * np.arange(22050) / 22050).astype(np.float32)
    >>> stretch_shift(y, 22050, ratio=1.25, semitones=2).shape
    (17640,)
    """
    sr = _check_sr(sr)
    y2 = _as_channels(y, "y")
    speed = _check_speed(ratio)
    out = _rubberband(y2, sr, speed, _check_semitones(semitones), high_quality=high_quality)
    return out[0] if y.ndim == 1 else out


# ---------------------------------------------------------------------------------------------
# Time map


def _paired_beats(
    query_beats: np.ndarray, cand_beats: np.ndarray, tempo_ratio: float, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Query and candidate beats paired by index on the coarser grid, validated."""
    q = _check_beats(query_beats, "query_beats")
    c = _check_beats(cand_beats, "cand_beats")
    if not (isinstance(duration, (int, float, np.number)) and duration > 0):
        raise ParameterError(f"duration={duration!r} must be > 0 seconds")
    if tempo_ratio not in TEMPO_RATIOS:
        raise ParameterError(
            f"tempo_ratio={tempo_ratio!r} must be one of {TEMPO_RATIOS} "
            "(query beats per candidate beat)"
        )
    step_q = int(round(max(tempo_ratio, 1.0)))
    step_c = int(round(max(1.0 / tempo_ratio, 1.0)))
    qa, ca = q[::step_q], c[::step_c]
    k = min(len(qa), len(ca))
    qa, ca = qa[:k], ca[:k]
    inside = (qa >= 0.0) & (qa <= duration)
    qa, ca = qa[inside], ca[inside]
    if len(qa) < 2:
        raise ParameterError(
            f"need at least two beats to pair inside the query segment; got {len(q)} query "
            f"and {len(c)} candidate beats at tempo_ratio={tempo_ratio:g}"
        )
    speeds = np.diff(ca) / np.diff(qa)
    bad = np.flatnonzero((speeds < MIN_SPEED) | (speeds > MAX_SPEED))
    if bad.size:
        i = int(bad[0])
        raise ParameterError(
            f"candidate beats {ca[i]:.3f}-{ca[i + 1]:.3f} s onto query beats "
            f"{qa[i]:.3f}-{qa[i + 1]:.3f} s need speed {speeds[i]:.3f}, outside "
            f"{MIN_SPEED:g}..{MAX_SPEED:g}; is tempo_ratio={tempo_ratio:g} the metrical ratio "
            "the match proposed?"
        )
    return qa, ca


def _source_at(t: np.ndarray | float, qa: np.ndarray, ca: np.ndarray) -> np.ndarray:
    """Piecewise-linear query -> candidate time, extended at the end pieces' speeds."""
    t = np.asarray(t, dtype=np.float64)
    first = (ca[1] - ca[0]) / (qa[1] - qa[0])
    last = (ca[-1] - ca[-2]) / (qa[-1] - qa[-2])
    return np.where(
        t < qa[0],
        ca[0] - (qa[0] - t) * first,
        np.where(t > qa[-1], ca[-1] + (t - qa[-1]) * last, np.interp(t, qa, ca)),
    )


def beat_time_map(
    query_beats: np.ndarray,
    cand_beats: np.ndarray,
    *,
    tempo_ratio: float = 1.0,
    duration: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Anchor pairs mapping query (output) time to candidate (source) time.

    Parameters
    ----------
    query_beats : np.ndarray [shape=(m,)]
        Seconds from the query segment start; the first is a downbeat.
    cand_beats : np.ndarray [shape=(k,)]
        Seconds from the candidate audio start; the first is a downbeat.
    tempo_ratio : float in TEMPO_RATIOS
        ``query_bpm ~ candidate_bpm * tempo_ratio`` (see the module conventions).
    duration : float > 0
        Length of the query segment in seconds; the map covers ``[0, duration]``.

    Returns
    -------
    target : np.ndarray [shape=(a,)]
        Increasing query times: 0, the paired beats, ``duration``.
    source : np.ndarray [shape=(a,)]
        The candidate time playing at each ``target`` time. Before the first and after the
        last paired beat the map continues at the nearest piece's speed (source times may
        fall outside the candidate audio: silence there).

    Raises
    ------
    ParameterError
        Fewer than two beats to pair, an unknown ``tempo_ratio``, or a piece that would need
        a speed outside 0.5..2.

    Examples
    --------
    >>> t, s = beat_time_map([0.0, 0.5, 1.0], [0.0, 1.0], tempo_ratio=2.0, duration=1.5)
    >>> t.tolist(), s.tolist()
    ([0.0, 1.0, 1.5], [0.0, 1.0, 1.5])
    """
    qa, ca = _paired_beats(query_beats, cand_beats, tempo_ratio, duration)
    target = np.unique(np.concatenate([[0.0], qa, [float(duration)]]))
    return target, _source_at(target, qa, ca)


@dataclass(frozen=True)
class _Pieces:
    """Seams in samples: piece ``i`` maps source ``[s[i], s[i+1])`` onto ``[t[i], t[i+1])``."""

    t: np.ndarray  # int64 target samples, t[0] = 0, t[-1] = n
    s: np.ndarray  # int64 source samples (may be < 0 or past the audio: silence)

    @property
    def speeds(self) -> np.ndarray:
        return np.diff(self.s) / np.diff(self.t)


def _seams(qa: np.ndarray, ca: np.ndarray, sr: int, n: int, piece_beats: int | None) -> _Pieces:
    """Seams :data:`SEAM_LEAD` before every ``piece_beats``-th paired beat, in samples.

    The lead is converted at the speed of the piece that follows the seam, so that the beat
    itself, inside that piece, lands exactly on its query time.
    """
    k = len(qa)
    keep = [0, k - 1] if piece_beats is None else sorted({*range(0, k, piece_beats), k - 1})
    end = n / sr
    min_gap = 2 * SEAM_LEAD + SEAM_CROSSFADE
    t_seam = [0.0]
    s_seam = [float(_source_at(0.0, qa, ca))]
    for m, i in enumerate(keep):
        j = keep[m + 1] if m + 1 < len(keep) else None
        speed = (
            (ca[j] - ca[i]) / (qa[j] - qa[i])
            if j is not None
            else (ca[-1] - ca[-2]) / (qa[-1] - qa[-2])
        )
        ts = qa[i] - SEAM_LEAD
        if ts - t_seam[-1] < min_gap or end - ts < min_gap:
            continue
        t_seam.append(float(ts))
        s_seam.append(float(ca[i] - SEAM_LEAD * speed))
    t_seam.append(end)
    s_seam.append(float(_source_at(end, qa, ca)))
    t = np.round(np.asarray(t_seam) * sr).astype(np.int64)
    t[-1] = n
    s = np.round(np.asarray(s_seam) * sr).astype(np.int64)
    return _Pieces(t=t, s=s)


def _render_pieces(
    y: np.ndarray, sr: int, pieces: _Pieces, semitones: float, *, high_quality: bool
) -> np.ndarray:
    """Stretch each piece to its exact length and join them with short linear crossfades."""
    ch, n_src = y.shape
    n_out = int(pieces.t[-1])
    out = np.zeros((ch, n_out), np.float32)
    half = max(1, int(round(SEAM_CROSSFADE * sr / 2)))
    margin = int(round(PIECE_MARGIN * sr))
    n_pieces = len(pieces.t) - 1
    for i in range(n_pieces):
        t0, t1 = int(pieces.t[i]), int(pieces.t[i + 1])
        s0, s1 = int(pieces.s[i]), int(pieces.s[i + 1])
        speed = (s1 - s0) / (t1 - t0)
        left = 0 if i == 0 else half
        right = 0 if i == n_pieces - 1 else half
        lo = s0 - margin - int(math.ceil(left * speed))
        hi = s1 + margin + int(math.ceil(right * speed))
        if hi <= 0 or lo >= n_src:
            continue  # wholly outside the candidate audio: silence
        window = np.zeros((ch, hi - lo), np.float32)
        a, b = max(lo, 0), min(hi, n_src)
        window[:, a - lo : b - lo] = y[:, a:b]
        if not window.any():
            continue
        # The window's own speed makes its output length exact: piece i gets t1 - t0 samples.
        stretched = _rubberband(window, sr, speed, semitones, high_quality=high_quality)
        off = int(round((s0 - lo) / speed)) - left
        seg = stretched[:, max(off, 0) : off + (t1 - t0) + left + right]
        if seg.shape[1] < (t1 - t0) + left + right:
            seg = np.pad(seg, ((0, 0), (0, (t1 - t0) + left + right - seg.shape[1])))
        w = np.ones(seg.shape[1], np.float32)
        if left:
            w[: 2 * left] = (np.arange(2 * left) + 0.5) / (2 * left)
        if right:
            w[-2 * right :] = 1.0 - (np.arange(2 * right) + 0.5) / (2 * right)
        out[:, t0 - left : t1 + right] += seg * w
    return out


# ---------------------------------------------------------------------------------------------
# Loudness and peaks


def loudness_db(y: np.ndarray, sr: int) -> tuple[float, str]:
    """Integrated loudness of ``y``: BS.1770-4 LUFS, or RMS dBFS where that is undefined.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
    sr : int > 0

    Returns
    -------
    level : float
        LUFS, or dBFS RMS; ``-inf`` for digital silence.
    method : {"bs1770", "rms"}
        "rms" when ``y`` is shorter than one 400 ms gating block or gated to silence.

    Examples
    --------
    >>> y = 0.1 * np.sin(2 * np.pi * 997 * np.arange(22050) / 22050)
    >>> round(loudness_db(y, 22050)[0]), loudness_db(y[:2000], 22050)[1]
    (-23, 'rms')
    """
    sr = _check_sr(sr)
    y2 = np.asarray(y, dtype=np.float64).reshape(-1, np.shape(y)[-1])
    if y2.size == 0:
        return -math.inf, "rms"
    if y2.shape[1] > _BS1770_BLOCK * sr and y2.shape[0] <= 5:
        import pyloudnorm

        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            lufs = float(pyloudnorm.Meter(sr).integrated_loudness(y2.T))
        if math.isfinite(lufs) and lufs > -70.0:
            return lufs, "bs1770"
    ms = float(np.mean(y2**2))
    return (10.0 * math.log10(ms) if ms > 0 else -math.inf), "rms"


def _match_gain_db(query: np.ndarray, partner: np.ndarray, sr: int) -> tuple[float, str]:
    """Gain that brings ``partner`` to the loudness of ``query`` (both measured alike)."""
    lq, method = loudness_db(query, sr)
    lp, method_p = loudness_db(partner, sr)
    if method_p != method:  # compare like with like
        lq, lp, method = _rms_db(query), _rms_db(partner), "rms"
    if not (math.isfinite(lq) and math.isfinite(lp)) or min(lq, lp) < SILENCE_DB:
        return 0.0, method  # silence on either side: nothing to match
    return float(np.clip(lq - lp, -MAX_GAIN_DB, MAX_GAIN_DB)), method


def _rms_db(y: np.ndarray) -> float:
    ms = float(np.mean(np.asarray(y, np.float64) ** 2))
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def _true_peak_envelope(y: np.ndarray) -> np.ndarray:
    """Per-sample peak over channels of the 4x-oversampled signal (BS.1770-4 Annex 2)."""
    from scipy.signal import resample_poly

    up = resample_poly(y.astype(np.float64), _TRUE_PEAK_OVERSAMPLING, 1, axis=-1)
    up = np.abs(up[:, : y.shape[1] * _TRUE_PEAK_OVERSAMPLING])
    env = up.reshape(y.shape[0], y.shape[1], _TRUE_PEAK_OVERSAMPLING).max(axis=(0, 2))
    return np.maximum(env, np.abs(y).max(axis=0))


def limit_true_peak(
    y: np.ndarray, sr: int, *, ceiling_db: float = DEFAULT_CEILING_DB
) -> tuple[np.ndarray, float]:
    """Look-ahead limiter keeping the true peak below ``ceiling_db`` dBTP.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
    sr : int > 0
    ceiling_db : float < 0
        Largest true peak of the output, dBTP.

    Returns
    -------
    limited : np.ndarray [shape like ``y``, dtype=float32]
    reduction_db : float <= 0
        The largest gain reduction applied.

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 100 * np.arange(22050) / 22050).astype(np.float32) * 2
    >>> out, red = limit_true_peak(y, 22050)
    >>> bool(np.abs(out).max() < 10 ** (-1 / 20)), round(red)
    (True, -7)
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    sr = _check_sr(sr)
    if not (math.isfinite(ceiling_db) and ceiling_db < 0):
        raise ParameterError(f"ceiling_db={ceiling_db!r} must be < 0 dBTP")
    y2 = _as_channels(y, "y")
    ceiling = 10.0 ** (ceiling_db / 20.0)
    env = _true_peak_envelope(y2)
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return y2[0].copy() if y.ndim == 1 else y2.copy(), 0.0
    attack = max(1, int(round(_LIMITER_ATTACK * sr)))
    hold = max(1, int(round(_LIMITER_HOLD * sr)))
    # Hold the smallest gain from `attack` before to `hold` after each peak, then smooth with
    # a box no wider than the attack: every smoothed gain is then <= the gain each peak needs.
    size = attack + hold + 1
    held = minimum_filter1d(need, size=size, origin=hold - size // 2)  # [n - hold, n + attack]
    gain = uniform_filter1d(held, size=2 * (attack // 2) + 1, mode="nearest")
    out = y2.astype(np.float64) * gain[None, :]
    tp = float(_true_peak_envelope(out).max())
    if tp > ceiling:  # filters at the edges or oversampling ripple: scale the rest away
        out *= ceiling / tp * (1.0 - 1e-6)
        gain *= ceiling / tp * (1.0 - 1e-6)
    reduction = 20.0 * math.log10(max(float(gain.min()), 1e-12))
    res = out.astype(np.float32)
    return (res[0] if y.ndim == 1 else res), min(reduction, 0.0)


#: Context either side of each block of the streaming limiter: covers the look-ahead, the
#: hold, the gain smoothing and the oversampling filter (~0.07 s together) with room to spare.
_STREAM_MARGIN = 0.25
#: Samples limited per block by the streaming limiter, in seconds.
_STREAM_BLOCK = 10.0


class limit_true_peak_stream:  # noqa: N801 - used like a function returning an iterator
    """:func:`limit_true_peak` over a stream of blocks, in bounded memory.

    Each output block is limited with :data:`_STREAM_MARGIN` seconds of context either side,
    which holds every sample the limiter's gain at that block depends on (look-ahead, hold,
    smoothing, the 4x oversampling filter), so the result equals the whole-array limiter's
    but for its final safety scale, applied per block. Memory: about two blocks of audio,
    whatever the stream's length.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(channels, k), dtype=float32]
        Consecutive pieces of one signal, any lengths.
    sr : int > 0
    ceiling_db : float < 0

    Yields
    ------
    np.ndarray [shape=(channels, m), dtype=float32]
        The limited signal, in blocks of :data:`_STREAM_BLOCK` seconds (the last shorter);
        as many samples in all as came in. ``reduction_db`` holds the largest gain reduction
        once the iteration ends.

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 100 * np.arange(44100) / 22050).astype(np.float32)[None] * 2
    >>> lim = limit_true_peak_stream(np.array_split(y, 7, axis=1), 22050)
    >>> out = np.concatenate(list(lim), axis=1)
    >>> out.shape == y.shape, bool(np.abs(out).max() < 10 ** (-1 / 20)), round(lim.reduction_db)
    (True, True, -7)
    """

    def __init__(self, blocks: Any, sr: int, *, ceiling_db: float = DEFAULT_CEILING_DB) -> None:
        self.sr = _check_sr(sr)
        self.ceiling_db = ceiling_db
        self.reduction_db = 0.0
        self._it = self._run(iter(blocks))

    def __iter__(self) -> limit_true_peak_stream:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._it)

    def _run(self, blocks: Any) -> Any:
        margin = int(round(_STREAM_MARGIN * self.sr))
        size = int(round(_STREAM_BLOCK * self.sr))
        buf: np.ndarray | None = None
        head = 0  # samples of already emitted context at the start of buf
        for block in blocks:
            b = _as_channels(block, "block") if block.shape[-1] else None
            if b is None:
                continue
            buf = b if buf is None else np.concatenate([buf, b], axis=1)
            while buf.shape[1] >= head + size + margin:
                window = buf[:, : head + size + margin]
                out, red = limit_true_peak(window, self.sr, ceiling_db=self.ceiling_db)
                self.reduction_db = min(self.reduction_db, red)
                yield out[:, head : head + size]
                keep_from = max(head + size - margin, 0)
                buf = buf[:, keep_from:].copy()
                head = head + size - keep_from
        if buf is not None and buf.shape[1] > head:
            out, red = limit_true_peak(buf, self.sr, ceiling_db=self.ceiling_db)
            self.reduction_db = min(self.reduction_db, red)
            yield out[:, head:]


def _dc_sos(sr: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter

    return np.asarray(butter(2, cutoff, btype="highpass", fs=sr, output="sos"))


def remove_dc(y: np.ndarray, sr: int, cutoff: float = DC_CUTOFF_HZ) -> np.ndarray:
    """``y`` (channels first, or mono) without its DC offset: minus its mean, then high-passed
    at ``cutoff`` Hz with zero phase (2nd-order Butterworth, run forwards and backwards), float32.

    >>> t = np.arange(22050) / 22050
    >>> y = (0.3 + 0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    >>> out = remove_dc(y, 22050)
    >>> round(float(out.mean()), 4), round(float(np.abs(out).max()), 1)
    (0.0, 0.5)
    """
    from scipy.signal import sosfiltfilt

    x = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    if n > 12:
        # Mirrored ("even") padding: a cut edge continues at its own level, so the filter
        # adds no step there (odd padding left a 3 % overshoot at a cut sine's end).
        pad = min(n - 1, int(sr / cutoff))
        x = sosfiltfilt(_dc_sos(sr, cutoff), x, axis=-1, padtype="even", padlen=pad)
    return x.astype(np.float32)


class DCBlocker:
    """The high-pass of :func:`remove_dc` run causally over consecutive blocks (channels
    first): the state carries over, and it starts settled on the first sample's level, so a
    song that opens off zero does not thump either.

    >>> hp = DCBlocker(22050)
    >>> y = np.full((1, 44100), 0.2, np.float32)
    >>> out = np.concatenate([hp(y[:, :1000]), hp(y[:, 1000:])], axis=1)
    >>> float(np.abs(out).max()) < 1e-6
    True
    """

    def __init__(self, sr: int, cutoff: float = DC_CUTOFF_HZ) -> None:
        self.sos = _dc_sos(sr, cutoff)
        self.zi: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt, sosfilt_zi

        x = np.asarray(block, dtype=np.float64)
        if x.shape[-1] == 0:
            return x.astype(np.float32)
        two = x if x.ndim == 2 else x[None, :]
        if self.zi is None:
            self.zi = sosfilt_zi(self.sos)[:, None, :] * two[:, 0][None, :, None]
        out, self.zi = sosfilt(self.sos, two, axis=-1, zi=self.zi)
        return (out if x.ndim == 2 else out[0]).astype(np.float32)


def _fade(n: int, length: int) -> np.ndarray:
    """Raised-cosine ramp 0 -> 1 over ``length`` samples, 1 after; ``n`` samples."""
    w = np.ones(n, np.float32)
    m = min(length, n)
    if m > 0:
        w[:m] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    return w


# ---------------------------------------------------------------------------------------------
# Pair render


@dataclass
class PairRender:
    """A rendered pair: the mix, the partner layer alone and what was done to it.

    Attributes
    ----------
    mix : np.ndarray [shape like the query, dtype=float32]
        ``limit(mix_gain * (query + partner))``; exactly the query's length.
    partner : np.ndarray [shape like the query, dtype=float32]
        The candidate stretched onto the query's beats, shifted, loudness-matched and faded,
        then peak-limited on its own (safe to write as a stem or preview).
    sr : int
    semitones : float
    tempo_ratio : float
    speeds : np.ndarray [shape=(pieces,)]
        Speed factor applied to each piece (> 1 faster).
    seams : np.ndarray [shape=(pieces + 1,)]
        Query times (seconds) where the pieces meet, 0 and the segment end included.
    gain_db : float
        Gain applied to the partner by the loudness match (plus ``partner_gain_db``).
    mix_gain_db : float
    limiter_db : float <= 0
        Largest gain reduction of the mix limiter.
    loudness_method : {"bs1770", "rms"}
    coverage : tuple of float
        ``(start, end)`` query seconds during which candidate audio plays.
    """

    mix: np.ndarray
    partner: np.ndarray
    sr: int
    semitones: float
    tempo_ratio: float
    speeds: np.ndarray
    seams: np.ndarray
    gain_db: float
    mix_gain_db: float
    limiter_db: float
    loudness_method: str
    coverage: tuple[float, float]
    #: Of ``semitones``, the cents that meet the two tracks' tunings (set by the render
    #: service from the analyses; see :func:`cratedig.theory.tuning_correction`).
    tuning_cents: float = 0.0

    @property
    def stretch(self) -> float:
        """Mean relative speed change of the candidate (0.016 = +1.6 %), duration-weighted."""
        widths = np.diff(self.seams)
        return float(np.sum(self.speeds * widths) / np.sum(widths) - 1.0)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready summary of the transform (no audio)."""
        return {
            "render_version": RENDER_VERSION,
            "sr": self.sr,
            "samples": int(self.mix.shape[-1]),
            "semitones": self.semitones,
            "tuning_cents": self.tuning_cents,
            "tempo_ratio": self.tempo_ratio,
            "stretch": round(self.stretch, 5),
            "pieces": [
                {
                    "start": round(float(a), 4),
                    "end": round(float(b), 4),
                    "speed": round(float(s), 5),
                }
                for a, b, s in zip(self.seams[:-1], self.seams[1:], self.speeds, strict=True)
            ],
            "gain_db": round(self.gain_db, 2),
            "mix_gain_db": round(self.mix_gain_db, 2),
            "limiter_db": round(self.limiter_db, 2),
            "loudness_method": self.loudness_method,
            "coverage": [round(self.coverage[0], 4), round(self.coverage[1], 4)],
        }


def render_pair(
    query: np.ndarray,
    query_sr: int,
    query_beats: np.ndarray,
    candidate: np.ndarray,
    cand_beats: np.ndarray,
    *,
    semitones: float,
    tempo_ratio: float = 1.0,
    candidate_sr: int | None = None,
    piece_beats: int | None = 4,
    partner_gain_db: float = 0.0,
    mix_gain_db: float = DEFAULT_MIX_GAIN_DB,
    ceiling_db: float = DEFAULT_CEILING_DB,
    fade: float = DEFAULT_FADE,
    high_quality: bool = True,
    preserve_formants: bool = False,
    dc_cutoff_hz: float | None = DC_CUTOFF_HZ,
) -> PairRender:
    """Layer a candidate segment over a query segment, beat for beat.

    Parameters
    ----------
    query : np.ndarray [shape=(n,) or (channels, n), dtype=float32]
        The query segment's audio, cut to the segment; it plays unchanged.
    query_sr : int > 0
    query_beats : np.ndarray [shape=(m,)]
        Beat times in seconds from the segment start; the first is its first downbeat (~0).
    candidate : np.ndarray [shape=(k,) or (channels, k), dtype=float32]
        The candidate's audio, cut at its segment or a little wider.
    cand_beats : np.ndarray [shape=(j,)]
        Beat times in seconds from the candidate audio start; the first is a downbeat.
    semitones : float in -12..12
        Pitch shift of the candidate (the match record's ``semitones``).
    tempo_ratio : {1.0, 2.0, 0.5}
        Metrical ratio (the match record's ``tempo_ratio``): 2.0 puts one candidate beat on two
        query beats (half time), 0.5 two candidate beats on one query beat.
    candidate_sr : int, optional
        Rate of ``candidate``; must equal ``query_sr`` (default: assumed equal).
    piece_beats : int >= 1 or None
        Paired beats per separately stretched piece. 4 (default) pins every bar of 4/4 (pass
        the meter for other meters), 1 every paired beat (3x slower, more seams); None is one
        constant stretch from the first to the last paired beat (fastest, but Rubber Band then
        drifts up to ~0.15 % of the elapsed time: tens of ms over a phrase).
    partner_gain_db : float
        Level of the partner relative to the query's loudness (0: equally loud).
    mix_gain_db : float
        Gain of the summed layers before the limiter.
    ceiling_db : float < 0
        True-peak ceiling of the outputs, dBTP.
    fade : float >= 0
        Seconds of fade-in/out at the edges of the partner layer.
    high_quality : bool
        Rubber Band's finer (R3) engine.
    preserve_formants : bool
        Shift pitch inside Rubber Band with formant preservation (kinder to vocals beyond
        +-2 semitones) instead of by resampling; each piece then pays Rubber Band's fixed
        pitch-shift set-up (~70 ms), about 4x slower per beat pieces.
    dc_cutoff_hz : float > 0 or None
        Both layers lose their DC offset first (:func:`remove_dc`, this corner); None keeps
        it (as render version 2 did).

    Returns
    -------
    PairRender
        ``mix`` and ``partner`` have the query's channel layout and exactly its length. A mono
        candidate under a stereo query plays in both channels; a multi-channel candidate under
        a mono query is down-mixed.

    Raises
    ------
    ParameterError
        On bad audio, beats, rates, a shift beyond +-12 semitones, or a tempo ratio whose
        pieces would need a speed outside 0.5..2.

    Examples
    --------
    >>> out = render_pair(q, 22050, q_beats, c, c_beats, semitones=2)  # doctest: +SKIP
    >>> out.mix.shape == q.shape, out.metadata()["stretch"]  # doctest: +SKIP
    (True, 0.05085)
    """
    sr = _check_sr(query_sr, "query_sr")
    if candidate_sr is not None and _check_sr(candidate_sr, "candidate_sr") != sr:
        raise ParameterError(
            f"candidate_sr={candidate_sr} differs from query_sr={sr}: resample the candidate "
            f"first (e.g. cratedig.audio.decode(path, sr={sr}))"
        )
    q = _as_channels(query, "query")
    c = _as_channels(candidate, "candidate")
    shift = _check_semitones(semitones)
    if piece_beats is not None and (
        isinstance(piece_beats, bool) or not isinstance(piece_beats, int) or piece_beats < 1
    ):
        raise ParameterError(f"piece_beats={piece_beats!r} must be a positive integer or None")
    if not (math.isfinite(fade) and fade >= 0):
        raise ParameterError(f"fade={fade!r} must be >= 0 seconds")
    if dc_cutoff_hz is not None and not (
        math.isfinite(dc_cutoff_hz) and 0 < dc_cutoff_hz < min(sr / 4, 200.0)
    ):
        raise ParameterError(f"dc_cutoff_hz={dc_cutoff_hz!r} must be in (0, 200) Hz or None")
    for name, v in (("partner_gain_db", partner_gain_db), ("mix_gain_db", mix_gain_db)):
        if not (math.isfinite(v) and abs(v) <= MAX_GAIN_DB):
            raise ParameterError(f"{name}={v!r} must be within +-{MAX_GAIN_DB:g} dB")
    if c.shape[0] != q.shape[0]:
        if c.shape[0] == 1:
            c = np.repeat(c, q.shape[0], axis=0)
        elif q.shape[0] == 1:
            c = c.mean(axis=0, keepdims=True)
        else:
            raise ParameterError(
                f"candidate has {c.shape[0]} channels, query {q.shape[0]}: need equal counts "
                "or one of them mono"
            )
    if dc_cutoff_hz is not None:
        q, c = remove_dc(q, sr, dc_cutoff_hz), remove_dc(c, sr, dc_cutoff_hz)
    n = q.shape[1]
    qa, ca = _paired_beats(query_beats, cand_beats, tempo_ratio, n / sr)
    piece_shift, pitch_speed = shift, 1.0
    if shift != 0.0 and not preserve_formants:
        # Pitch by resampling (as Rubber Band itself does after stretching): time-exact, one
        # cheap pass; the candidate then plays `pitch_speed` faster and its beats come earlier.
        pitch_speed = 2.0 ** (shift / 12.0)
        c = _resample(c, pitch_speed)
        ca = ca / pitch_speed
        piece_shift = 0.0
    pieces = _seams(qa, ca, sr, n, piece_beats)
    partner = _render_pieces(c, sr, pieces, piece_shift, high_quality=high_quality)

    # Where candidate audio actually plays (before its start and past its end: silence).
    t_samples, s_samples = pieces.t.astype(np.float64), pieces.s.astype(np.float64)
    a = float(np.interp(0.0, s_samples, t_samples, left=0.0, right=float(n)))
    b = float(np.interp(float(c.shape[1]), s_samples, t_samples, left=0.0, right=float(n)))
    a_i, b_i = int(np.clip(round(a), 0, n)), int(np.clip(round(b), 0, n))
    partner[:, :a_i] = 0.0
    partner[:, b_i:] = 0.0
    if b_i > a_i:
        k = int(round(fade * sr))
        span = b_i - a_i
        partner[:, a_i:b_i] *= _fade(span, k)[None, :] * _fade(span, k)[None, ::-1]
        gain_db, method = _match_gain_db(q, partner[:, a_i:b_i], sr)
    else:
        gain_db, method = 0.0, "rms"
    gain_db += partner_gain_db
    partner *= np.float32(10.0 ** (gain_db / 20.0))

    mixed = (q.astype(np.float64) + partner) * 10.0 ** (mix_gain_db / 20.0)
    mix, limiter_db = limit_true_peak(mixed.astype(np.float32), sr, ceiling_db=ceiling_db)
    partner, _ = limit_true_peak(partner, sr, ceiling_db=ceiling_db)
    mono = np.ndim(query) == 1
    return PairRender(
        mix=mix[0] if mono else mix,
        partner=partner[0] if mono else partner,
        sr=sr,
        semitones=shift,
        tempo_ratio=float(tempo_ratio),
        speeds=pieces.speeds * pitch_speed,
        seams=pieces.t / sr,
        gain_db=float(gain_db),
        mix_gain_db=float(mix_gain_db),
        limiter_db=limiter_db,
        loudness_method=method,
        coverage=(a_i / sr, b_i / sr),
    )


# ---------------------------------------------------------------------------------------------
# Cache


def _jsonable(x: Any) -> Any:
    if isinstance(x, (str, bool, type(None))):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if not math.isfinite(f):
            raise ParameterError(f"cache key part {x!r} is not finite")
        return int(f) if f.is_integer() else repr(f)
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    raise ParameterError(
        f"cache key part {x!r} of type {type(x).__name__} is not a str, number, bool, None, "
        "list or dict"
    )


def cache_key(*parts: Any) -> str:
    """Stable hex key of a render: segment ids, transforms, options and :data:`RENDER_VERSION`.

    Numbers hash by value (``2 == 2.0``), dicts by sorted keys. Key by segment ids (track ids
    are content hashes), never by paths alone.

    Examples
    --------
    >>> cache_key("ab12_3", "cd34_0", {"semitones": 2, "tempo_ratio": 1.0}) == cache_key(
    ...     "ab12_3", "cd34_0", {"tempo_ratio": 1, "semitones": 2.0})
    True
    """
    payload = json.dumps(["cratedig-render", RENDER_VERSION, _jsonable(list(parts))])
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


_KEY = re.compile(r"[0-9a-f]{32}")


class RenderCache:
    """Rendered audio on disk as float WAV files, ``<dir>/<key[:2]>/<key>.wav``.

    Writes are atomic (a temporary file in the same folder, then :func:`os.replace`), so a
    reader never sees half a file and concurrent writers of one key are harmless.

    Examples
    --------
    >>> cache = RenderCache(tmp_path)  # doctest: +SKIP
    >>> key = cache_key("ab12_3", "cd34_0", 2, 1.0)  # doctest: +SKIP
    >>> cache.get(key) or cache.put(key, out.mix, out.sr)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        """Where ``key`` is stored (whether or not it is)."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ParameterError(f"cache key {key!r} must be 32 hex digits from cache_key()")
        return self.directory / key[:2] / f"{key}.wav"

    def get(self, key: str) -> tuple[np.ndarray, int] | None:
        """``(audio, sr)`` in cratedig's layout, or None when absent."""
        import soundfile as sf

        p = self.path(key)
        if not p.exists():
            return None
        data, sr = sf.read(p, dtype="float32", always_2d=True)
        audio = data[:, 0].copy() if data.shape[1] == 1 else np.ascontiguousarray(data.T)
        return audio, int(sr)

    def put(self, key: str, audio: np.ndarray, sr: int) -> Path:
        """Store ``audio`` (mono or channels-first) under ``key``; returns its path."""
        import soundfile as sf

        p = self.path(key)
        y = _as_channels(audio, "audio")
        sr = _check_sr(sr)
        with atomic_path(p) as tmp:
            sf.write(str(tmp), y.T, sr, format="WAV", subtype="FLOAT")
        return p
