"""Phrase slices as files: ``DIR/<trackid>/<trackid>_<n>.<ext>`` plus a JSON sidecar each.

A slice holds exactly the source's samples from ``round(start * sr)`` to ``round(end * sr)``
at the source's own rate and channels. For a lossless source it is written in a subtype that
holds those samples exactly (the source's own PCM width for FLAC/AIFF/WAV, else 24-bit; WAV
falls back to 32-bit float, which holds any decoded sample), so reading a slice back gives the
decoded region bit for bit. Lossy sources are decoded and stored losslessly (24-bit), so the
slice equals the *decoded* region to within 2^-23.

Before cutting, the source is checked against the track id (its decoded-audio hash), so a file
that changed since it was analysed is refused instead of cut at the wrong places. Each file is
written to a hidden temporary name and renamed into place; ``track.json`` is written last and
marks the track's slices complete for this analysis version and format.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from cratedig.analysis.pipeline import track_id_from_hash
from cratedig.analysis.records import TrackAnalysis
from cratedig.audio.decode import DecodedAudio, decode
from cratedig.errors import AudioError, OutputError, ParameterError
from cratedig.fileio import atomic_path, write_sound
from cratedig.library.errors import DiskFull, SliceError

log = logging.getLogger("cratedig.library")


@dataclass(frozen=True)
class SliceFormat:
    """A container slices can be written in."""

    name: str
    container: str  # libsndfile major format
    suffix: str
    exact: tuple[str, ...]  # source subtypes kept as they are
    fallback: str  # subtype for everything else


SLICE_FORMATS: dict[str, SliceFormat] = {
    "flac": SliceFormat("flac", "FLAC", ".flac", ("PCM_S8", "PCM_16", "PCM_24"), "PCM_24"),
    "wav": SliceFormat(
        "wav", "WAV", ".wav", ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"), "FLOAT"
    ),
    "aiff": SliceFormat("aiff", "AIFF", ".aiff", ("PCM_S8", "PCM_16", "PCM_24", "PCM_32"), "FLOAT"),
    "ogg": SliceFormat("ogg", "OGG", ".ogg", (), "VORBIS"),
}
MANIFEST = "track.json"


def slice_format(name: str) -> SliceFormat:
    """The :class:`SliceFormat` called ``name`` (flac, wav, aiff, ogg)."""
    try:
        return SLICE_FORMATS[name.lower().lstrip(".")]
    except KeyError:
        raise ParameterError(
            f"slice format {name!r} must be one of {', '.join(SLICE_FORMATS)}"
        ) from None


def track_dir(slices_dir: str | os.PathLike[str], track_id: str) -> Path:
    """``slices_dir/<trackid>``."""
    return Path(slices_dir) / track_id


def slice_path(slices_dir: str | os.PathLike[str], segment_id: str, fmt: str = "flac") -> Path:
    """Where the slice of segment ``<trackid>_<n>`` goes."""
    track_id = segment_id.rsplit("_", 1)[0]
    return track_dir(slices_dir, track_id) / f"{segment_id}{slice_format(fmt).suffix}"


def check_slices_dir(slices_dir: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a slice folder that is a file (or under one).

    Raises
    ------
    SliceError
        One line naming the file in the way.
    """
    p = Path(slices_dir).expanduser()
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                raise SliceError(
                    f"cannot write slices to {os.fsdecode(p)}: {os.fsdecode(q)} is a file, "
                    "not a folder"
                )
            break
    return p


def slice_spans(spans: Iterable[tuple[float, float]]) -> list[list[float]]:
    """Segment spans as a slice manifest records them (ms precision)."""
    return [[round(float(a), 3), round(float(b), 3)] for a, b in spans]


def slices_complete(
    slices_dir: str | os.PathLike[str],
    track_id: str,
    *,
    analysis_version: int,
    fmt: str = "flac",
    spans: Iterable[tuple[float, float]] | None = None,
) -> bool:
    """Whether the track's slices are all there for this analysis version and format: every
    slice and its sidecar present, and (for manifests that record them) of the size written,
    so a truncated slice or a deleted sidecar is written again. With ``spans`` (the track's
    segments now), slices cut from other spans (the track regridded since: same analysis
    version, other phrases) are not complete either; manifests from before spans were
    recorded are judged without them."""
    folder = track_dir(slices_dir, track_id)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        names = [str(n) for n in manifest["slices"]]
        sizes = {str(k): int(v) for k, v in (manifest.get("sizes") or {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if (
        manifest.get("analysis_version") != analysis_version
        or manifest.get("format") != slice_format(fmt).name
    ):
        return False
    if spans is not None and "spans" in manifest and manifest["spans"] != slice_spans(spans):
        return False
    for name in names:
        for f in (name, str(Path(name).with_suffix(".json"))):
            try:
                size = (folder / f).stat().st_size
            except OSError:
                return False
            if f in sizes and sizes[f] != size:
                return False
    return True


def sample_bounds(start: float, end: float, sr: int, n: int) -> tuple[int, int]:
    """Sample indices ``[round(start * sr), round(end * sr))`` clipped to ``[0, n]``."""
    a = min(max(int(round(start * sr)), 0), n)
    b = min(max(int(round(end * sr)), a), n)
    return a, b


def write_track_slices(
    analysis: TrackAnalysis,
    slices_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    fmt: str = "flac",
    audio: DecodedAudio | None = None,
) -> list[Path]:
    """Write every phrase segment of ``analysis`` as an audio file with a JSON sidecar.

    Parameters
    ----------
    analysis : TrackAnalysis
        Its ``segments`` say where to cut; ``sample_rate`` is the source's rate.
    slices_dir : path-like
        Root folder; the track's slices go to ``slices_dir/<trackid>/``.
    source : path-like, optional
        The audio file; default ``analysis.path``.
    fmt : str
        ``"flac"`` (default), ``"wav"``, ``"aiff"`` or ``"ogg"``.
    audio : DecodedAudio, optional
        The source already decoded at its own rate with ``mono=False`` (or mono at its own rate
        for a mono source), to avoid decoding it again.

    Returns
    -------
    list of Path
        The audio files written, in segment order.

    Raises
    ------
    SliceError
        The source is missing, unreadable or no longer the analysed audio.
    DiskFull
        No space left in ``slices_dir``.

    Examples
    --------
    >>> write_track_slices(analysis, "slices")  # doctest: +SKIP
    [PosixPath('slices/0f371c63de9da79d/0f371c63de9da79d_0.flac'), ...]
    """
    form = slice_format(fmt)
    src = str(source if source is not None else analysis.path)
    if audio is None:
        try:
            audio = decode(
                src,
                sr=analysis.sample_rate,
                mono=False,
                min_duration=0.0,
                max_duration=float("inf"),
                allow_silent=True,
            )
        except AudioError as exc:
            raise SliceError(f"cannot cut slices from {src}: {exc.reason}") from exc
    if track_id_from_hash(audio.content_hash) != analysis.track_id:
        raise SliceError(
            f"{src} is not the audio of track {analysis.track_id} any more "
            "(changed since it was analysed; run ingest again)"
        )
    if audio.sr != analysis.sample_rate:
        raise SliceError(
            f"{src}: decoded at {audio.sr} Hz, not the source's {analysis.sample_rate}"
        )
    samples = audio.samples if audio.samples.ndim == 2 else audio.samples[None, :]
    subtype = _subtype(src, form)
    out_dir = track_dir(slices_dir, analysis.track_id)
    n = samples.shape[1]
    written: list[Path] = []
    names: list[str] = []
    sizes: dict[str, int] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST).unlink(missing_ok=True)
        for seg in analysis.segments:
            if seg.level != "phrase":
                continue
            a, b = sample_bounds(seg.start, seg.end, audio.sr, n)
            path = out_dir / f"{seg.id}{form.suffix}"
            buf = io.BytesIO()
            write_sound(buf, samples[:, a:b].T, audio.sr, format=form.container, subtype=subtype)
            data = buf.getvalue()
            _atomic_write(path, data)
            sidecar = _json_bytes(_sidecar(analysis, seg.index, src, a, b, form, subtype))
            _atomic_write(path.with_suffix(".json"), sidecar)
            sizes[path.name] = len(data)
            sizes[path.with_suffix(".json").name] = len(sidecar)
            written.append(path)
            names.append(path.name)
        keep = {p.name for p in written} | {p.with_suffix(".json").name for p in written}
        _remove_stale(out_dir, analysis.track_id, keep)
        manifest = {
            "track_id": analysis.track_id,
            "source": src,
            "analysis_version": analysis.analysis_version,
            "format": form.name,
            "subtype": subtype,
            "sample_rate": audio.sr,
            "channels": int(samples.shape[0]),
            "tempo": round(float(analysis.tempo), 3),
            "key": analysis.key.name,
            "mode": analysis.key.mode,
            "camelot": analysis.key.camelot,
            "slices": names,
            "sizes": sizes,
            "spans": slice_spans((g.start, g.end) for g in analysis.segments),
        }
        _atomic_write(out_dir / MANIFEST, _json_bytes(manifest))
    except OutputError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left for slices in {slices_dir}") from exc
        raise SliceError(str(exc)) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left for slices in {slices_dir}") from exc
        raise SliceError(f"cannot write slices to {out_dir}: {exc.strerror or exc}") from exc
    return written


def _subtype(src: str, form: SliceFormat) -> str:
    try:
        source_subtype = sf.info(src).subtype
    except (sf.LibsndfileError, RuntimeError, TypeError):  # ffmpeg-decoded (M4A...)
        source_subtype = ""
    if source_subtype in form.exact:
        return source_subtype
    if form.name == "flac" and source_subtype == "PCM_U8":
        return "PCM_16"  # FLAC has no unsigned 8 bit; 16 bit holds it exactly
    return form.fallback


def _sidecar(
    a: TrackAnalysis, index: int, src: str, lo: int, hi: int, form: SliceFormat, subtype: str
) -> dict[str, Any]:
    seg = a.segments[index]
    return {
        **seg.to_json(),
        "track_id": a.track_id,
        "index": seg.index,
        "source": src,
        "source_format": a.format,
        "sample_rate": a.sample_rate,
        "channels": a.channels,
        "start_sample": lo,
        "end_sample": hi,
        "frames": hi - lo,
        "format": form.name,
        "subtype": subtype,
        "rms_db": round(float(seg.features.rms_db), 2),
        "track": {
            "tempo": round(float(a.tempo), 3),
            "time_signature": list(a.time_signature),
            "key": a.key.name,
            "mode": a.key.mode,
            "camelot": a.key.camelot,
            "duration": round(float(a.duration), 3),
        },
        "analysis_version": a.analysis_version,
    }


def _json_bytes(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, indent=2, default=_json_default) + "\n").encode()


def _json_default(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _remove_stale(out_dir: Path, track_id: str, keep: set[str]) -> None:
    """Delete slices that are not in ``keep`` (file names): those of an older analysis with
    more segments, or of another format."""
    for p in out_dir.glob(f"{track_id}_*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)
