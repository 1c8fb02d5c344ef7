"""An audio fingerprint that tells the same recording in two files (another encoding, level,
sample rate, a trimmed start), so that a song is never suggested as its own partner.

Why: a DJ's library holds one song several times: the FLAC and the MP3 of it, a WAV bounce,
an AAC from a store, the same track on two compilations. Their audio differs byte for byte, so
each is a track of its own, and ``match`` put the copy first under every phrase of the song
("chords agree bar by bar (1.00)"): a song layered on itself. (Found on the real-music set,
whose corpus holds Schumann's *Dichterliebe* no. 2 under two names.)

Method (Haitsma & Kalker 2002, "A highly robust audio fingerprinting system", on the front
end's own log-mel spectrum, so it costs about nothing):

- the mel power between 100 and 3500 Hz (what survives MP3, AAC and an 8 kHz copy alike) in
  :data:`N_BANDS` contiguous bands, smoothed by a Hann window of :data:`WINDOW` rhythm frames
  and sampled every :data:`HOP` (21.5 frames a second);
- one bit per band pair and frame: does the energy difference between the two neighbouring
  bands grow from the previous frame? Gain, EQ and coding noise rarely flip it; other music
  flips half the bits;
- a frame whose loudest band is more than :data:`SOUNDING_DB` below the track's loudest (or
  near digital silence) is silent and compares with nothing.

Each frame is one ``uint16``: 15 bits and a "sounding" flag (bit 15). :func:`compare` finds the
time offset (either way, every one at once by FFT) where two fingerprints agree most and gives
the bit error rate (BER) there; :func:`same_recording` says "the same recording" where they
agree over most of the shorter one (:data:`SAME_MIN_SHARE`) with a BER of at most
:data:`SAME_MAX_BER`, at one offset or piece by piece (:func:`edit_overlap`: a radio edit that
cuts the middle out, an extended mix that plays a part twice, a DJ's re-edit that moves parts).

Measured in ``bench/fingerprint.py``, on the real-music set and the moduleset: MP3s at
128 kb/s, 8 kHz copies, quieter high-passed copies and copies with the first 7.3 s cut read
at most 0.15; AAC at 96 kb/s mostly under 0.1 (a few up to 0.2, which go unnoticed); two
different pieces at least 0.35; two stems of one song that share its drums 0.23 and more.
Edits (a quarter cut out of the middle, a fifth played twice, the halves swapped, a 16 s loop
cut from the song), as MP3s, are found 93-100 % piece by piece; two stems that share their
drums at most 43 %, Rubber Band partners at most 11 %, two different pieces at most 47 % (a
jingle that quotes its game's theme), nearly all 0 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cratedig.analysis.frontend import FRONTEND_SR, N_MEL, RHYTHM_HOP, RHYTHM_NFFT, _mel_basis
from cratedig.errors import ParameterError

#: Band edges (Hz) of the spectrum the bits read.
FMIN, FMAX = 100.0, 3500.0
#: Bands: N_BANDS - 1 = 15 bits a frame.
N_BANDS = 16
#: Hann window and hop, in rhythm frames (43.07 a second): 0.37 s windows every 46 ms (a hop
#: of 93 ms left a copy cut between two frames at BER 0.19-0.21; at 46 ms, at most 0.15).
WINDOW, HOP = 16, 2
#: Frames quieter than this (dB under the track's loudest band value) carry no bits, nor do
#: frames under SILENT_FLOOR_DB (the front end's power scale: digital silence reads -100 dB).
SOUNDING_DB = 50.0
SILENT_FLOOR_DB = -80.0
#: Frames per second of a fingerprint.
FPS = FRONTEND_SR / RHYTHM_HOP / HOP
#: "The same recording": at most this bit error rate where the two agree best, over at least
#: SAME_MIN_SHARE of the shorter one's sounding audio. Two stems of one song that share their
#: drums (lead + drums, and the rest + drums) agree at BER 0.23 and more: they are partners,
#: not copies, and the threshold stays below them (an AAC at 96 kb/s may then go unnoticed).
SAME_MAX_BER = 0.17
SAME_MIN_SHARE = 0.8
#: Less sounding audio than this (seconds) is too little to call two files one recording.
SAME_MIN_SECONDS = 5.0
_BITS = N_BANDS - 1
#: The "sounding" flag of a frame (the 16th bit; the other 15 are the bits compared).
SOUNDING = np.uint16(1 << 15)
_SOUNDING = SOUNDING


#: Edits (:func:`edit_overlap`): offsets tried (the strongest peaks of the correlation, at
#: least :data:`PIECE_SEPARATION` seconds apart), and the window (seconds) over which a
#: stretch of the shorter file must agree with the other at one of them, at a BER of at most
#: SAME_MAX_BER, to count as found there. Edits are cut on bar lines a few seconds apart at
#: the least; a 3 s window loses about 1.5 s at each cut.
PIECE_OFFSETS = 12
PIECE_SEPARATION = 1.0
PIECE_WINDOW = 3.0
#: Rounds of offsets: a round after the first looks again at the part of the shorter file not
#: found yet (where the first found between PIECE_ROUND_MIN and SAME_MIN_SHARE of it).
PIECE_ROUNDS = 3
PIECE_ROUND_MIN = 0.2


@dataclass(frozen=True)
class Overlap:
    """Where two fingerprints agree best: the bit error rate there (0 = identical, 0.5 =
    unrelated), ``offset`` seconds by which the second's audio is late against the first's,
    and ``seconds`` of sounding audio the two share at that offset. For an edit (found piece
    by piece, :func:`edit_overlap`), ``pieces`` > 1: the BER is over the pieces found, the
    offset that of the longest, and ``seconds`` what they cover together."""

    ber: float
    offset: float
    seconds: float
    pieces: int = 1

    @property
    def edit(self) -> bool:
        """Whether the two agree only piece by piece (one is an edit of the other)."""
        return self.pieces > 1


@lru_cache(maxsize=1)
def _band_groups() -> tuple[np.ndarray, ...]:
    basis = _mel_basis(FRONTEND_SR, RHYTHM_NFFT, N_MEL)
    freqs = np.fft.rfftfreq(RHYTHM_NFFT, 1.0 / FRONTEND_SR)
    centre = (basis * freqs).sum(axis=1) / np.maximum(basis.sum(axis=1), 1e-12)
    keep = np.flatnonzero((centre >= FMIN) & (centre <= FMAX))
    return tuple(np.array_split(keep, N_BANDS))


def fingerprint(mel_db: np.ndarray) -> np.ndarray:
    """The fingerprint of a log-mel spectrum ``mel_db`` (N_MEL, n) in dB (the front end's
    ``Frontend.mel_db``): one ``uint16`` per hop (empty for audio under two windows).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fp = fingerprint(rng.normal(-40, 10, size=(N_MEL, 430)))
    >>> fp.dtype, len(fp)
    (dtype('uint16'), 207)
    """
    mel = np.asarray(mel_db, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] != N_MEL:
        raise ParameterError(f"mel_db must have shape ({N_MEL}, n), got {mel.shape}")
    n = (mel.shape[1] - WINDOW) // HOP + 1
    if n < 2:
        return np.zeros(0, dtype=np.uint16)
    groups = _band_groups()
    lo, hi = int(groups[0][0]), int(groups[-1][-1]) + 1  # the kept mel rows are contiguous
    power = 10.0 ** (mel[lo:hi] / 10.0)
    bands = np.stack([power[g - lo].sum(axis=0) for g in groups])  # (N_BANDS, frames)
    windows = np.lib.stride_tricks.sliding_window_view(bands, WINDOW, axis=1)[:, ::HOP][:, :n]
    w = np.hanning(WINDOW + 2)[1:-1]
    e = 10.0 * np.log10(np.maximum(windows @ w, 1e-12))  # (N_BANDS, n)
    sounding = e.max(axis=0) > max(float(e.max()) - SOUNDING_DB, SILENT_FLOOR_DB)
    bits = np.diff(np.diff(e, axis=0), axis=1) > 0  # (15, n - 1)
    out = (bits.astype(np.uint16) << np.arange(_BITS, dtype=np.uint16)[:, None]).sum(
        axis=0, dtype=np.uint16
    )
    out[sounding[1:] & sounding[:-1]] |= _SOUNDING
    return out


def _signs(fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(+-1 per bit and frame, 0 where silent: (15, n); sounding mask (n,) as float)."""
    fp = np.asarray(fp, dtype=np.uint16)
    on = (fp & _SOUNDING) > 0
    bits = (fp[None, :] >> np.arange(_BITS, dtype=np.uint16)[:, None]) & 1
    return np.where(on, 2.0 * bits - 1.0, 0.0), on.astype(np.float64)


def compare(a: np.ndarray, b: np.ndarray, *, min_seconds: float = 5.0) -> Overlap:
    """Where fingerprints ``a`` and ``b`` agree best, over offsets sharing at least
    ``min_seconds`` of sounding audio (BER 0.5 and 0 seconds where none does).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = fingerprint(rng.normal(-40, 10, size=(N_MEL, 4000)))
    >>> compare(x, x[50:]).ber, round(compare(x, x[50:]).offset, 2)
    (0.0, -2.32)
    >>> y = fingerprint(rng.normal(-40, 10, size=(N_MEL, 4000)))
    >>> 0.4 < compare(x, y).ber <= 0.5
    True
    """
    if len(a) == 0 or len(b) == 0:
        return Overlap(0.5, 0.0, 0.0)
    return _best(_correlate(a, b), min_seconds)


@dataclass(frozen=True)
class _Correlation:
    """Bit agreement (agreeing minus disagreeing bits) and shared sounding frames of two
    fingerprints at every offset: index ``d`` is lag ``d`` (``d - size`` past half), where
    ``a[t]`` meets ``b[t - lag]``."""

    corr: np.ndarray
    count: np.ndarray
    size: int

    def lag(self, d: int) -> int:
        return d if d < self.size // 2 else d - self.size


def _correlate(a: np.ndarray, b: np.ndarray) -> _Correlation:
    sa, ma = _signs(a)
    sb, mb = _signs(b)
    na, nb = sa.shape[1], sb.shape[1]
    size = 1 << int(np.ceil(np.log2(na + nb)))
    corr = np.fft.irfft(
        (np.fft.rfft(sa, size, axis=1) * np.conj(np.fft.rfft(sb, size, axis=1))).sum(axis=0), size
    )
    count = np.rint(np.fft.irfft(np.fft.rfft(ma, size) * np.conj(np.fft.rfft(mb, size)), size))
    return _Correlation(corr, count, size)


def _best(c: _Correlation, min_seconds: float) -> Overlap:
    corr, count = c.corr, c.count
    ok = count >= max(1.0, min_seconds * FPS)
    if not ok.any():
        return Overlap(0.5, 0.0, 0.0)
    agree = np.where(ok, corr / (_BITS * np.maximum(count, 1.0)), -np.inf)
    d = int(np.argmax(agree))
    lag = c.lag(d)  # a[t] meets b[t - lag]
    ber = float(np.clip((1.0 - agree[d]) / 2.0, 0.0, 0.5))
    return Overlap(round(ber, 4), round(-lag / FPS, 3), round(float(count[d]) / FPS, 2))


def _errors_at(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit errors (0-15) of each frame of ``a`` against ``b[t - lag]``, and where both sound."""
    t = np.arange(len(a))
    j = t - lag
    inside = (j >= 0) & (j < len(b))
    y = b[np.clip(j, 0, len(b) - 1)]
    both = inside & ((a & y & _SOUNDING) > 0)
    return np.where(both, _POPCOUNT[(a ^ y) & (_SOUNDING - 1)], 0).astype(np.float64), both


def edit_overlap(
    a: np.ndarray, b: np.ndarray, *, _corr: _Correlation | None = None
) -> tuple[Overlap, float]:
    """Piece by piece, how much of the shorter fingerprint (by sounding time) the other holds:
    (the overlap, the share of the shorter's sounding audio found).

    An edit of a recording holds its parts at several offsets: a radio edit cuts the middle
    out of the extended mix, an extended mix plays a part twice, a re-edit moves parts, a loop
    is one bar range of the song. The offsets tried are the :data:`PIECE_OFFSETS` strongest
    peaks of the correlation over every offset (a piece of P frames adds 15 P agreeing bits at
    its own); at each, every :data:`PIECE_WINDOW` s window of the shorter that agrees at a BER
    of at most :data:`SAME_MAX_BER` is found there; up to :data:`PIECE_ROUNDS` - 1 more
    rounds look again at the part not found yet (music built of loops agrees at every loop
    length from a piece's offset, and those peaks can fill the offsets tried). Two stems of
    one song that share their drums agree only where the drums play alone
    (``bench/fingerprint.py``: at most 43 % of the shorter), other music nowhere.

    >>> rng = np.random.default_rng(3)
    >>> x = rng.integers(0, 1 << 16, 6000).astype(np.uint16) | _SOUNDING
    >>> radio_edit = np.r_[x[:2000], x[3500:]]
    >>> o, share = edit_overlap(x, radio_edit)
    >>> o.pieces, share > 0.95, compare(x, radio_edit).ber > SAME_MAX_BER
    (2, True, True)
    """
    a, b = np.asarray(a, dtype=np.uint16), np.asarray(b, dtype=np.uint16)
    swap = sounding_seconds(a) > sounding_seconds(b)
    short, long_ = (b, a) if swap else (a, b)
    w = max(2, int(round(PIECE_WINDOW * FPS)))
    on = (short & _SOUNDING) > 0
    if len(short) < w or len(long_) < w or not on.any():
        return Overlap(0.5, 0.0, 0.0, 0), 0.0
    if _corr is None:
        c = _correlate(short, long_)
    elif swap:  # b against a: every lag negated
        back = (-np.arange(_corr.size)) % _corr.size
        c = _Correlation(_corr.corr[back], _corr.count[back], _corr.size)
    else:
        c = _corr
    sep = max(1, int(round(PIECE_SEPARATION * FPS)))
    kernel = np.ones(w)
    found = np.zeros(len(short), dtype=bool)
    best_ber = np.full(len(short), 0.5)
    piece_frames: list[tuple[int, int]] = []  # (frames found first at this lag, lag)
    tried: set[int] = set()
    for round_ in range(PIECE_ROUNDS):
        if round_:
            # Music built of loops agrees at every loop length from a piece's offset: those
            # peaks can fill the offsets tried. Again on the part not found yet.
            share = float(found.sum()) / float(on.sum())
            if share >= SAME_MIN_SHARE or share < PIECE_ROUND_MIN:
                break
            c = _correlate(np.where(found, short & ~_SOUNDING, short).astype(np.uint16), long_)
        score = np.where(c.count >= w, c.corr, -np.inf)
        for _ in range(PIECE_OFFSETS):
            d = int(np.argmax(score))
            if not np.isfinite(score[d]) or score[d] <= 0:
                break
            score[np.arange(d - sep, d + sep + 1) % c.size] = -np.inf
            lag = c.lag(d)
            if lag in tried:
                continue
            tried.add(lag)
            err, both = _errors_at(short, long_, lag)
            n = np.convolve(both.astype(np.float64), kernel, "same")
            ber = np.where(
                n >= w / 2, np.convolve(err, kernel, "same") / (_BITS * np.maximum(n, 1.0)), 0.5
            )
            good = on & (ber <= SAME_MAX_BER)
            if not piece_frames and not good.any():
                return Overlap(0.5, 0.0, 0.0, 0), 0.0  # nothing alike at the best offset
            new = good & ~found
            if new.any():
                piece_frames.append((int(new.sum()), lag))
            found |= good
            best_ber = np.minimum(best_ber, np.where(good, ber, 0.5))
    share = float(found.sum()) / float(on.sum())
    if not piece_frames:
        return Overlap(0.5, 0.0, 0.0, 0), 0.0
    main_lag = max(piece_frames)[1]
    offset = -main_lag / FPS if not swap else main_lag / FPS
    pieces = sum(1 for k, _ in piece_frames if k >= w)
    return (
        Overlap(
            round(float(best_ber[found].mean()), 4),
            round(offset, 3),
            round(float(found.sum()) / FPS, 2),
            max(1, pieces),
        ),
        share,
    )


#: Frames :func:`near_ber` must read at an offset to judge it.
NEAR_MIN_FRAMES = 20
_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << _BITS)], dtype=np.uint8)


def near_ber(a: np.ndarray, b: np.ndarray, *, max_offset: float, every: int = 8) -> float:
    """The least bit error rate of ``a`` against ``b`` over offsets within ``max_offset``
    seconds, read on every ``every``-th frame of ``a``: a quick look that tells unrelated
    tracks (about 0.5) from copies laid about the same way (under :data:`SAME_MAX_BER`)
    in a tenth of :func:`compare`'s time. 0.5 where they share no sounding frame.

    >>> rng = np.random.default_rng(2)
    >>> x = rng.integers(0, 1 << 16, 3000).astype(np.uint16)
    >>> near_ber(x, x[10:], max_offset=2.0), round(near_ber(x, x[::-1], max_offset=2.0), 1)
    (0.0, 0.5)
    """
    a, b = np.asarray(a, dtype=np.uint16), np.asarray(b, dtype=np.uint16)
    lags = np.arange(-int(max_offset * FPS), int(max_offset * FPS) + 1)
    t = np.arange(0, len(a), every)
    j = t[None, :] + lags[:, None]  # (lags, frames): a[t] against b[t + lag]
    inside = (j >= 0) & (j < len(b))
    x, y = a[t][None, :], b[np.clip(j, 0, max(len(b) - 1, 0))] if len(b) else np.zeros_like(j)
    both = inside & ((x & y & _SOUNDING) > 0)
    errors = np.where(both, _POPCOUNT[(x ^ y) & (_SOUNDING - 1)], 0).sum(axis=1)
    n = both.sum(axis=1)
    ber = np.where(n >= NEAR_MIN_FRAMES, errors / (_BITS * np.maximum(n, 1)), 0.5)
    return float(ber.min()) if len(ber) else 0.5


def sounding_seconds(fp: np.ndarray) -> float:
    """Seconds of a fingerprint's sounding frames."""
    return float(np.count_nonzero(np.asarray(fp, dtype=np.uint16) & _SOUNDING)) / FPS


def same_recording(a: np.ndarray, b: np.ndarray) -> Overlap | None:
    """The overlap where ``a`` and ``b`` are the same recording, else None.

    "The same" is a BER of at most :data:`SAME_MAX_BER` over at least :data:`SAME_MIN_SHARE`
    of the shorter one's sounding audio, at one offset (a copy; an edit that keeps the rest in
    place, an intro cut: the longer one's part) or piece by piece (:func:`edit_overlap`: a
    radio edit, an extended mix, a re-edit, a loop cut from the song; ``pieces`` > 1). Two
    remixes that share a vocal, or two stems of one song that share its drums, are not the
    same (the rest differs).
    """
    need = SAME_MIN_SHARE * min(sounding_seconds(a), sounding_seconds(b))
    if need < SAME_MIN_SECONDS:
        return None
    a, b = np.asarray(a, dtype=np.uint16), np.asarray(b, dtype=np.uint16)
    c = _correlate(a, b)
    o = _best(c, need)
    if o.seconds > 0 and o.ber <= SAME_MAX_BER:
        return o
    e, share = edit_overlap(a, b, _corr=c)
    return e if share >= SAME_MIN_SHARE and e.seconds >= SAME_MIN_SECONDS else None


def to_bytes(fp: np.ndarray) -> bytes:
    """Little-endian ``uint16`` bytes (the database column)."""
    return np.asarray(fp, dtype="<u2").tobytes()


def from_bytes(data: bytes | None) -> np.ndarray:
    """The fingerprint stored by :func:`to_bytes` (empty for None: an analysis stored before
    fingerprints existed)."""
    if not data:
        return np.zeros(0, dtype=np.uint16)
    return np.frombuffer(data, dtype="<u2").astype(np.uint16)
