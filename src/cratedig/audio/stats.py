"""What the native-rate signal says about the file, gathered while it streams through decode.

Decoding resamples to 22 kHz and down-mixes, which throws away exactly what input-quality checks
need: the spectrum above 11 kHz (a lossless file that stops at 16 kHz was transcoded from a lossy
one), the two channels (identical channels are fake stereo), and the samples at full scale
(clipping). :class:`SourceStatsAccumulator` sees every native block once, keeps a few sums and a
sparse average power spectrum, and hands :class:`SourceStats` to
:mod:`cratedig.analysis.quality`, which judges them. Cost: a max/min per block and a
4096-point FFT every ~0.37 s of audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

#: FFT size of the bandwidth spectrum: 10.8 Hz bins at 44.1 kHz.
SPECTRUM_N = 4096
#: One spectrum window every this many frames (~0.37 s at 44.1 kHz: ~500 windows in a
#: 3-minute track, plenty for a mean spectrum, a quarter of the samples for DC and stereo).
SPECTRUM_HOP = 16384
#: A sample at or above this magnitude is at full scale (float decoders give exactly 1.0 for
#: 16-bit 32767 ~ 0.99997).
FULL_SCALE = 0.9995
#: A run of this many consecutive full-scale samples in one channel is a clipped peak; isolated
#: full-scale samples are normal for mastered audio.
CLIP_RUN = 3


@dataclass
class SourceStats:
    """Native-rate facts about a decoded file.

    Attributes
    ----------
    sr : int
        Native sample rate.
    channels : int
    frames : int
        Native frames decoded.
    file_bytes : int
        Size of the file (for the declared bitrate).
    spectrum : np.ndarray [shape=(SPECTRUM_N // 2 + 1,)]
        Mean power spectrum of the channel mean (Hann-windowed), bins at ``k * sr / SPECTRUM_N``.
    full_scale : int
        Samples (all channels) at full scale.
    clip_runs : int
        Runs of at least :data:`CLIP_RUN` consecutive full-scale samples in one channel.
    dc_sum, dc_frames : float, int
        Sum and count of the channel mean's samples in the spectrum windows (DC offset).
    side_energy, mid_energy : float
        Sums of (L - R)^2 and (L + R)^2 over the first two channels in the spectrum windows
        (0 for mono).
    """

    sr: int
    channels: int
    frames: int = 0
    file_bytes: int = 0
    spectrum: np.ndarray = field(default_factory=lambda: np.zeros(SPECTRUM_N // 2 + 1))
    spectrum_windows: int = 0
    full_scale: int = 0
    clip_runs: int = 0
    dc_sum: float = 0.0
    dc_frames: int = 0
    side_energy: float = 0.0
    mid_energy: float = 0.0

    @property
    def dc_offset(self) -> float:
        """Absolute mean of the channel mean (the spectrum windows: half the samples)."""
        return abs(self.dc_sum) / self.dc_frames if self.dc_frames else 0.0


class SourceStatsAccumulator:
    """Feed native blocks (frames, channels) in order; :attr:`stats` holds the running result."""

    def __init__(self, sr: int, channels: int, *, file_bytes: int = 0) -> None:
        self.stats = SourceStats(sr=sr, channels=channels, file_bytes=file_bytes)
        self._power = np.zeros(SPECTRUM_N // 2 + 1)
        self._window = np.hanning(SPECTRUM_N).astype(np.float32)
        self._next_window = 0  # frame index (whole file) of the next spectrum window

    def update(self, block: np.ndarray) -> None:
        """Account for one block of shape (frames, channels), float32."""
        st = self.stats
        n = block.shape[0]
        if n == 0:
            return
        start = st.frames
        st.frames += n
        # Two cheap reductions first: most blocks have no full-scale sample at all.
        if float(block.max()) >= FULL_SCALE or float(block.min()) <= -FULL_SCALE:
            hot = np.abs(block) >= FULL_SCALE
            st.full_scale += int(np.count_nonzero(hot))
            st.clip_runs += _long_runs(hot, CLIP_RUN)
        # Everything else reads only the spectrum windows (half the samples, at fixed positions
        # of the whole file): numpy's reductions over interleaved frames cost more than the
        # decode itself, a gathered copy and one matrix product do not.
        first = self._next_window
        offsets = np.arange(first - start, n - SPECTRUM_N + 1, SPECTRUM_HOP)
        offsets = offsets[offsets >= 0]
        if len(offsets):
            # (windows, SPECTRUM_N, channels), contiguous: a strided view copied once (fancy
            # indexing with a (windows, SPECTRUM_N) index array costs 50x more).
            s_frame, s_channel = block.strides
            frames = np.ascontiguousarray(
                np.lib.stride_tricks.as_strided(
                    block[int(offsets[0]) :],
                    shape=(len(offsets), SPECTRUM_N, block.shape[1]),
                    strides=(s_frame * SPECTRUM_HOP, s_frame, s_channel),
                    writeable=False,
                )
            )
            flat = frames.reshape(-1, block.shape[1])
            gram = (flat.T @ flat).astype(np.float64)  # channel energies and cross terms
            if block.shape[1] >= 2:
                ll, rr, lr = gram[0, 0], gram[1, 1], gram[0, 1]
                st.side_energy += max(float(ll + rr - 2 * lr), 0.0)
                st.mid_energy += float(ll + rr + 2 * lr)
            mono = frames[:, :, 0].copy()
            for c in range(1, block.shape[1]):
                mono += frames[:, :, c]
            if block.shape[1] > 1:
                mono *= np.float32(1.0 / block.shape[1])
            st.dc_sum += float(mono.sum(dtype=np.float64))
            st.dc_frames += mono.size
            # numpy's rfft of float32 computes in float64 and rounds to complex64; scipy's
            # float64 transform rounded the same way gives those very values, twice as fast.
            spec = scipy.fft.rfft((mono * self._window).astype(np.float64), axis=1, workers=1)
            re, im = spec.real.astype(np.float32), spec.imag.astype(np.float32)
            self._power += (re * re + im * im).sum(axis=0)
            st.spectrum_windows += len(offsets)
            self._next_window = start + int(offsets[-1]) + SPECTRUM_HOP
        elif first < start:
            # A window straddled the previous block boundary: skip to the next whole one.
            self._next_window = start + ((first - start) % SPECTRUM_HOP)
        if st.spectrum_windows:
            st.spectrum = self._power / st.spectrum_windows


def _long_runs(hot: np.ndarray, length: int) -> int:
    """Runs of at least ``length`` True values down each column of ``hot`` (frames, channels)."""
    runs = 0
    for c in range(hot.shape[1]):
        col = hot[:, c]
        if not col.any():
            continue
        edges = np.diff(np.concatenate(([0], col.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        runs += int(np.count_nonzero(ends - starts >= length))
    return runs
