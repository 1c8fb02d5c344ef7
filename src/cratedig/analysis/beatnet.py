"""A small learned beat and downbeat activation over the front end's log-mel frames.

Why: onset strength, however it is split into bands, cannot tell the beat from the off-beat
where the off-beat is the louder (off-beat hats and stabs, a kick on 1 and the "and" of 2,
an off-beat bass): on produced music with exact truth (``bench/rendered.py``) whole pieces had
every beat half a beat late, while a trained network (madmom's) was on the beat. What tells a
listener where the beat is, is *which* sounds fall where (a kick here, a snare there, the hats
between), over a bar or two: a learned temporal convolutional network sees exactly that
(Davies & Böck 2019, "Temporal convolutional networks for musical audio beat tracking";
Böck & Davies 2020, multi-task tempo, beat and downbeat).

Model
-----
- **Input**: the front end's log-mel spectrum (``Frontend.mel_db``, 40 bands at 43 frames a
  second), scaled to the excerpt's loudest frame (:data:`DB_RANGE` dB of range) and its
  half-wave rectified frame-to-frame difference: 80 channels, max-pooled over :data:`POOL`
  frames (21.5 network frames a second).
- **Network**: a 1-D convolution (kernel 3) into C channels, then residual blocks of dilated
  convolutions (kernel 5, dilations 1 .. 32: about +-6 s of context, three bars at 120 BPM),
  ELU, and a 1x1 read-out of two logits per frame: beat and downbeat.
- **Ensemble**: the probabilities of several such networks (trained from different seeds and
  data folds) are averaged: one network's sure phase is another's coin toss.
- **Use** (:mod:`cratedig.analysis.rhythm`): the tempo and the grid come from the onsets as
  before; the beat activation decides the grid's *phase* where the two disagree clearly.

Weights are trained by ``bench/fit_beat_net.py`` (PyTorch, only there) on the development
halves of the real-music benches (``bench/beatset.py``), and shipped as ``beatnet.npz``, read
with ``allow_pickle=False``: loading cannot run code. Inference is numpy.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

#: dB below the excerpt's loudest mel value that the input spans (quieter is clipped).
DB_RANGE = 80.0
#: Input channels: the scaled log-mel and its rectified difference.
N_MEL = 40
N_IN = 2 * N_MEL
#: Rhythm frames pooled into one network frame, and the blocks' dilations, of the networks
#: ``bench/fit_beat_net.py`` trains (a weights file names its own pool; its dilations are
#: 1, 2, 4, ... for as many blocks as it holds).
POOL = 2
KERNEL = 5
DILATIONS = (1, 2, 4, 8, 16, 32)
MODEL_FILE = "beatnet.npz"
log = logging.getLogger("cratedig.analysis")


def inputs(mel_db: np.ndarray, pool: int = 1) -> np.ndarray:
    """The network's input (N_IN, ceil(n / pool)) from a log-mel spectrum (N_MEL, n) in dB:
    the scaled spectrum and its rectified difference, each max-pooled over ``pool`` frames."""
    x = np.asarray(mel_db, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != N_MEL:
        raise ValueError(f"mel_db must have shape ({N_MEL}, n), got {x.shape}")
    x = np.clip((x - float(x.max(initial=-200.0))) / DB_RANGE + 1.0, 0.0, 1.0)
    d = np.maximum(0.0, np.diff(x, axis=1, prepend=x[:, :1])) * 4.0
    both = np.concatenate([x, d], axis=0)
    n = both.shape[1]
    m = -(-n // pool) * pool
    if m > n:
        both = np.concatenate([both, np.repeat(both[:, -1:], m - n, axis=1)], axis=1)
    pooled = both[:, 0::pool]
    for j in range(1, pool):
        pooled = np.maximum(pooled, both[:, j::pool])
    return np.ascontiguousarray(pooled, dtype=np.float32)


def _elu(x: np.ndarray) -> np.ndarray:
    neg = np.minimum(x, 0.0)
    np.expm1(neg, out=neg)
    return np.maximum(x, 0.0, out=x) + neg


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """'Same' dilated 1-D convolution: x (c_in, n), w (c_out, c_in, k) -> (c_out, n)."""
    c_out, c_in, k = w.shape
    n = x.shape[1]
    if k == 1:
        return w[:, :, 0] @ x + b[:, None]
    pad = dilation * (k - 1) // 2
    xp = np.zeros((c_in, n + 2 * pad), dtype=x.dtype)
    xp[:, pad : pad + n] = x
    out = w[:, :, 0] @ xp[:, :n]
    for j in range(1, k):
        s = j * dilation
        out += w[:, :, j] @ xp[:, s : s + n]
    out += b[:, None]
    return out


def _names(blocks: int) -> list[str]:
    need = ["w_in", "b_in", "w_out", "b_out"]
    for i in range(blocks):
        need += [f"w{i}", f"b{i}", f"w{i}b", f"b{i}b"]
    return need


@dataclass(frozen=True)
class BeatNet:
    """Weights of an ensemble of E networks trained from different seeds and data folds:
    ``w_in`` (E, C, N_IN, 3), per block ``w{i}`` (E, C, C, KERNEL) and ``w{i}b`` (E, C, C, 1),
    read-out ``w_out`` (E, 2, C, 1); biases (E, ...) beside each. A file may hold one network
    without the ensemble axis."""

    arrays: dict[str, np.ndarray]
    version: str
    #: Rhythm frames per network frame, and the blocks' dilations (1, 2, 4, ...).
    pool: int = 1
    dilations: tuple[int, ...] = DILATIONS

    @classmethod
    def from_npz(cls, path) -> BeatNet:
        with np.load(path, allow_pickle=False) as z:
            meta = ("version", "pool")
            arrays = {k: np.asarray(z[k], dtype=np.float32) for k in z.files if k not in meta}
            version = str(z["version"]) if "version" in z.files else "unknown"
            pool = int(z["pool"]) if "pool" in z.files else 1
        blocks = 0
        while f"w{blocks}" in arrays:
            blocks += 1
        if not 1 <= pool <= 8 or blocks > 12:
            raise ValueError(f"{path}: weights of another input layout")
        missing = [k for k in _names(max(blocks, 1)) if k not in arrays]
        if missing:
            raise ValueError(f"{path}: missing weights {missing}")
        if arrays["w_in"].ndim == 3:  # one network, stored without the ensemble axis
            arrays = {k: v[None] for k, v in arrays.items()}
        e, c = arrays["w_in"].shape[:2]
        shapes = {"w_in": (e, c, N_IN, 3), "b_in": (e, c), "w_out": (e, 2, c, 1), "b_out": (e, 2)}
        for i in range(blocks):
            shapes |= {f"w{i}": (e, c, c, KERNEL), f"b{i}": (e, c)}
            shapes |= {f"w{i}b": (e, c, c, 1), f"b{i}b": (e, c)}
        if any(arrays[k].shape != shape for k, shape in shapes.items()):
            raise ValueError(f"{path}: weights of another input layout")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise ValueError(f"{path}: weights that are not finite")
        dilations = tuple(2**i for i in range(blocks))
        return cls(arrays=arrays, version=version, pool=pool, dilations=dilations)

    @property
    def members(self) -> int:
        return int(self.arrays["w_in"].shape[0])

    def logits(self, mel_db: np.ndarray, member: int = 0) -> np.ndarray:
        """Beat and downbeat logits per network frame of one member: (2, ceil(n / pool))."""
        return self._forward(inputs(mel_db, self.pool), member)

    def _forward(self, x: np.ndarray, member: int) -> np.ndarray:
        a = {k: v[member] for k, v in self.arrays.items()}
        h = _elu(_conv(x, a["w_in"], a["b_in"], 1))
        for i, d in enumerate(self.dilations):
            r = _elu(_conv(h, a[f"w{i}"], a[f"b{i}"], d))
            h = h + _conv(r, a[f"w{i}b"], a[f"b{i}b"], 1)
        return _conv(h, a["w_out"], a["b_out"], 1)

    def activations(self, mel_db: np.ndarray) -> np.ndarray:
        """Beat and downbeat probabilities per rhythm frame (each network frame repeated over
        the ``pool`` frames it covers), averaged over the ensemble: (2, n)."""
        n = np.shape(mel_db)[1]
        x = inputs(mel_db, self.pool)
        out = np.zeros((2, x.shape[1]), dtype=np.float64)
        for m in range(self.members):
            out += 1.0 / (1.0 + np.exp(-self._forward(x, m)))
        return np.repeat(out / self.members, self.pool, axis=1)[:, :n]


@lru_cache(maxsize=1)
def default_net() -> BeatNet | None:
    """The shipped network (loaded once), or None with one warning when its file is missing or
    damaged: the beat's phase then comes from the onsets alone, and nothing fails."""
    try:
        with resources.as_file(resources.files("cratedig.analysis") / MODEL_FILE) as p:
            return BeatNet.from_npz(p)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.warning("beat network unavailable (%s): beat phase from the onsets alone", e)
        return None
