"""Decode any supported audio file to float32 at a chosen rate, in one streaming pass.

libsndfile (through soundfile) reads WAV, AIFF, FLAC, OGG/Vorbis, Opus and MP3 fast; anything it
cannot read (M4A/AAC, WMA, ...) goes through an ``ffmpeg`` subprocess. Decoding, down-mixing,
resampling (soxr) and the content hash all happen block by block, so a long file never sits in
memory at its native rate and the file is read exactly once.

Every failure becomes an :class:`~cratedig.errors.AudioError` whose message is one line a user can
act on; nothing here lets an ``IndexError`` or a libsndfile traceback escape.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr
import xxhash

from cratedig.audio.stats import SourceStats, SourceStatsAccumulator
from cratedig.errors import DecodeError, ParameterError, UnsupportedAudio

log = logging.getLogger("cratedig.audio")

#: Analysis sample rate: keeps everything up to 11 kHz, halves the work of 44.1 kHz.
ANALYSIS_SR = 22050
#: Shorter files are refused outright: a one-shot (a kick, a clap), not music to layer. A
#: one-bar loop at 174 BPM is 1.4 s.
MIN_DURATION = 1.0
#: Shorter files are analysed only as loops (whole bars sounding end to end,
#: :func:`cratedig.analysis.rhythm.fit_loop`): a song needs more bars than that (two bars at
#: 60 BPM 4/4 are 8 s). Checked by :func:`cratedig.analysis.pipeline.analyze_decoded`.
MIN_SONG_DURATION = 5.0
#: Longer files are refused by default: a 2-hour DJ mix is not a track to cut into phrases.
MAX_DURATION = 30 * 60.0
#: Peak below which a file is called silent (-80 dBFS).
SILENCE_PEAK = 1e-4

#: File suffixes cratedig looks at when scanning a folder.
AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".aif",
        ".aiff",
        ".aifc",
        ".m4a",
        ".mp4",
        ".aac",
        ".alac",
        ".wma",
        ".webm",
    }
)

_BLOCK_FRAMES = 1 << 18  # ~6 s at 44.1 kHz: large enough to amortise, small enough for memory


@dataclass
class DecodedAudio:
    """Decoded samples and what was learnt about the file while decoding.

    Attributes
    ----------
    samples : np.ndarray [shape=(n,) or (channels, n), dtype=float32]
        Audio at ``sr``; mono unless ``mono=False`` was asked.
    sr : int
        Sample rate of ``samples``.
    source_sr : int
        Sample rate of the file.
    channels : int
        Channels in the file.
    duration : float
        Seconds of decoded audio.
    format : str
        Container/codec as detected ("WAV", "MP3", "FLAC", "OGG", "AIFF", "M4A"...).
    content_hash : str
        32 hex digits: xxh3-128 of the decoded native-rate samples, so renaming, moving or
        re-tagging a file keeps its identity while re-encoding changes it.
    peak : float
        Absolute peak of ``samples``.
    source_stats : SourceStats or None
        Native-rate spectrum, clipping, DC and stereo sums (for
        :mod:`cratedig.analysis.quality`).
    """

    samples: np.ndarray
    sr: int
    source_sr: int
    channels: int
    duration: float
    format: str
    content_hash: str
    peak: float
    source_stats: SourceStats | None = None


def decode(
    path: str | os.PathLike[str],
    *,
    sr: int = ANALYSIS_SR,
    mono: bool = True,
    min_duration: float = MIN_DURATION,
    max_duration: float = MAX_DURATION,
    allow_silent: bool = False,
    stream: int = 0,
) -> DecodedAudio:
    """Decode ``path`` to float32 at ``sr`` Hz.

    Parameters
    ----------
    path : path-like
        An audio file.
    sr : int > 0
        Output sample rate.
    mono : bool
        Average the channels (True) or keep them, shape (channels, n).
    min_duration, max_duration : float
        Seconds; files outside this range raise :class:`UnsupportedAudio`.
    allow_silent : bool
        Accept a file whose peak is below -80 dBFS.
    stream : int
        Audio stream of the file (0: the first; others, e.g. the stems of an NI
        ``.stem.mp4``, are read through ffmpeg).

    Returns
    -------
    DecodedAudio

    Raises
    ------
    DecodeError
        Missing, unreadable, empty, truncated, corrupt or non-audio file.
    UnsupportedAudio
        Too short, too long or silent.

    Examples
    --------
    >>> audio = decode("song.flac")  # doctest: +SKIP
    >>> audio.samples.shape, audio.sr  # doctest: +SKIP
    ((1323000,), 22050)
    """
    if sr <= 0:
        raise ParameterError(f"sr={sr} must be a positive integer")
    check_max_duration(max_duration)
    p = Path(path)
    name = os.fsdecode(path)
    _check_file(p, name)

    if stream < 0:
        raise ParameterError(f"stream={stream} must be >= 0")
    # An Opus stream libsndfile has not been seen to read whole is tried with it as it comes
    # (no second pass to check first): if it stops part-way, the decode starts again through
    # ffmpeg, and the verdict is kept for this version of the file.
    source = _open_source(p, name, stream, check_opus=False)
    try:
        samples, native_frames, digest, stats = _decode_source(
            source, p, name, sr, mono, max_duration
        )
    except DecodeError:
        key = getattr(source, "opus_key", None)
        if key is None:
            raise
        log.debug("libsndfile stopped in the Opus stream of %s; reading it with ffmpeg", name)
        _OPUS_READABLE[key] = False
        source = _FfmpegSource(p, name)
        samples, native_frames, digest, stats = _decode_source(
            source, p, name, sr, mono, max_duration
        )
    else:
        key = getattr(source, "opus_key", None)
        if key is not None:
            _OPUS_READABLE[key] = True

    duration = native_frames / source.sr
    finite, peak = _finite_peak(samples)
    if not finite:
        raise DecodeError("decodes to NaN or infinite samples (damaged file)", name)
    if duration < min_duration:
        raise UnsupportedAudio(
            f"only {duration:.1f} s long; cratedig needs at least {min_duration:g} s", name
        )
    if peak < SILENCE_PEAK and not allow_silent:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise UnsupportedAudio(f"silent (peak {level} dBFS)", name)
    return DecodedAudio(
        samples=samples,
        sr=sr,
        source_sr=source.sr,
        channels=source.channels,
        duration=duration,
        format=source.format,
        content_hash=digest,
        peak=peak,
        source_stats=stats.stats,
    )


def _decode_source(
    source: _SndfileSource | _FfmpegSource,
    p: Path,
    name: str,
    sr: int,
    mono: bool,
    max_duration: float,
) -> tuple[np.ndarray, int, str, SourceStatsAccumulator]:
    """Every block of ``source`` hashed, measured, down-mixed and resampled to ``sr``:
    (samples, native frames, content hash, source statistics)."""
    if source.duration_hint is not None and source.duration_hint > max_duration:
        raise UnsupportedAudio(
            f"{_clock(source.duration_hint)} long, over the {_clock(max_duration)} limit "
            "(raise it with --max-duration)",
            name,
        )

    hasher = xxhash.xxh3_128()
    resampler = (
        soxr.ResampleStream(
            source.sr, sr, 1 if mono else source.channels, dtype="float32", quality="HQ"
        )
        if source.sr != sr
        else None
    )
    expected = (
        int(source.duration_hint * sr) + 1
        if source.duration_hint and source.duration_hint > 0
        else 0
    )
    pieces = _Samples(1 if mono else source.channels, expected)
    native_frames = 0
    stats = SourceStatsAccumulator(source.sr, source.channels, file_bytes=p.stat().st_size)
    for block in source.blocks():  # block: (frames, channels) float32, C-contiguous
        hasher.update(block.data)
        stats.update(block)
        native_frames += block.shape[0]
        if native_frames > (max_duration + 1) * source.sr:
            raise UnsupportedAudio(
                f"over the {_clock(max_duration)} limit (raise it with --max-duration)", name
            )
        x = _downmix(block) if mono else block
        if resampler is not None:
            x = resampler.resample_chunk(x)
        pieces.append(x)
    if resampler is not None:
        pieces.append(
            resampler.resample_chunk(
                np.zeros((0,) if mono else (0, source.channels), dtype=np.float32), last=True
            )
        )
    source.check_complete(native_frames)
    if native_frames == 0:
        raise DecodeError("contains no audio frames", name)
    return pieces.array(mono), native_frames, hasher.hexdigest(), stats


def content_hash(path: str | os.PathLike[str], *, stream: int = 0) -> str:
    """The decoded-audio hash of ``path`` (as :attr:`DecodedAudio.content_hash`), computed in
    one streaming pass that keeps no samples.

    Raises
    ------
    DecodeError
        As :func:`decode` for a file it cannot read.
    """
    p = Path(path)
    name = os.fsdecode(path)
    _check_file(p, name)
    source = _open_source(p, name, stream)
    hasher = xxhash.xxh3_128()
    frames = 0
    for block in source.blocks():
        hasher.update(block.data)
        frames += block.shape[0]
    source.check_complete(frames)
    return hasher.hexdigest()


class AudioStream:
    """A file decoded block by block at ``sr``, channels first, never held whole.

    Iterate it for ``(channels, k)`` float32 blocks (``(k,)`` with ``mono``); once exhausted,
    ``content_hash`` is the file's decoded-audio hash (as :func:`decode` computes it).

    Examples
    --------
    >>> s = AudioStream("song.flac", sr=44100)  # doctest: +SKIP
    >>> total = sum(b.shape[-1] for b in s); s.content_hash  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike[str], *, sr: int, mono: bool = False, stream: int = 0
    ) -> None:
        p = Path(path)
        self.name = os.fsdecode(path)
        _check_file(p, self.name)
        self.source = _open_source(p, self.name, stream)
        self.sr, self.mono = sr, mono
        self.channels = 1 if mono else self.source.channels
        self.content_hash: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        src = self.source
        hasher = xxhash.xxh3_128()
        resampler = (
            soxr.ResampleStream(src.sr, self.sr, self.channels, dtype="float32", quality="HQ")
            if src.sr != self.sr
            else None
        )
        frames = 0
        for block in src.blocks():
            hasher.update(block.data)
            frames += block.shape[0]
            x = _downmix(block)[:, None] if self.mono else block
            if resampler is not None:
                x = resampler.resample_chunk(x)
            if x.shape[0]:
                yield self._out(x)
        if resampler is not None:
            x = resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
            if x.shape[0]:
                yield self._out(x)
        src.check_complete(frames)
        self.content_hash = hasher.hexdigest()

    def _out(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1, self.channels)
        return np.ascontiguousarray(x[:, 0] if self.mono else x.T)


def decode_region(
    path: str | os.PathLike[str], start: float, end: float, *, sr: int, mono: bool = False
) -> tuple[np.ndarray, int] | None:
    """Decode only ``[start, end)`` seconds of ``path`` at ``sr``, seeking in the file.

    The samples are those :func:`decode` would give at the same positions (to resampling
    precision): the region is read with a margin, resampled, and cut at output samples
    ``round(start * sr)`` .. ``round(end * sr)``.

    Returns
    -------
    (samples, first) or None
        ``samples`` [shape=(n,) or (channels, n), dtype=float32] and the index, at ``sr``, of
        its first sample in the whole file; None when the format cannot seek exactly here
        (MP3, ffmpeg formats): decode the whole file instead.
    """
    from math import gcd

    p = Path(path)
    name = os.fsdecode(path)
    _check_file(p, name)
    mpeg = _looks_like_mpeg(p)
    try:
        with _mpg123_quiet(mpeg):
            info = sf.info(os.fsencode(p))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    src_sr, channels = int(info.samplerate), int(info.channels)
    if src_sr <= 0 or channels <= 0 or mpeg or str(info.format) == "MP3":
        return None  # libsndfile's MP3 seek is not sample-exact: decode the whole file
    if str(info.subtype) == "OPUS":
        return None  # nor is its Opus seek (and some Opus files it cannot read at all)
    lo, hi = max(int(round(start * sr)), 0), max(int(round(end * sr)), 0)
    # Read from a native frame that falls exactly on an output sample, with a margin either
    # side for the resampling filter to settle.
    step = src_sr // gcd(src_sr, sr)
    margin = 0 if src_sr == sr else int(0.05 * src_sr)
    native_lo = max((int(lo * src_sr / sr) - margin) // step * step, 0)
    native_hi = int(np.ceil(hi * src_sr / sr)) + margin
    try:
        with _mpg123_quiet(mpeg), sf.SoundFile(os.fsencode(p)) as f:
            f.seek(min(native_lo, max(f.frames, 0)))
            x = f.read(max(native_hi - native_lo, 0), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DecodeError(f"damaged {info.format} data ({_one_line(exc)})", name) from exc
    if mono:
        x = _downmix(x)[:, None]
    if src_sr != sr and x.shape[0]:
        x = np.asarray(soxr.resample(x, src_sr, sr, quality="HQ"), np.float32).reshape(
            -1, x.shape[1]
        )
    first = native_lo * sr // src_sr
    y = np.ascontiguousarray(x[lo - first : hi - first].T)
    return (y[0] if mono else y), lo


def _open_source(
    p: Path, name: str, stream: int, *, check_opus: bool = True
) -> _SndfileSource | _FfmpegSource:
    if stream > 0:
        return _FfmpegSource(p, name, stream=stream)
    try:
        with _mpg123_quiet(_looks_like_mpeg(p)):
            info = sf.info(os.fsencode(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        log.debug("libsndfile cannot open %s (%s); trying ffmpeg", name, exc)
        _check_wav_header(p, name)
        return _FfmpegSource(p, name)
    if str(info.subtype) == "OPUS":
        # libsndfile 1.2 names Opus streams (.opus, Opus in .ogg) but stops part-way through
        # many of them ("file is malformed"; every ffmpeg transcode of an OGG Vorbis song we
        # tried): ffmpeg reads them. A file libsndfile reads whole stays with it, so its content
        # hash (its track id) holds. Verdicts are kept per file version (path, size, mtime);
        # without one, ``check_opus`` reads the file once to find out, else the caller learns it
        # from its own decode (``opus_key``: :func:`decode` retries through ffmpeg).
        st = p.stat()
        key = (os.fsencode(p), st.st_size, st.st_mtime_ns)
        readable = _OPUS_READABLE.get(key)
        if readable is None and check_opus:
            readable = _OPUS_READABLE[key] = _sndfile_decodes_whole(p)
        if readable is False:
            log.debug(
                "libsndfile cannot decode the Opus stream of %s; reading it with ffmpeg", name
            )
            return _FfmpegSource(p, name)
        source = _SndfileSource(p, name, info)
        source.opus_key = None if readable else key
        return source
    return _SndfileSource(p, name, info)


#: Whether libsndfile decodes a file's Opus stream whole, by (path, size, mtime_ns).
_OPUS_READABLE: dict[tuple[bytes, int, int], bool] = {}


def _sndfile_decodes_whole(p: Path) -> bool:
    """Whether libsndfile decodes ``p`` to its end."""
    try:
        with sf.SoundFile(os.fsencode(p)) as f:
            while f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True).shape[0]:
                pass
    except (sf.LibsndfileError, RuntimeError):
        return False
    return True


def check_max_duration(max_duration: float) -> float:
    """Validate a ``--max-duration`` (seconds): a positive number, ``inf`` for no limit.

    Examples
    --------
    >>> check_max_duration(600)
    600.0
    """
    try:
        d = float(max_duration)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"--max-duration {max_duration!r} must be a number of seconds"
        ) from exc
    if d != d or d <= 0:  # NaN compares false with everything: it would disable the limit
        raise ParameterError(
            f"--max-duration {max_duration!r} must be a positive number of seconds (e.g. 1800)"
        )
    return d


class _Samples:
    """Decoded blocks written straight into one channels-first buffer, sized from the
    header's length (grown by half when a header under-promised), so a long file costs one
    copy of its audio, not the blocks plus their concatenation plus its transposition."""

    def __init__(self, channels: int, expected: int) -> None:
        self.buf = np.empty((channels, max(expected, 1 << 16)), np.float32)
        self.n = 0

    def append(self, x: np.ndarray) -> None:
        k = int(x.shape[0])
        if self.n + k > self.buf.shape[1]:
            grown = np.empty((self.buf.shape[0], max(self.n + k, self.buf.shape[1] * 3 // 2)),
                             np.float32)  # fmt: skip
            grown[:, : self.n] = self.buf[:, : self.n]
            self.buf = grown
        self.buf[:, self.n : self.n + k] = x.T if x.ndim == 2 else x
        self.n += k

    def array(self, mono: bool) -> np.ndarray:
        """C-contiguous ``(n,)`` for mono, else ``(channels, n)``."""
        ch, cap = self.buf.shape
        n = self.n
        if n < 0.9 * cap:
            out = np.ascontiguousarray(self.buf[:, :n])
        else:
            # Close the gaps between the rows in place: a contiguous view, no second copy.
            flat = self.buf.reshape(-1)
            for c in range(1, ch):
                flat[c * n : (c + 1) * n] = flat[c * cap : c * cap + n]
            out = flat[: ch * n].reshape(ch, n)
        return out[0] if mono else out


def _finite_peak(x: np.ndarray) -> tuple[bool, float]:
    """Whether every sample is finite, and the absolute peak, in slices (no full-size
    temporaries)."""
    flat = x.reshape(-1)
    peak = 0.0
    step = 1 << 20
    for i in range(0, flat.size, step):
        part = flat[i : i + step]
        hi, lo = float(part.max()), float(part.min())
        if not (np.isfinite(hi) and np.isfinite(lo)):
            return False, float("nan")
        peak = max(peak, hi, -lo)
    return True, peak


def probe(path: str | os.PathLike[str]) -> dict[str, object]:
    """Cheap header read: format, sample rate, channels, duration (None when unknown)."""
    p = Path(path)
    _check_file(p, os.fsdecode(path))
    try:
        with _mpg123_quiet(_looks_like_mpeg(p)):
            info = sf.info(os.fsencode(p))
        return {
            "format": info.format,
            "sr": info.samplerate,
            "channels": info.channels,
            "duration": info.duration,
        }
    except (sf.LibsndfileError, RuntimeError, TypeError):
        src = _FfmpegSource(p, os.fsdecode(path))
        return {
            "format": src.format,
            "sr": src.sr,
            "channels": src.channels,
            "duration": src.duration_hint,
        }


# --------------------------------------------------------------------------------------------
def _check_file(p: Path, name: str) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DecodeError("no such file", name) from None
    except OSError as exc:
        raise DecodeError(f"cannot read ({exc.strerror or exc})", name) from exc
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("is a directory, not an audio file", name)
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("is not a regular file", name)
    if st.st_size == 0:
        raise DecodeError("empty file (0 bytes)", name)
    if not os.access(p, os.R_OK):
        raise DecodeError("permission denied", name)
    try:  # access() answers for the real uid and ignores some policies: really open it
        with open(p, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise DecodeError(f"cannot read ({exc.strerror or exc})", name) from exc


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _SndfileSource:
    #: Set on an Opus stream whose readability is not known yet (see :func:`_open_source`).
    opus_key: tuple[bytes, int, int] | None = None

    def __init__(self, p: Path, name: str, info: sf._SoundFileInfo) -> None:
        self.p, self.name = p, name
        self.sr = int(info.samplerate)
        self.channels = int(info.channels)
        self.format = str(info.format)
        self.frames = int(info.frames)
        # libsndfile estimates MP3 length from the file size; trust it only as a hint.
        self.duration_hint: float | None = self.frames / self.sr if self.sr else None
        if self.sr <= 0 or self.channels <= 0 or self.channels > MAX_CHANNELS:
            raise DecodeError(f"bad header ({self.sr} Hz, {self.channels} channels)", name)

    def blocks(self) -> Iterator[np.ndarray]:
        quiet = self.format == "MP3" or _looks_like_mpeg(self.p)
        try:
            with _mpg123_quiet(quiet), sf.SoundFile(os.fsencode(self.p)) as f:
                while True:
                    with _mpg123_quiet(quiet):
                        block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    yield block
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(f"damaged {self.format} data ({_one_line(exc)})", self.name) from exc

    def check_complete(self, frames: int) -> None:
        # Uncompressed containers state their data size exactly; libsndfile quietly clamps it to
        # the bytes present, so compare the header's own promise with what was read.
        promised = _promised_frames(self.p, self.format, self.channels)
        if promised is not None and frames < 0.99 * promised:
            raise DecodeError(
                f"truncated: header promises {promised / self.sr:.1f} s, "
                f"only {frames / self.sr:.1f} s present",
                self.name,
            )


#: Most channels a WAV file can sensibly hold (WAVE_FORMAT_EXTENSIBLE maps 18 speakers; DAW
#: exports of many tracks reach a few dozen): beyond this a header is damaged, not audio.
MAX_CHANNELS = 256


def _check_wav_header(p: Path, name: str) -> None:
    """A clear reason for a WAV whose header libsndfile refused for an impossible value."""
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 12)
    except OSError:
        return
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        return
    at = head.find(b"fmt ", 12)
    if at < 0 or len(head) < at + 16:
        raise DecodeError("damaged WAV header (no format chunk)", name)
    order: Literal["little", "big"] = "big" if head[:4] == b"RIFX" else "little"
    channels = int.from_bytes(head[at + 10 : at + 12], order)
    rate = int.from_bytes(head[at + 12 : at + 16], order)
    if channels == 0 or channels > MAX_CHANNELS:
        raise DecodeError(f"damaged WAV header: it claims {channels} channels", name)
    if rate == 0:
        raise DecodeError("damaged WAV header: it claims a sample rate of 0 Hz", name)


def _promised_frames(p: Path, fmt: str, channels: int) -> int | None:
    """Frames a WAV/AIFF header promises (from its data chunk size), or None if unknown."""
    if fmt not in ("WAV", "WAVEX", "AIFF"):
        return None
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if fmt in ("WAV", "WAVEX") and head[:4] == b"RIFF":
        i = head.find(b"data", 12)
        fmt_at = head.find(b"fmt ", 12)
        if i < 0 or fmt_at < 0:
            return None
        size = int.from_bytes(head[i + 4 : i + 8], "little")
        block_align = int.from_bytes(head[fmt_at + 20 : fmt_at + 22], "little")
        if size in (0, 0xFFFFFFFF) or block_align == 0:  # streaming writers leave these
            return None
        return size // block_align
    if fmt == "AIFF" and head[:4] == b"FORM":
        i = head.find(b"COMM", 12)
        if i < 0:
            return None
        return int.from_bytes(head[i + 10 : i + 14], "big")
    return None


class _FfmpegSource:
    """Decode through an ``ffmpeg`` subprocess (M4A/AAC and anything libsndfile can't read)."""

    def __init__(self, p: Path, name: str, *, stream: int = 0) -> None:
        self.p, self.name, self.stream = p, name, stream
        self.ffmpeg = shutil.which("ffmpeg")
        ffprobe = shutil.which("ffprobe")
        if not self.ffmpeg or not ffprobe:
            raise DecodeError(
                f"cannot decode {p.suffix or 'this file'} without ffmpeg (try installing ffmpeg)",
                name,
            )
        try:
            out = subprocess.run(
                [
                    ffprobe,
                    "-v",
                    "error",
                    "-select_streams",
                    f"a:{stream}",
                    "-show_entries",
                    "stream=sample_rate,channels,codec_name:format=duration,format_name",
                    "-of",
                    "json",
                    str(p),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise DecodeError(f"not an audio file ({_one_line(exc)})", name) from exc
        try:
            meta = json.loads(out.stdout or "{}")
        except json.JSONDecodeError as exc:
            # ffprobe prints broken JSON for some damaged headers: say what ffprobe said.
            reason = _one_line(out.stderr) if out.stderr.strip() else "unreadable stream header"
            raise DecodeError(f"not an audio file or damaged ({reason})", name) from exc
        streams = meta.get("streams") or []
        if not streams and stream > 0 and out.returncode == 0:
            raise DecodeError(f"has no audio stream {stream}", name)
        if not streams:
            reason = _one_line(out.stderr) if out.stderr.strip() else "no audio stream"
            raise DecodeError(f"not an audio file or damaged ({reason})", name)
        st = streams[0]
        self.sr = int(st.get("sample_rate") or 0)
        self.channels = int(st.get("channels") or 0)
        if self.sr <= 0 or self.channels <= 0:
            # ffprobe guesses the format from the name: a text file called x.flac is a "flac"
            # stream with no rate and no channels.
            kind = str(st.get("codec_name") or "audio").upper()
            raise DecodeError(
                f"not a {kind} file, or its header is damaged (no sample rate or channel count)",
                name,
            )
        if self.channels > MAX_CHANNELS:
            raise DecodeError(f"damaged header: it claims {self.channels} channels", name)
        codec = str(st.get("codec_name", "")).upper()
        fmt = str((meta.get("format") or {}).get("format_name", "")).split(",")[0].upper()
        self.format = {"AAC": "M4A", "ALAC": "M4A"}.get(codec, codec or fmt)
        dur = (meta.get("format") or {}).get("duration")
        self.duration_hint = float(dur) if dur not in (None, "N/A") else None

    def blocks(self) -> Iterator[np.ndarray]:
        assert self.ffmpeg is not None
        cmd = [
            self.ffmpeg,
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(self.p),
            "-map",
            f"0:a:{self.stream}",
            "-f",
            "f32le",
            "-acodec",
            "pcm_f32le",
            "-",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        frame_bytes = 4 * self.channels
        # Bounded whatever the channel count: a block is at most 8 MB of samples.
        chunk = min(_BLOCK_FRAMES, max((8 << 20) // frame_bytes, 1)) * frame_bytes
        rest = b""
        try:
            while True:
                data = proc.stdout.read(chunk)
                if not data:
                    break
                data = rest + data
                usable = len(data) - len(data) % frame_bytes
                rest = data[usable:]
                if usable:
                    yield np.frombuffer(data[:usable], dtype=np.float32).reshape(-1, self.channels)
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            code = proc.wait()
        if code != 0:
            raise DecodeError(f"ffmpeg could not decode it ({_one_line(err) or code})", self.name)

    def check_complete(self, frames: int) -> None:
        return None


_MPEG_SUFFIXES = (".mp3", ".mp2", ".mpga", ".mpeg")
_QUIET_LOCK = threading.RLock()
_quiet_depth = 0


def _looks_like_mpeg(p: Path) -> bool:
    if p.suffix.lower() in _MPEG_SUFFIXES:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return head == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


@contextmanager
def _mpg123_quiet(active: bool = True) -> Iterator[None]:
    """Keep libmpg123's own ``Note:``/``Warning:``/``[src/...]`` lines (it writes them to file
    descriptor 2 from C, past Python) off the terminal: they go to the debug log instead.

    Standard error is swapped for a temporary file only while libsndfile runs; anything else
    written meanwhile (another thread's output) is passed on unchanged.
    """
    global _quiet_depth
    if not active:
        yield
        return
    with _QUIET_LOCK:
        if _quiet_depth:
            _quiet_depth += 1
            try:
                yield
            finally:
                _quiet_depth -= 1
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        capture = tempfile.TemporaryFile()
        _quiet_depth = 1
        try:
            os.dup2(capture.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _quiet_depth = 0
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            capture.close()
            _pass_on(text)


_MPG123_LINE = re.compile(r"^\s*(?:Note:|Warning:|\[src/|\[\w+\.c:\d+\]|Error:.*mpg123)")


def _pass_on(text: str) -> None:
    other = []
    for line in text.splitlines(keepends=True):
        if _MPG123_LINE.match(line):
            log.debug("libmpg123: %s", line.strip())
        else:
            other.append(line)
    if other:
        try:
            os.write(2, "".join(other).encode(errors="replace"))
        except OSError:
            pass


def _downmix(block: np.ndarray) -> np.ndarray:
    # Summing channel columns is ~10x faster than block.mean(axis=1) on interleaved frames.
    if block.shape[1] == 1:
        return block[:, 0]
    x = block[:, 0] + block[:, 1]
    for c in range(2, block.shape[1]):
        x += block[:, c]
    x *= np.float32(1.0 / block.shape[1])
    return x


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
