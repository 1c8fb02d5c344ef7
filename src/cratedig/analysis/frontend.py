"""The one time-frequency front end every analysis stage shares.

Two short-time Fourier transforms of the signal decimated to 11025 Hz, each computed once:

- a *rhythm* STFT (1024-point window, hop 256 = 23.2 ms): onset strength per band, band
  energies, RMS;
- a *tonal* STFT (4096-point window, hop 1024 = 92.9 ms, 2.7 Hz bins): tuning and chroma, fine
  enough to resolve semitones down to the bass register (55 Hz) that names a key's tonic.

Why not librosa's ``onset_strength`` + ``chroma_cqt``: the CQT alone runs at ~200x realtime and
recomputes its own transforms; two real FFT passes at 11 kHz cost ~0.1 s for a 3-minute track
(``bench/accuracy.py`` times the whole analysis beside a plain librosa pipeline).
Frame/second conversions happen only in :class:`Frontend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import soxr

from cratedig.errors import ParameterError

#: Rate of the decimated signal both STFTs read.
FRONTEND_SR = 11025
RHYTHM_NFFT, RHYTHM_HOP = 1024, 256
TONAL_NFFT, TONAL_HOP = 4096, 1024
#: Band edges in Hz for the spectral balance and the band-wise onset envelopes.
BAND_EDGES = (200.0, 2000.0)
N_MEL = 40


@dataclass
class Frontend:
    """Spectral views of one track.

    Attributes
    ----------
    fps : float
        Frames per second of the rhythm features (43.07).
    onset : np.ndarray [shape=(n,)]
        Onset strength: half-wave rectified log-mel flux, summed over bands.
    onset_bands : np.ndarray [shape=(3, n)]
        The same flux restricted to low / mid / high bands (kick / snare+chords / hats).
    band_energy : np.ndarray [shape=(3, n)]
        Power in the low / mid / high bands per rhythm frame.
    rms : np.ndarray [shape=(n,)]
        RMS of each rhythm frame.
    mel_db : np.ndarray [shape=(N_MEL, n)]
        Log-mel spectrum (dB), the timbre view used for structure.
    tonal_fps : float
        Frames per second of ``tonal_mag`` (10.77).
    tonal_mag : np.ndarray [shape=(n_t, TONAL_NFFT // 2 + 1)]
        Magnitude spectrum of the tonal STFT.
    duration : float
        Seconds.
    note_flux : np.ndarray [shape=(n,)] or None
        Level-invariant spectral change (:func:`note_flux`): where new notes begin even when
        they swell in slowly. None where a caller built the front end without it.
    """

    fps: float
    onset: np.ndarray
    onset_bands: np.ndarray
    band_energy: np.ndarray
    rms: np.ndarray
    mel_db: np.ndarray
    tonal_fps: float
    tonal_mag: np.ndarray
    duration: float
    note_flux: np.ndarray | None = None

    def frames_to_time(self, frames: np.ndarray | float) -> np.ndarray:
        """Rhythm frame index -> seconds (frame centre)."""
        return np.asarray(frames, dtype=np.float64) / self.fps

    def time_to_frames(self, times: np.ndarray | float) -> np.ndarray:
        """Seconds -> fractional rhythm frame index."""
        return np.asarray(times, dtype=np.float64) * self.fps

    def tonal_time_to_frames(self, times: np.ndarray | float) -> np.ndarray:
        """Seconds -> fractional tonal frame index."""
        return np.asarray(times, dtype=np.float64) * self.tonal_fps


def compute_frontend(y: np.ndarray, *, sr: int) -> Frontend:
    """Compute the shared front end of mono signal ``y`` sampled at ``sr`` Hz.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
    sr : int > 0

    Returns
    -------
    Frontend
    """
    if y.ndim != 1:
        raise ParameterError(f"y must be mono with shape (n,), got shape {y.shape}")
    if sr <= 0:
        raise ParameterError(f"sr={sr} must be positive")
    x = y if sr == FRONTEND_SR else soxr.resample(y, sr, FRONTEND_SR, quality="HQ")
    x = np.ascontiguousarray(x, dtype=np.float32)
    duration = len(y) / sr

    # -- rhythm STFT ----------------------------------------------------------------------
    mag = _stft_mag(x, RHYTHM_NFFT, RHYTHM_HOP)  # (n, 513)
    power = mag * mag
    fps = FRONTEND_SR / RHYTHM_HOP
    mel = power @ _mel_basis(FRONTEND_SR, RHYTHM_NFFT, N_MEL).T  # (n, N_MEL)
    mel_db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    # Log-compressed flux: robust to level, the standard onset detection function
    # (Böck & Widmer 2013 without the max filter), lag 1 frame.
    logmel = np.log1p(100.0 * mel / max(float(mel.max()), 1e-10))
    flux = np.maximum(0.0, np.diff(logmel, axis=0, prepend=logmel[:1]))
    # Bands are runs of adjacent columns (mel bands and bins rise with frequency): sums over
    # column slices, views, where a boolean mask copied the columns first (same sums).
    onset_bands = np.stack(
        [flux[:, a:b].sum(axis=1) for a, b in _runs(_mel_band_index(FRONTEND_SR, N_MEL))]
    )
    onset = onset_bands.sum(axis=0)
    freqs = np.fft.rfftfreq(RHYTHM_NFFT, 1.0 / FRONTEND_SR)
    band_energy = np.stack(
        [power[:, a:b].sum(axis=1) for a, b in _runs(np.digitize(freqs, BAND_EDGES))]
    )
    # Parseval on the one-sided spectrum of a Hann-windowed frame of N samples: its power sum
    # is about N / 2 times the sum of the windowed squares, which is N * mean(w^2) times the
    # frame's mean square. (Without the second N the level read 30.1 dB hot: "+5.9 dBFS".)
    rms = np.sqrt(
        power.sum(axis=1) * (2.0 / (RHYTHM_NFFT * RHYTHM_NFFT * _window_power(RHYTHM_NFFT)))
    )
    notes = note_flux(mag, rms)

    # -- tonal STFT -----------------------------------------------------------------------
    tonal_mag = _stft_mag(x, TONAL_NFFT, TONAL_HOP)
    return Frontend(
        fps=fps,
        onset=onset.astype(np.float32),
        onset_bands=onset_bands.astype(np.float32),
        band_energy=band_energy.astype(np.float32),
        rms=rms.astype(np.float32),
        mel_db=mel_db.T.astype(np.float32),
        tonal_fps=FRONTEND_SR / TONAL_HOP,
        tonal_mag=tonal_mag,
        duration=duration,
        note_flux=notes,
    )


#: Band (Hz) and frame lag of :func:`note_flux`: the fundamentals and first partials of
#: melody and bass; two frames (46 ms) see a legato pitch change whole. Up to 4 kHz instead:
#: dev beat F 0.730 against 0.732 (72 real pieces), at twice the cost (1.4 ms a minute here).
NOTE_FLUX_BAND = (60.0, 2000.0)
NOTE_FLUX_LAG = 2
#: Frames quieter than this (dB re the 95th-percentile RMS) add no note flux: the shape of
#: a near-silent spectrum is noise.
NOTE_FLUX_FLOOR_DB = -40.0


def note_flux(mag: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """Level-invariant spectral change of the rhythm STFT magnitude ``mag`` (frames in rows).

    Each frame's log-compressed spectrum (:data:`NOTE_FLUX_BAND`) is scaled to unit mean,
    so a note that swells in (a bowed string, a pad, FluidSynth's string patches, which rise
    over 300 ms and whose previous note dips at the new one's start) adds nothing while it
    grows: only a change of *which* partials sound counts, and that happens where the note
    begins. The log flux peaks instead where the swell is steepest, up to half a beat late.
    Half-wave rectified increase over :data:`NOTE_FLUX_LAG` frames, placed at their
    midpoint; frames below :data:`NOTE_FLUX_FLOOR_DB` are zero.
    """
    lo = int(np.ceil(NOTE_FLUX_BAND[0] * RHYTHM_NFFT / FRONTEND_SR))
    hi = int(NOTE_FLUX_BAND[1] * RHYTHM_NFFT / FRONTEND_SR)
    m = mag[:, lo : hi + 1]
    shape = m * np.float32(1000.0 / max(float(m.max()), 1e-10))
    np.log1p(shape, out=shape)
    shape /= np.maximum(shape.mean(axis=1, keepdims=True), np.float32(1e-6))
    lag = NOTE_FLUX_LAG
    out = np.zeros(len(mag), dtype=np.float32)
    if len(mag) > lag:
        rise = shape[lag:] - shape[:-lag]
        np.maximum(rise, 0.0, out=rise)
        half = lag // 2
        out[half : half + len(rise)] = rise.mean(axis=1)
    loud = float(np.percentile(rms, 95)) if rms.size else 0.0
    out[rms < loud * 10 ** (NOTE_FLUX_FLOOR_DB / 20)] = 0.0
    return out


def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred STFT magnitude, frames in rows. Frame i is centred on sample i * hop."""
    pad = n_fft // 2
    xp = np.pad(x, (pad, pad))
    n_frames = 1 + (len(xp) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        xp, shape=(n_frames, n_fft), strides=(xp.strides[0] * hop, xp.strides[0]), writeable=False
    )
    out = np.empty((n_frames, n_fft // 2 + 1), dtype=np.float32)
    win = _hann(n_fft)
    # Chunked so the windowed copy stays in cache-friendly pieces (~512 KiB: 32 frames of the
    # tonal STFT, 128 of the rhythm one; 512 tonal frames took 40 % longer).
    step = max(1, (1 << 17) // n_fft)
    for i in range(0, n_frames, step):
        spec = scipy.fft.rfft(frames[i : i + step] * win, axis=1, workers=1)
        np.abs(spec, out=out[i : i + step], casting="same_kind")
    return out


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return np.hanning(n + 1)[:-1].astype(np.float32)


def _window_power(n: int) -> float:
    w = _hann(n)
    return float(np.sum(w * w)) / n


@lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa  # lazy: librosa's import is slow and only this filterbank is needed here

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=30.0, fmax=sr / 2).astype(
        np.float32
    )


def _runs(band: np.ndarray, n: int = 3) -> list[tuple[int, int]]:
    """Column ranges ``[a, b)`` of bands ``0..n-1`` in a non-decreasing band index."""
    if np.any(np.diff(band) < 0):
        raise ValueError("band index must not decrease")
    return [
        (int(np.searchsorted(band, k, "left")), int(np.searchsorted(band, k, "right")))
        for k in range(n)
    ]


@lru_cache(maxsize=4)
def _mel_band_index(sr: int, n_mels: int) -> np.ndarray:
    import librosa

    centres = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=30.0, fmax=sr / 2)[1:-1]
    return np.digitize(centres, BAND_EDGES)
