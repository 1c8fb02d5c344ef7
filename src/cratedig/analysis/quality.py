"""Input quality of one track: is the audio what its file claims, and can the analysis trust it?

Conventions
-----------
Pure functions of a :class:`~cratedig.audio.decode.DecodedAudio` (its native-rate
:class:`~cratedig.audio.stats.SourceStats`) and, optionally, the track's
:class:`~cratedig.analysis.records.TrackAnalysis`. Nothing here reads a file.

Measures
--------
bandwidth_hz
    The frequency above which the mean power spectrum stays at the noise floor. Lossy encoders
    low-pass before coding (LAME: ~17 kHz at 128 kbps, ~19 kHz at 192, ~20 kHz at 320; AAC at
    128 kbps: ~15-17 kHz) and the cut is a cliff of tens of dB within a few hundred Hz, whereas
    acoustic and synthetic content rolls off gradually. A lossless container (FLAC, WAV, AIFF)
    whose spectrum ends in such a cliff below 20.5 kHz was transcoded from a lossy file: "fake
    lossless" (the method of spectral auditing tools such as Fakin' The Funk, Lossless Audio
    Checker and Spek inspection: Hiller et al., "Detection of lossy-compressed audio", 2014).
declared / effective bitrate class
    Declared: "lossless" for PCM and FLAC containers, otherwise the nominal kbps from the file
    size. Effective: the class the bandwidth cliff points to.
clipping
    Share of samples at full scale and runs of >= 3 consecutive ones (clipped peaks).
dc_offset
    Largest channel mean (flag above 0.01, -40 dBFS).
stereo
    Side/mid energy in dB; identical channels (below -60 dB) are fake stereo.
silence_share
    Share of 93 ms windows below -60 dBFS in the analysed signal.
confidence
    The analysis' own: beat strength (onset contrast of beats against the other 16ths of the
    bar, from the segments' rhythm patterns), key clarity, tempo stability (1 - coefficient of
    variation of the beat intervals).

Flags name what is suspect; a track with any flag is "low" quality (``cratedig tracks --quality
low``). :data:`THRESHOLDS` holds every limit in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cratedig.analysis.records import TrackAnalysis
from cratedig.audio.decode import DecodedAudio
from cratedig.audio.stats import SourceStats

#: Containers that store audio without loss (the declared class "lossless").
LOSSLESS_FORMATS = frozenset({"WAV", "WAVEX", "AIFF", "FLAC", "W64", "CAF", "RF64"})
#: A declared bitrate at least this high (kbps) is lossless whatever the container (ALAC in M4A).
LOSSLESS_KBPS = 500.0

#: Every limit of the quality flags.
THRESHOLDS: dict[str, float] = {
    # A cliff at least this deep (dB) within 1.6 kHz around the bandwidth is a lossy low-pass.
    "cliff_db": 25.0,
    # Below this bandwidth a lossless file with a cliff is fake lossless.
    "fake_lossless_hz": 21_000.0,
    # Where MP3/AAC encoders at <= 192 kbps put their low-pass (15-19.3 kHz), a shallower cliff
    # suffices: music rarely ends there in a cliff (<= 12 dB in the benchmark's genuine files).
    "band_cliff_db": 18.0,
    "band_lo_hz": 15_000.0,
    "band_hi_hz": 19_300.0,
    # Share of samples at full scale / clipped runs per minute above which a track is clipped.
    "clip_share": 1e-3,
    "clip_runs_per_min": 20.0,
    "dc_offset": 0.01,
    "fake_stereo_db": -60.0,
    "silence_share": 0.3,
    "beat_strength": 0.08,
    "key_clarity": 0.02,
    "tempo_stability": 0.92,
}

#: Effective bitrate classes by the frequency of a low-pass cliff (LAME/AAC defaults).
_CLASS_EDGES = ((15_500.0, "<128 kbps"), (17_500.0, "128 kbps"), (19_300.0, "192 kbps"))
_NOMINAL_KBPS = (32, 48, 64, 96, 112, 128, 160, 192, 224, 256, 320)
_SILENCE_DB = -60.0
_SILENCE_WINDOW = 2048  # samples at the analysis rate (~93 ms at 22.05 kHz)


def assess_quality(
    audio: DecodedAudio,
    analysis: TrackAnalysis | None = None,
    *,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The input-quality record of one decoded track.

    Parameters
    ----------
    audio : DecodedAudio
        From :func:`cratedig.audio.decode` (with its ``source_stats``).
    analysis : TrackAnalysis, optional
        Adds the analysis-confidence measures and their flags.
    thresholds : dict, optional
        Overrides of :data:`THRESHOLDS`.

    Returns
    -------
    dict
        ``{"bandwidth_hz", "cutoff_db", "fake_lossless", "declared", "effective",
        "bitrate_kbps", "clipping": {"share", "runs"}, "dc_offset", "stereo",
        "silence_share", "confidence": {...}, "flags": [...], "reasons": {flag: text},
        "level": "ok" | "low"}``

    Examples
    --------
    >>> q = assess_quality(decode("song.flac"))  # doctest: +SKIP
    >>> q["fake_lossless"], q["bandwidth_hz"]  # doctest: +SKIP
    (True, 16020.0)
    """
    th = {**THRESHOLDS, **(thresholds or {})}
    flags: dict[str, str] = {}
    st = audio.source_stats
    out: dict[str, Any] = {}
    declared, kbps = declared_class(audio.format, st, audio.duration)
    out["declared"] = declared
    out["bitrate_kbps"] = round(kbps, 1) if kbps is not None else None
    if st is not None and st.spectrum_windows:
        bw, cliff = bandwidth(
            st.spectrum,
            st.sr,
            cliff_db=th["cliff_db"],
            band=(th["band_lo_hz"], th["band_hi_hz"], th["band_cliff_db"]),
        )
        in_band = th["band_lo_hz"] <= bw <= th["band_hi_hz"]
        sharp = cliff >= th["cliff_db"] or (in_band and cliff >= th["band_cliff_db"])
        effective = effective_class(bw, sharp, st.sr)
        fake = (
            declared == "lossless" and sharp and bw < min(th["fake_lossless_hz"], 0.93 * st.sr / 2)
        )
        out.update(bandwidth_hz=round(bw, 0), cutoff_db=round(cliff, 1), fake_lossless=fake)
        out["effective"] = effective
        if fake:
            flags["fake_lossless"] = (
                f"{audio.format} but no content above {bw / 1000:.1f} kHz "
                f"(a {cliff:.0f} dB low-pass cliff: transcoded from ~{effective})"
            )
        elif (
            declared != "lossless"
            and kbps is not None
            and kbps >= 250
            and sharp
            and effective in ("<128 kbps", "128 kbps")
        ):
            flags["transcoded"] = (
                f"declared {kbps:.0f} kbps but content ends at {bw / 1000:.1f} kHz "
                f"(like {effective})"
            )
        frames = max(st.frames * st.channels, 1)
        share = st.full_scale / frames
        minutes = max(st.frames / st.sr / 60.0, 1e-9)
        out["clipping"] = {"share": round(share, 6), "runs": int(st.clip_runs)}
        if share >= th["clip_share"] or st.clip_runs / minutes >= th["clip_runs_per_min"]:
            flags["clipping"] = (
                f"{100 * share:.2f} % of samples at full scale, {st.clip_runs} clipped runs"
            )
        out["dc_offset"] = round(st.dc_offset, 5)
        if st.dc_offset >= th["dc_offset"]:
            flags["dc_offset"] = (
                f"DC offset {st.dc_offset:.3f} ({20 * np.log10(st.dc_offset):.0f} dBFS)"
            )
        if st.channels >= 2 and st.mid_energy > 0:
            side_db = 10 * np.log10(max(st.side_energy, 1e-30) / st.mid_energy)
            out["stereo"] = {"side_db": round(float(max(side_db, -150.0)), 1)}
            if side_db <= th["fake_stereo_db"]:
                flags["fake_stereo"] = f"{st.channels} channels carrying the same signal"
        else:
            out["stereo"] = None
    else:
        out.update(bandwidth_hz=None, cutoff_db=None, fake_lossless=False, effective=None)
        out.update(clipping=None, dc_offset=None, stereo=None)
    silence = silence_share(audio.samples)
    out["silence_share"] = round(silence, 4)
    if silence >= th["silence_share"]:
        flags["silence"] = f"{100 * silence:.0f} % of the track is silent"
    if analysis is not None:
        conf = analysis_confidence(analysis)
        out["confidence"] = {k: round(v, 4) for k, v in conf.items()}
        if conf["beat_strength"] < th["beat_strength"]:
            flags["no_stable_beat"] = f"weak beat (strength {conf['beat_strength']:.2f})"
        elif conf["tempo_stability"] < th["tempo_stability"]:
            flags["no_stable_beat"] = f"unsteady tempo (stability {conf['tempo_stability']:.2f})"
        if conf["key_clarity"] < th["key_clarity"]:
            flags["unclear_key"] = f"key clarity {conf['key_clarity']:.3f}"
    out["flags"] = list(flags)
    out["reasons"] = flags
    out["level"] = "low" if flags else "ok"
    return out


def declared_class(
    fmt: str, stats: SourceStats | None, duration: float
) -> tuple[str, float | None]:
    """The class the file declares ("lossless" or "<n> kbps") and its mean bitrate in kbps."""
    kbps = (
        stats.file_bytes * 8 / duration / 1000.0
        if stats is not None and stats.file_bytes and duration > 0
        else None
    )
    if fmt.upper() in LOSSLESS_FORMATS or (kbps is not None and kbps >= LOSSLESS_KBPS):
        return "lossless", kbps
    if kbps is None:
        return "lossy", None
    nominal = min(_NOMINAL_KBPS, key=lambda k: abs(k - kbps))
    return f"{nominal} kbps", kbps


def effective_class(bandwidth_hz: float, sharp: bool, sr: int) -> str:
    """The bitrate class a bandwidth points to: lossy classes need a sharp low-pass cliff."""
    if not sharp or bandwidth_hz >= 0.93 * sr / 2:
        return "full band" if bandwidth_hz >= 19_300.0 else "band-limited content"
    for edge, name in _CLASS_EDGES:
        if bandwidth_hz < edge:
            return name
    return "256-320 kbps" if bandwidth_hz < 20_500.0 else "full band"


def bandwidth(
    spectrum: np.ndarray,
    sr: int,
    *,
    cliff_db: float = 25.0,
    band: tuple[float, float, float] | None = None,
) -> tuple[float, float]:
    """Bandwidth (Hz) of a mean power spectrum and the depth (dB) of the cliff that ends it.

    Parameters
    ----------
    spectrum : np.ndarray [shape=(n_fft // 2 + 1,)]
        Mean power per bin, bins at ``k * sr / n_fft``.
    sr : int > 0
    cliff_db : float
        Depth (dB) from which a drop is a low-pass cliff.
    band : (float, float, float), optional
        ``(lo_hz, hi_hz, cliff_db)``: in the encoders' low-pass band a shallower cliff counts.

    Returns
    -------
    bandwidth_hz : float
        Where the deepest low-pass cliff above 8 kHz is, when it is at least ``cliff_db`` deep
        (or the deepest inside ``band``, when it is deep enough for the band);
        otherwise the highest frequency whose level is 10 dB above the floor (Nyquist for
        content that never reaches one).
    cliff_db : float
        Level 0.2-1 kHz below the bandwidth minus the loudest level from 0.2 kHz above it up to
        Nyquist: tens of dB for an encoder's low-pass, a few for a natural roll-off.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    n = len(spectrum)
    hz_per_bin = sr / 2 / max(n - 1, 1)
    level = 10 * np.log10(spectrum + 1e-20)
    width = max(int(round(150.0 / hz_per_bin)), 1)
    # Edge bins averaged over what exists only (a "same" convolution would pull them down).
    kernel = np.ones(width)
    smooth = np.convolve(level, kernel, mode="same") / np.convolve(np.ones(n), kernel, mode="same")
    freqs = np.arange(n) * hz_per_bin
    music = float(np.percentile(smooth[(freqs >= 200.0) & (freqs <= 4000.0)], 90))
    # Nothing is quieter than 100 dB under the music: 24-bit dither, a digital zero and an
    # encoder's empty bands are all "nothing".
    smooth = np.maximum(smooth, music - 100.0)
    gap, reach = int(200.0 / hz_per_bin) + 1, int(1000.0 / hz_per_bin) + 1
    ceiling = np.maximum.accumulate(smooth[::-1])[::-1]  # loudest level at or above each bin
    csum = np.concatenate(([0.0], np.cumsum(smooth)))
    cand = np.arange(max(int(8000.0 / hz_per_bin), reach), n - gap - 1)
    if len(cand):
        below = (csum[cand - gap + 1] - csum[cand - reach + 1]) / (reach - gap)
        drop = below - ceiling[cand + gap]
        best = int(np.argmax(drop))
        if drop[best] >= cliff_db:
            return float(freqs[cand[best]]), float(drop[best])
        if band is not None:
            inside = (freqs[cand] >= band[0]) & (freqs[cand] <= band[1])
            if inside.any():
                b = int(np.flatnonzero(inside)[np.argmax(drop[inside])])
                if drop[b] >= band[2]:
                    return float(freqs[cand[b]]), float(drop[b])
        cliff = float(drop[best])
    else:
        cliff = 0.0
    floor = float(np.percentile(smooth[freqs >= 1000.0], 2))
    above = (freqs >= 1000.0) & (smooth > floor + 10.0)
    # From Nyquist down, 150 Hz worth of bins above the floor make content: a lone tone or an
    # aliasing spike near Nyquist does not.
    from_top = np.cumsum(above[::-1])[::-1]
    enough = np.flatnonzero(above & (from_top >= max(int(150.0 / hz_per_bin), 2)))
    if len(enough) == 0 or floor > music - 60.0:
        return float(freqs[-1]), cliff  # no floor in sight: content up to Nyquist
    return float(freqs[int(enough[-1])]), cliff


def silence_share(y: np.ndarray, *, threshold_db: float = _SILENCE_DB) -> float:
    """Share of :data:`_SILENCE_WINDOW`-sample windows of ``y`` (mono) whose RMS is below
    ``threshold_db`` dBFS."""
    y = np.asarray(y)
    if y.ndim > 1:
        y = y.mean(axis=0)
    n = len(y) // _SILENCE_WINDOW
    if n == 0:
        return 0.0
    frames = y[: n * _SILENCE_WINDOW].reshape(n, _SILENCE_WINDOW)
    # A few windows at a time in float64, squared in place: the same sums as one pass over a
    # whole-track float64 copy, 5x faster (the pieces stay in cache).
    mean_square = np.empty(n)
    for i in range(0, n, 16):
        part = frames[i : i + 16].astype(np.float64)
        np.square(part, out=part)
        mean_square[i : i + 16] = part.mean(axis=1)
    rms = np.sqrt(mean_square)
    return float(np.mean(rms < 10 ** (threshold_db / 20)))


def analysis_confidence(analysis: TrackAnalysis) -> dict[str, float]:
    """Beat strength, key clarity and tempo stability of an analysis, each in [0, 1].

    Beat strength is the mean onset strength on the beats minus that on the other 16ths of
    the bar (the segments' rhythm patterns are scaled to max 1), weighted by segment length:
    near 0 for music with no pulse, 0.3-0.6 for a drum groove.
    """
    weights, contrast = [], []
    for seg in analysis.segments:
        r = np.asarray(seg.features.rhythm, dtype=np.float64)
        if len(r) < 4 or not np.any(r > 0):
            continue
        on = np.zeros(len(r), bool)
        on[::4] = True
        contrast.append(float(r[on].mean() - r[~on].mean()))
        weights.append(max(seg.end - seg.start, 1e-3))
    beat = float(np.clip(np.average(contrast, weights=weights), 0.0, 1.0)) if contrast else 0.0
    ibi = np.diff(np.asarray(analysis.beats, dtype=np.float64))
    if len(ibi) >= 4 and np.mean(ibi) > 0:
        stability = float(np.clip(1.0 - np.std(ibi) / np.mean(ibi), 0.0, 1.0))
    else:
        stability = 0.0
    out = {
        "beat_strength": beat,
        "key_clarity": float(analysis.key_clarity),
        "tempo_stability": stability,
    }
    tempo = analysis.estimates.get("tempo") if analysis.estimates else None
    if isinstance(tempo, dict) and isinstance(tempo.get("confidence"), int | float):
        out["tempo_confidence"] = float(tempo["confidence"])
    return out
