"""A small learned key classifier over a semitone spectrogram, equivariant to transposition.

Why: the chroma-and-profile key of :mod:`cratedig.analysis.tonal` sums the spectrum into 12
numbers and compares them with a template; a trained network that reads the spectrum itself
(madmom's key CNN, Korzeniowski & Widmer 2017) was measurably ahead of it on the real-music
set (issue 9). This network reads the same tonal STFT the rest of the analysis uses.

Model
-----
- **Input**: the tonal STFT's magnitude mapped to semitones :data:`PITCH_LO` .. (C2 to B6,
  tuning-corrected, each STFT bin shared linearly between its two nearest semitones), averaged
  over :data:`POOL` frames (0.37 s), scaled by the excerpt's loudest value and compressed
  (``log1p(GAIN * x)``).
- **Per frame and tonic**: for each candidate tonic ``r`` (0 = C) the :data:`WINDOW`
  semitones from ``r`` in octave 2 up go through a two-layer perceptron shared by all tonics
  and frames. The same weights judge every tonic, so transposing the audio moves the output
  with it (no key is favoured by the data's key distribution), and 12 keys are learned from
  each labelled piece.
- **Per excerpt**: the hidden features are averaged over frames, and a linear read-out gives a
  major and a minor score per tonic: 24 logits in :meth:`cratedig.theory.Key.index` order,
  averaged over an ensemble of networks trained from different seeds.

Weights are trained by ``bench/fit_key_net.py`` (PyTorch, only there) on music that no bench
set or test uses, and shipped as ``keynet.npz``, read with ``allow_pickle=False``: loading
cannot run code. Inference is numpy: ~2.5 ms a minute of audio for five networks.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from cratedig.analysis.frontend import FRONTEND_SR, TONAL_NFFT

#: MIDI note of the lowest semitone bin (C2, 65.4 Hz): below it the tonal STFT's 2.7 Hz bins
#: are wider than a semitone.
PITCH_LO = 36
#: Semitone bins (C2 .. B6, 1976 Hz).
N_PITCH = 60
#: Semitones each tonic's window spans (four octaves from the tonic in octave 2).
WINDOW = 48
#: Tonal frames averaged into one input frame (4 x 92.9 ms).
POOL = 4
#: Compression of the input: ``log1p(GAIN * x / loudest)``.
GAIN = 100.0
MODEL_FILE = "keynet.npz"
log = logging.getLogger("cratedig.analysis")
_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


@dataclass(frozen=True)
class KeyNet:
    """Weights of the key network (see the module docstring for the shapes' meaning)."""

    w1: np.ndarray  # (E, WINDOW, H1): E networks trained from different seeds, averaged
    b1: np.ndarray  # (E, H1)
    w2: np.ndarray  # (E, H1, H2)
    b2: np.ndarray  # (E, H2)
    w3: np.ndarray  # (E, H2, 2): major, minor
    b3: np.ndarray  # (E, 2)
    version: str

    @classmethod
    def from_npz(cls, path) -> KeyNet:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], dtype=np.float32) for k in _NAMES}
            version = str(z["version"]) if "version" in z.files else "unknown"
        for k in _NAMES:  # one network stored without the ensemble axis
            if arrays[k].ndim == (2 if k.startswith("w") else 1):
                arrays[k] = arrays[k][None]
        w1, w2, w3 = arrays["w1"], arrays["w2"], arrays["w3"]
        e = len(w1)
        if (
            w1.ndim != 3 or w1.shape[1] != WINDOW or w3.shape[2:] != (2,)
            or w2.shape[1] != w1.shape[2] or w3.shape[1] != w2.shape[2]
            or any(len(arrays[k]) != e for k in _NAMES)
            or arrays["b1"].shape[1:] != w1.shape[2:] or arrays["b2"].shape[1:] != w2.shape[2:]
            or arrays["b3"].shape[1:] != (2,)
        ):  # fmt: skip
            raise ValueError(f"{path}: weights of another input layout")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise ValueError(f"{path}: weights that are not finite")
        return cls(version=version, **arrays)


@lru_cache(maxsize=1)
def default_net() -> KeyNet | None:
    """The shipped network (loaded once), or None with one warning when its file is missing or
    damaged: keys then come from the profile cues alone (analysis v13's), and nothing fails."""
    try:
        with resources.as_file(resources.files("cratedig.analysis") / MODEL_FILE) as p:
            return KeyNet.from_npz(p)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.warning("key network unavailable (%s): keys from the profile cues alone", e)
        return None


@lru_cache(maxsize=32)
def _semitone_map(tuning_cents: float) -> tuple[int, int, np.ndarray]:
    """Rows ``lo:hi`` of the tonal STFT and their (hi - lo, N_PITCH) map to semitone bins."""
    freqs = np.arange(TONAL_NFFT // 2 + 1) * FRONTEND_SR / TONAL_NFFT
    with np.errstate(divide="ignore"):
        pitch = 69.0 + 12.0 * np.log2(freqs / 440.0) - tuning_cents / 100.0 - PITCH_LO
    rows = np.flatnonzero((pitch > -1.0) & (pitch < N_PITCH))
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    p = pitch[lo:hi]
    m = np.zeros((hi - lo, N_PITCH), dtype=np.float32)
    below = np.floor(p).astype(np.int64)
    frac = (p - below).astype(np.float32)
    r = np.arange(hi - lo)
    ok = below >= 0
    m[r[ok], below[ok]] = 1.0 - frac[ok]
    ok = below + 1 < N_PITCH
    m[r[ok], below[ok] + 1] = frac[ok]
    return lo, hi, m


def pitch_frames(tonal_mag: np.ndarray, *, tuning: float = 0.0) -> np.ndarray:
    """The network's input: (n_frames, N_PITCH) compressed semitone spectrum, one row per
    :data:`POOL` tonal frames (a last partial group is kept)."""
    lo, hi, m = _semitone_map(round(float(tuning), 1))
    s = tonal_mag[:, lo:hi] @ m
    n = len(s)
    if n == 0:
        return np.zeros((0, N_PITCH), dtype=np.float32)
    full = n // POOL * POOL
    pooled = [s[:full].reshape(-1, POOL, N_PITCH).mean(axis=1)] if full else []
    if full < n:
        pooled.append(s[full:].mean(axis=0, keepdims=True))
    x = np.concatenate(pooled).astype(np.float32)
    top = float(x.max())
    if top <= 0:
        return np.zeros_like(x)
    np.log1p(x * np.float32(GAIN / top), out=x)
    return x


def windows(x: np.ndarray) -> np.ndarray:
    """(n_frames, 12, WINDOW) view: the window of each candidate tonic."""
    return np.lib.stride_tricks.sliding_window_view(x, WINDOW, axis=1)[:, :12]


def key_logits(x: np.ndarray, net: KeyNet | None = None) -> np.ndarray:
    """24 key logits (majors by tonic, then minors) of input frames ``x`` (:func:`pitch_frames`).

    Zeros (no opinion) where ``x`` has no frame or no network could be loaded.
    """
    net = net or default_net()
    if len(x) == 0 or net is None:
        return np.zeros(24, dtype=np.float32)
    return _read_out(net, np.stack([h.mean(axis=0) for h in _hidden(net, x)]))


def _hidden(net: KeyNet, x: np.ndarray) -> list[np.ndarray]:
    """Each network's last hidden layer per input frame and tonic: (n, 12, H2) arrays."""
    w = windows(x)  # (n, 12, WINDOW)
    out = []
    for e in range(len(net.w1)):
        h = np.maximum(w @ net.w1[e] + net.b1[e], 0.0)
        out.append(np.maximum(h @ net.w2[e] + net.b2[e], 0.0))
    return out


def _read_out(net: KeyNet, mean: np.ndarray) -> np.ndarray:
    """24 logits from each network's frame-averaged hidden units ``mean`` (E, 12, H2),
    averaged over the networks."""
    out = (np.einsum("erh,eho->ero", mean, net.w3) + net.b3[:, None, :]).mean(0)  # (12, 2)
    return np.concatenate([out[:, 0], out[:, 1]]).astype(np.float32)


class KeyEvidence:
    """The network's hidden features for every input frame of an excerpt, summed cumulatively:
    the key logits of any span of its frames then cost one read-out, so the phrases of a track
    are judged from the track's own pass (:meth:`logits`). The spans share the excerpt's input
    scaling (its loudest value), where :func:`key_logits` scales each excerpt by its own.
    """

    def __init__(self, x: np.ndarray, net: KeyNet | None = None) -> None:
        self.net = net or default_net()
        self.n = len(x)
        self._cum: np.ndarray | None = None
        if self.net is None or self.n == 0:
            return
        # The read-out is linear in the frame-averaged hidden units: each frame's share of the
        # logits (averaged over the networks) is summed instead of its hidden units, 24 values
        # a frame where there were E x 12 x H2 (a cumulative sum 80 times smaller).
        net_ = self.net
        per_frame = sum(
            np.einsum("nrh,ho->nro", h, net_.w3[e], optimize=True)
            for e, h in enumerate(_hidden(net_, x))
        ) / len(net_.w3)  # (n, 12, 2)
        cum = np.cumsum(per_frame, axis=0, dtype=np.float64)
        self._cum = np.concatenate([np.zeros_like(cum[:1]), cum], axis=0)
        self._bias = net_.b3.mean(axis=0)  # (2,)

    def logits(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """24 key logits of input frames ``lo:hi`` (clipped to the excerpt); zeros (no
        opinion) for an empty span or without a network."""
        hi = self.n if hi is None else min(int(hi), self.n)
        lo = max(int(lo), 0)
        if self._cum is None or self.net is None or hi <= lo:
            return np.zeros(24, dtype=np.float32)
        out = (self._cum[hi] - self._cum[lo]) / (hi - lo) + self._bias  # (12, 2)
        return np.concatenate([out[:, 0], out[:, 1]]).astype(np.float32)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


#: Weight of the network's log-probabilities added to the profile-and-bass key scores of
#: :func:`cratedig.analysis.tonal.estimate_key` (whose top scores differ by 0.05-0.2).
NET_WEIGHT = 0.2
#: The same for the opening's own key (the first bar, :func:`~cratedig.analysis.tonal.opening_end`),
#: whose scores are in turn a prior of the track's.
OPENING_NET_WEIGHT = 0.1
#: The track's log-probabilities are floored here (p = 0.05) before weighting: the network,
#: trained on clean renders, can be sure to p < 0.001 of a key and would veto it whatever the
#: bass and the opening say; floored, it counts against a key without overruling the other
#: cues (an excerpt two thirds of whose bars are in the dominant keeps its opening key, as in
#: v12). The opening's are not: there the network's certainty is the opening's statement.
LOGP_FLOOR = -3.0


def key_prior(
    tonal_mag: np.ndarray,
    *,
    tuning: float = 0.0,
    weight: float | None = None,
    floor: float | None = LOGP_FLOOR,
    net: KeyNet | None = None,
) -> np.ndarray:
    """``weight`` (default :data:`NET_WEIGHT`) times the network's 24 key log-probabilities
    for tonal frames ``tonal_mag``, floored at ``floor`` (None: not floored): a prior for
    :func:`~cratedig.analysis.tonal.estimate_key`. Zeros without frames."""
    x = pitch_frames(tonal_mag, tuning=tuning)
    if len(x) == 0:
        return np.zeros(24)
    return prior_of(key_logits(x, net), weight=weight, floor=floor)


def prior_of(
    logits: np.ndarray, *, weight: float | None = None, floor: float | None = LOGP_FLOOR
) -> np.ndarray:
    """``weight`` (default :data:`NET_WEIGHT`) times the log-probabilities of ``logits``,
    floored at ``floor`` (None: not floored); zeros for all-zero logits (no opinion)."""
    if not np.any(logits):
        return np.zeros(24)
    logp = log_softmax(logits)
    if floor is not None:
        logp = np.maximum(logp, floor)
    return (NET_WEIGHT if weight is None else weight) * logp
