"""Storing and loading analyses, files, errors; the library's queries. Functions of a Session.

Every function here works inside the caller's transaction (see
:meth:`cratedig.library.db.Library.transaction`) and commits nothing itself, so "one track, one
transaction" is decided by the caller. Arrays go in as little-endian float32 bytes.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from cratedig import ANALYSIS_VERSION
from cratedig.analysis.fingerprint import from_bytes as fp_from_bytes
from cratedig.analysis.fingerprint import to_bytes as fp_to_bytes
from cratedig.analysis.records import Section, Segment, SegmentFeatures, TrackAnalysis
from cratedig.errors import ParameterError
from cratedig.library.schema import (
    TRACK_ID_LENGTH,
    FeatureRow,
    FileRow,
    IngestErrorRow,
    ModelRow,
    RatingRow,
    SegmentRow,
    SettingRow,
    StemRow,
    TrackRow,
)
from cratedig.theory import Key

log = logging.getLogger("cratedig.library")

_F32 = np.dtype("<f4")


def array_to_bytes(x: np.ndarray) -> bytes:
    """``x`` as little-endian float32 bytes (C order)."""
    return np.ascontiguousarray(x, dtype=_F32).tobytes()


def bytes_to_array(b: bytes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Inverse of :func:`array_to_bytes`: a writable float32 array, reshaped to ``shape``."""
    x = np.frombuffer(b, dtype=_F32).astype(np.float32)
    return x.reshape(shape) if shape is not None else x


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Analyses


def store_analysis(
    session: Session,
    analysis: TrackAnalysis,
    *,
    analysed_at: datetime | None = None,
    ingest_id: str | None = None,
    reattached: Reattachment | None = None,
) -> TrackRow:
    """Insert or replace a track's analysis: its row, segments and features.

    Re-storing a track replaces its segments and features (delete, then insert) so that no
    duplicate can survive; its file rows are kept.

    Parameters
    ----------
    session : Session
        In a transaction; nothing is committed here.
    analysis : TrackAnalysis
    analysed_at : datetime, optional
        Defaults to now (UTC).
    ingest_id : str, optional
        The ingest run storing it (``cratedig drift --batch``).
    reattached : Reattachment, optional
        Filled with what happened to the track's ratings (:func:`reattach_ratings`).

    Returns
    -------
    TrackRow
    """
    a = analysis
    tid = a.track_id
    row = session.get(TrackRow, tid)
    previous: list[tuple[str, float, float]] = []
    if row is None:
        row = TrackRow(id=tid)
        session.add(row)
    else:
        previous = segment_spans(session, [tid]).get(tid, [])
        session.execute(delete(FeatureRow).where(FeatureRow.track_id == tid))
        session.execute(delete(SegmentRow).where(SegmentRow.track_id == tid))
    row.format = a.format
    row.duration = float(a.duration)
    row.sample_rate = int(a.sample_rate)
    row.channels = int(a.channels)
    row.tempo = float(a.tempo)
    row.beats_per_bar, row.beat_unit = (int(a.time_signature[0]), int(a.time_signature[1]))
    row.key, row.mode, row.camelot = a.key.name, a.key.mode, a.key.camelot
    row.tuning = float(a.tuning)
    row.key_clarity = float(a.key_clarity)
    row.loudness = float(a.loudness)
    row.beats = array_to_bytes(a.beats)
    row.downbeats = array_to_bytes(a.downbeats)
    row.sections = [s.to_json() for s in a.sections]
    row.estimates = dict(a.estimates) if a.estimates else None
    row.quality = a.quality or None
    row.fingerprint = fp_to_bytes(a.fingerprint) if len(a.fingerprint) else None
    row.ingest_id = ingest_id
    row.analysis_version = int(a.analysis_version)
    row.analysed_at = analysed_at or now()
    row.status = "ok"
    row.error = None
    session.flush()
    if a.segments:
        session.execute(insert(SegmentRow), [_segment_values(s) for s in a.segments])
        session.execute(insert(FeatureRow), [_feature_values(s) for s in a.segments])
    # Ratings name segments by id; the new segmentation may have renumbered or moved them.
    done = reattach_ratings(session, tid, previous=previous)
    if reattached is not None:
        reattached.kept, reattached.moved, reattached.orphaned = (
            done.kept,
            done.moved,
            done.orphaned,
        )
    return row


def _segment_values(s: Segment) -> dict[str, Any]:
    f = s.features
    return {
        "id": s.id,
        "track_id": s.track_id,
        "index": int(s.index),
        "level": s.level,
        "start": float(s.start),
        "end": float(s.end),
        "bar": int(s.bar),
        "bars": int(s.bars),
        "label": s.label,
        "section": int(s.section),
        "tempo": float(s.tempo),
        "key": s.key.name,
        "mode": s.key.mode,
        "camelot": s.key.camelot,
        "energy": float(f.energy),
        "rms_db": float(f.rms_db),
        "loudness": float(f.loudness),
        "key_clarity": float(f.key_clarity),
        "cluster_id": None,
    }


def _feature_values(s: Segment) -> dict[str, Any]:
    f = s.features
    chroma = np.asarray(f.chroma).reshape(-1, 12)
    rhythm = np.asarray(f.rhythm).reshape(-1)
    beats = np.asarray(f.beat_chroma).reshape(-1, 12)
    return {
        "segment_id": s.id,
        "track_id": s.track_id,
        "chroma": array_to_bytes(chroma),
        "chroma_bars": int(chroma.shape[0]),
        "rhythm": array_to_bytes(rhythm),
        "rhythm_steps": int(rhythm.shape[0]),
        "spectral_balance": array_to_bytes(np.asarray(f.spectral_balance).reshape(-1)),
        "beat_chroma": array_to_bytes(beats),
        "beat_rows": int(beats.shape[0]),
    }


def load_analysis(session: Session, track_id: str) -> TrackAnalysis | None:
    """The stored analysis of ``track_id`` (None if unknown); ``path`` is its first file."""
    row = session.get(TrackRow, track_id)
    if row is None:
        return None
    path = session.scalars(
        select(FileRow.path).where(FileRow.track_id == track_id).order_by(FileRow.id).limit(1)
    ).first()
    seg_rows = session.execute(
        select(SegmentRow, FeatureRow)
        .join(FeatureRow, FeatureRow.segment_id == SegmentRow.id)
        .where(SegmentRow.track_id == track_id)
        .order_by(SegmentRow.index)
    ).all()
    segments = [_segment_of(s, f) for s, f in seg_rows]
    return TrackAnalysis(
        path=path or "",
        track_id=row.id,
        format=row.format,
        duration=row.duration,
        sample_rate=row.sample_rate,
        channels=row.channels,
        tempo=row.tempo,
        time_signature=(row.beats_per_bar, row.beat_unit),
        key=Key.parse(row.camelot),
        tuning=row.tuning,
        key_clarity=row.key_clarity,
        loudness=row.loudness,
        beats=bytes_to_array(row.beats).astype(np.float64),
        downbeats=bytes_to_array(row.downbeats).astype(np.float64),
        segments=segments,
        sections=[Section(**d) for d in row.sections],  # type: ignore[arg-type]
        analysis_version=row.analysis_version,
        estimates=dict(row.estimates or {}),  # type: ignore[arg-type]
        quality=dict(row.quality or {}),
        fingerprint=fp_from_bytes(row.fingerprint),
    )


def _segment_of(s: SegmentRow, f: FeatureRow) -> Segment:
    return Segment(
        id=s.id,
        track_id=s.track_id,
        index=s.index,
        level=s.level,
        start=s.start,
        end=s.end,
        bar=s.bar,
        bars=s.bars,
        label=s.label,
        tempo=s.tempo,
        key=Key.parse(s.camelot),
        section=s.section,
        features=SegmentFeatures(
            chroma=bytes_to_array(f.chroma, (f.chroma_bars, 12)),
            beat_chroma=_beat_chroma(f),
            rhythm=bytes_to_array(f.rhythm, (f.rhythm_steps,)),
            spectral_balance=bytes_to_array(f.spectral_balance),
            energy=s.energy,
            rms_db=s.rms_db,
            loudness=s.loudness,
            key_clarity=s.key_clarity,
        ),
    )


#: Ids per ``IN (...)`` clause: below SQLite's bound-parameter limit, small enough for PG plans.
_IN_CHUNK = 500


def load_segments(
    session: Session,
    *,
    track_ids: Iterable[str] | None = None,
    segment_ids: Iterable[str] | None = None,
) -> list[Segment]:
    """Segments with their features: of ``track_ids``, or ``segment_ids`` (in that order), or
    every stored segment (by track, then index). Unknown ids are left out."""
    base = select(SegmentRow, FeatureRow).join(FeatureRow, FeatureRow.segment_id == SegmentRow.id)
    if segment_ids is not None:
        wanted = list(dict.fromkeys(segment_ids))
        found: dict[str, Segment] = {}
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            for srow, frow in session.execute(base.where(SegmentRow.id.in_(chunk))).all():
                found[srow.id] = _segment_of(srow, frow)
        return [found[i] for i in wanted if i in found]
    q = base.join(TrackRow, TrackRow.id == SegmentRow.track_id).order_by(
        SegmentRow.track_id, SegmentRow.index
    )
    if track_ids is None:
        return [_segment_of(a, b) for a, b in session.execute(q).all()]
    out: list[Segment] = []
    ids = sorted(set(track_ids))
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(q.where(SegmentRow.track_id.in_(ids[i : i + _IN_CHUNK]))).all()
        out.extend(_segment_of(a, b) for a, b in rows)
    return out


def track_stamps(session: Session, *, analysis_version: int | None = None) -> dict[str, str]:
    """``track id -> analysed-at`` (ISO text) of every analysed track (only those at
    ``analysis_version`` if given): what a derived store (the match index) compares to find
    tracks added, re-analysed or removed since it was built. A track analysed by an older
    cratedig keeps its stamp until ``ingest`` analyses it again, so the index keeps matching
    it meanwhile instead of dropping the whole library at an upgrade."""
    stmt = select(TrackRow.id, TrackRow.analysed_at)
    if analysis_version is not None:
        stmt = stmt.where(TrackRow.analysis_version == analysis_version)
    rows = session.execute(stmt).all()
    return {r.id: r.analysed_at.isoformat() for r in rows}


def resolve_track_id(session: Session, text: str) -> str | None:
    """The track whose id is ``text`` or starts with it (at least 6 hex digits); None if there
    is none. Raises :class:`ParameterError` when a prefix matches several tracks."""
    t = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,16}", t):
        return None
    ids = list(session.scalars(select(TrackRow.id).where(TrackRow.id.startswith(t)).limit(3)))
    if len(ids) > 1:
        raise ParameterError(f"track id prefix {text!r} matches several tracks: {', '.join(ids)}")
    return ids[0] if ids else None


def first_paths(session: Session, track_ids: Iterable[str]) -> dict[str, str]:
    """The oldest recorded path of each track."""
    ids = sorted(set(track_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(FileRow.track_id, FileRow.path)
            .where(FileRow.track_id.in_(ids[i : i + _IN_CHUNK]))
            .order_by(FileRow.id.desc())
        ).all()
        out.update({r.track_id: r.path for r in rows})  # last write wins: the oldest
    return out


def track_estimates(session: Session, track_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored ``estimates`` (confidence and runner-up per estimate) of each track."""
    ids = sorted(set(track_ids))
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(TrackRow.id, TrackRow.estimates).where(TrackRow.id.in_(ids[i : i + _IN_CHUNK]))
        ).all()
        out.update({r.id: dict(r.estimates or {}) for r in rows})
    return out


def track_fingerprints(session: Session, track_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """The audio fingerprint of each track that has one (analysed since analysis v31)."""
    ids = sorted(set(track_ids))
    out: dict[str, np.ndarray] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(TrackRow.id, TrackRow.fingerprint).where(
                TrackRow.id.in_(ids[i : i + _IN_CHUNK]), TrackRow.fingerprint.is_not(None)
            )
        ).all()
        out.update({r.id: fp_from_bytes(r.fingerprint) for r in rows})
    return out


def fingerprinted_tracks(session: Session) -> list[dict[str, Any]]:
    """Every analysed track that has a fingerprint, with what
    :func:`cratedig.library.duplicates.find_groups` reads (its first path on record)."""
    rows = session.execute(
        select(
            TrackRow.id,
            TrackRow.format,
            TrackRow.sample_rate,
            TrackRow.duration,
            TrackRow.tempo,
            TrackRow.quality,
            TrackRow.fingerprint,
        ).where(TrackRow.fingerprint.is_not(None), TrackRow.status == "ok")
    ).all()
    paths = paths_of(session, [r.id for r in rows])
    return [
        {
            "track_id": r.id,
            "path": (sorted(paths.get(r.id) or [""]))[0],
            "format": r.format,
            "sample_rate": int(r.sample_rate),
            "duration": float(r.duration),
            "tempo": float(r.tempo),
            "quality": dict(r.quality or {}),
            "fingerprint": fp_from_bytes(r.fingerprint),
        }
        for r in rows
    ]


def track_tunings(session: Session, track_ids: Iterable[str]) -> dict[str, float]:
    """The tuning (cents off A440) of each track."""
    ids = sorted(set(track_ids))
    out: dict[str, float] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(TrackRow.id, TrackRow.tuning).where(TrackRow.id.in_(ids[i : i + _IN_CHUNK]))
        ).all()
        out.update({r.id: float(r.tuning) for r in rows})
    return out


def file_stamps(session: Session, track_id: str) -> dict[str, tuple[int, int]]:
    """``path -> (size, mtime_ns)`` recorded for each file of a track when it was ingested."""
    rows = session.execute(
        select(FileRow.path, FileRow.size, FileRow.mtime_ns).where(FileRow.track_id == track_id)
    ).all()
    return {r.path: (int(r.size), int(r.mtime_ns)) for r in rows}


def paths_of(session: Session, track_ids: Iterable[str]) -> dict[str, list[str]]:
    """Every recorded path of each track, oldest first (tracks without files are left out)."""
    ids = sorted(set(track_ids))
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(FileRow.track_id, FileRow.path)
            .where(FileRow.track_id.in_(ids[i : i + _IN_CHUNK]))
            .order_by(FileRow.id)
        ).all()
        for r in rows:
            out.setdefault(r.track_id, []).append(r.path)
    return out


def delete_tracks_without_files(session: Session) -> list[str]:
    """Delete every track no file holds any more (a deleted file's, or the old audio of a
    replaced one), with its segments, features and stems; returns their ids."""
    orphan = ~select(FileRow.id).where(FileRow.track_id == TrackRow.id).exists()
    ids = sorted(session.scalars(select(TrackRow.id).where(orphan)))
    # Ratings are user data: they stay, orphaned with the reason (and come back if the audio does).
    orphan_ratings_of_tracks(
        session, ids, reason="was removed from the library (no file holds its audio any more)"
    )
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys on.
        session.execute(delete(FeatureRow).where(FeatureRow.track_id.in_(chunk)))
        session.execute(delete(SegmentRow).where(SegmentRow.track_id.in_(chunk)))
        session.execute(delete(StemRow).where(StemRow.track_id.in_(chunk)))
        session.execute(delete(TrackRow).where(TrackRow.id.in_(chunk)))
    return ids


def set_cluster_ids(session: Session, assignments: dict[str, int | None]) -> None:
    """Store each segment's cluster id."""
    if assignments:
        session.execute(
            update(SegmentRow),
            [{"id": sid, "cluster_id": c} for sid, c in assignments.items()],
        )


def segment_ids_without_cluster(session: Session) -> list[str]:
    """Ids of segments of current tracks that have no cluster id yet."""
    return list(
        session.scalars(
            select(SegmentRow.id)
            .join(TrackRow, TrackRow.id == SegmentRow.track_id)
            .where(SegmentRow.cluster_id.is_(None), TrackRow.analysis_version == ANALYSIS_VERSION)
            .order_by(SegmentRow.id)
        )
    )


# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class ModelInfo:
    """A row of the models table."""

    kind: str
    version: int
    trained_at: datetime
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    artefact: str | None


def latest_model(session: Session, kind: str) -> ModelInfo | None:
    """The newest model of ``kind`` (None if never trained)."""
    row = session.scalars(
        select(ModelRow).where(ModelRow.kind == kind).order_by(ModelRow.version.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return ModelInfo(
        kind=row.kind,
        version=row.version,
        trained_at=row.trained_at,
        parameters=dict(row.parameters),
        metrics=dict(row.metrics),
        artefact=row.artefact,
    )


def store_model(
    session: Session,
    *,
    kind: str,
    parameters: dict[str, Any],
    metrics: dict[str, Any],
    artefact: str | None,
) -> int:
    """Record a newly trained model of ``kind``; returns its version (1, 2, ...)."""
    top = session.scalar(select(func.max(ModelRow.version)).where(ModelRow.kind == kind))
    version = int(top or 0) + 1
    session.add(
        ModelRow(
            kind=kind,
            version=version,
            trained_at=now(),
            parameters=parameters,
            metrics=metrics,
            artefact=artefact,
        )
    )
    session.flush()
    return version


def list_models(session: Session, kind: str) -> list[ModelInfo]:
    """Every model of ``kind``, oldest first."""
    return all_models(session, kind)


def activate_model(session: Session, kind: str, version: int) -> bool:
    """Make ``version`` the active model of ``kind`` (``parameters["active"]``); False if absent."""
    rows = session.scalars(select(ModelRow).where(ModelRow.kind == kind)).all()
    if not any(r.version == version for r in rows):
        return False
    for r in rows:
        # A new dict, so that the JSON column sees the change.
        r.parameters = {**dict(r.parameters), "active": r.version == version}
    session.flush()
    return True


def set_model_artefact(session: Session, kind: str, version: int, artefact: str) -> None:
    """Record the artefact file (relative to the library's artefact folder) of a model."""
    session.execute(
        update(ModelRow)
        .where(ModelRow.kind == kind, ModelRow.version == version)
        .values(artefact=artefact)
    )


def segment_clusters(session: Session) -> dict[str, int]:
    """``segment id -> cluster id`` of every clustered segment."""
    rows = session.execute(
        select(SegmentRow.id, SegmentRow.cluster_id).where(SegmentRow.cluster_id.is_not(None))
    ).all()
    return {r.id: int(r.cluster_id) for r in rows}


# ---------------------------------------------------------------------------------------------
# Stems


@dataclass(frozen=True)
class StemInfo:
    """A stored stem: its name, file and (for NI .stem.mp4) audio stream."""

    name: str
    path: str
    stream: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "stream": self.stream}


def all_stems(session: Session) -> dict[str, set[StemInfo]]:
    """``track id -> stems`` of every track that has some."""
    out: dict[str, set[StemInfo]] = {}
    for r in session.execute(select(StemRow.track_id, StemRow.name, StemRow.path, StemRow.stream)):
        out.setdefault(r.track_id, set()).add(StemInfo(r.name, r.path, r.stream))
    return out


def stems_of(session: Session, track_id: str) -> list[StemInfo]:
    """The stems of a track, by name."""
    rows = session.execute(
        select(StemRow.name, StemRow.path, StemRow.stream)
        .where(StemRow.track_id == track_id)
        .order_by(StemRow.name)
    ).all()
    return [StemInfo(r.name, r.path, r.stream) for r in rows]


def replace_stems(session: Session, track_id: str, stems: Iterable[StemInfo]) -> None:
    """Make ``stems`` the stems of ``track_id`` (an empty iterable removes them)."""
    session.execute(delete(StemRow).where(StemRow.track_id == track_id))
    values = [
        {"track_id": track_id, "name": st.name, "path": st.path, "stream": st.stream}
        for st in {st.name: st for st in stems}.values()
    ]
    if values:
        session.execute(insert(StemRow), values)


def _beat_chroma(f: FeatureRow) -> np.ndarray:
    if f.beat_chroma is None or f.beat_rows is None:
        # Analysis version 1 stored no beat rows: one row per bar stands in until re-analysis.
        return bytes_to_array(f.chroma, (f.chroma_bars, 12))
    return bytes_to_array(f.beat_chroma, (f.beat_rows, 12))


@dataclass
class FeatureTable:
    """Feature vectors of many segments, loaded in one query.

    Attributes
    ----------
    segment_ids : list of str
    track_ids : list of str
    chroma : list of np.ndarray [shape=(bars, 12)]
        One matrix per segment (segments differ in length).
    rhythm : list of np.ndarray [shape=(steps,)]
        16 steps in 4/4, 12 in 3/4.
    spectral_balance : np.ndarray [shape=(n, 3)]
    """

    segment_ids: list[str]
    track_ids: list[str]
    chroma: list[np.ndarray]
    rhythm: list[np.ndarray]
    spectral_balance: np.ndarray


def load_features(session: Session, track_ids: Iterable[str] | None = None) -> FeatureTable:
    """Feature vectors of every segment (or of ``track_ids``' segments), ordered by segment id.

    Examples
    --------
    >>> table = load_features(session)  # doctest: +SKIP
    >>> table.spectral_balance.shape  # doctest: +SKIP
    (1234, 3)
    """
    q = select(
        FeatureRow.segment_id,
        FeatureRow.track_id,
        FeatureRow.chroma,
        FeatureRow.chroma_bars,
        FeatureRow.rhythm,
        FeatureRow.rhythm_steps,
        FeatureRow.spectral_balance,
    ).order_by(FeatureRow.track_id, FeatureRow.segment_id)
    if track_ids is not None:
        q = q.where(FeatureRow.track_id.in_(list(track_ids)))
    rows = session.execute(q).all()
    spectral = (
        np.frombuffer(b"".join(r.spectral_balance for r in rows), dtype=_F32)
        .astype(np.float32)
        .reshape(len(rows), -1)
        if rows
        else np.zeros((0, 3), np.float32)
    )
    return FeatureTable(
        segment_ids=[r.segment_id for r in rows],
        track_ids=[r.track_id for r in rows],
        chroma=[bytes_to_array(r.chroma, (r.chroma_bars, 12)) for r in rows],
        rhythm=[bytes_to_array(r.rhythm, (r.rhythm_steps,)) for r in rows],
        spectral_balance=spectral,
    )


# ---------------------------------------------------------------------------------------------
# Files and errors


@dataclass(frozen=True)
class KnownFile:
    """What the library remembers about a path."""

    path: str
    track_id: str
    size: int
    mtime_ns: int
    analysis_version: int


@dataclass(frozen=True)
class KnownError:
    """The latest failure recorded for a path."""

    path: str
    reason: str
    size: int
    mtime_ns: int
    analysis_version: int


def known_files(session: Session) -> dict[str, KnownFile]:
    """Every recorded path with its track's analysis version."""
    rows = session.execute(
        select(
            FileRow.path,
            FileRow.track_id,
            FileRow.size,
            FileRow.mtime_ns,
            TrackRow.analysis_version,
        ).join(TrackRow, TrackRow.id == FileRow.track_id)
    ).all()
    return {r.path: KnownFile(*r) for r in rows}


def known_errors(session: Session) -> dict[str, KnownError]:
    """Every recorded failure by path."""
    rows = session.execute(
        select(
            IngestErrorRow.path,
            IngestErrorRow.reason,
            IngestErrorRow.size,
            IngestErrorRow.mtime_ns,
            IngestErrorRow.analysis_version,
        )
    ).all()
    return {r.path: KnownError(*r) for r in rows}


def stale_track_count(session: Session, *, analysis_version: int = ANALYSIS_VERSION) -> int:
    """How many tracks an older cratedig analysed (``ingest`` will analyse them again)."""
    q = select(func.count()).select_from(TrackRow)
    return int(session.execute(q.where(TrackRow.analysis_version != analysis_version)).scalar_one())


def unfingerprinted_count(session: Session) -> int:
    """How many analysed tracks have no fingerprint (analysed before analysis v31)."""
    q = select(func.count()).select_from(TrackRow)
    q = q.where(TrackRow.fingerprint.is_(None), TrackRow.status == "ok")
    return int(session.execute(q).scalar_one())


def current_track_ids(session: Session, *, analysis_version: int = ANALYSIS_VERSION) -> set[str]:
    """Ids of tracks whose analysis is current."""
    return set(
        session.scalars(select(TrackRow.id).where(TrackRow.analysis_version == analysis_version))
    )


def set_tags(session: Session, track_id: str, tags: Mapping[str, object] | None) -> None:
    """Store what the track's file tags say (NULL for none); a track not stored is skipped."""
    row = session.get(TrackRow, track_id)
    if row is not None:
        row.tags = dict(tags) if tags else None


def track_tags(session: Session, track_id: str) -> dict[str, Any]:
    """What the track's file tags say (:func:`set_tags`); empty if nothing or no such track."""
    row = session.get(TrackRow, track_id)
    return dict(row.tags or {}) if row is not None else {}


def tags_considered(session: Session) -> dict[str, dict[str, Any]]:
    """Track id -> the tags its stored analysis considered: ``bpm`` from
    ``estimates["tempo"]["tags"]`` (:func:`cratedig.analysis.rhythm.follow_tag_tempo`) and
    ``key`` from ``estimates["key"]["tags"]`` (:func:`cratedig.analysis.tonal.follow_tag_key`),
    for the tracks whose stored tags carry a BPM or a key; a track whose analysis considered
    none is absent."""
    q = select(TrackRow.id, TrackRow.tags, TrackRow.estimates).where(TrackRow.tags.is_not(None))
    out: dict[str, dict[str, Any]] = {}
    for r in session.execute(q):
        tags = r.tags or {}
        if not (tags.get("bpm") or tags.get("key")):
            continue
        est = r.estimates or {}
        seen = {
            "bpm": ((est.get("tempo") or {}).get("tags") or {}).get("bpm"),
            "key": ((est.get("key") or {}).get("tags") or {}).get("key"),
        }
        seen = {k: v for k, v in seen.items() if v}
        if seen:
            out[r.id] = seen
    return out


def get_setting(session: Session, key: str) -> Any:
    """A library-wide preference (``settings``), or None where it is not set."""
    row = session.get(SettingRow, key)
    return None if row is None else row.value


def set_setting(session: Session, key: str, value: Any) -> None:
    """Set a library-wide preference; None clears it."""
    row = session.get(SettingRow, key)
    if value is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(SettingRow(key=key, value=value))
    else:
        row.value = value


def stored_bpm_range(session: Session) -> tuple[float, float] | None:
    """The DJ's BPM range the library keeps (``cratedig ingest --bpm-range``), or None (none
    set, or a stored value that is no range: logged, not fatal)."""
    from cratedig.analysis.rhythm import check_bpm_range

    stored = get_setting(session, "bpm_range")
    if not stored:
        return None
    try:
        return check_bpm_range(*stored)
    except (TypeError, ValueError, ParameterError):
        log.warning("the library's BPM range %r is not a range: ignored", stored)
        return None


def tempos_to_refold(
    session: Session,
    bpm_range: tuple[float, float] | None,
    *,
    analysis_version: int,
    changed: bool = True,
) -> frozenset[str]:
    """Current tracks (of ``analysis_version``) whose tempo the DJ's BPM range ``bpm_range``
    (None: no range) would read otherwise than their stored analysis does: a tempo outside
    the range, or a tempo an earlier, other range folded (read again, it may stay or move).

    Left out: a track whose user gave its tempo (``cratedig regrid``), one whose BPM tag was
    followed, and one this very range was already tried on (its
    ``estimates["tempo"]["range"]``): a range that cannot move a tempo is tried once.

    ``changed=False`` (no range given: the one the library keeps): the ingest that set it read
    again what other ranges had folded, so only tempi outside it are looked at (an indexed
    query). An ingest interrupted while setting a range is resumed by the same command.
    """
    from cratedig.analysis.rhythm import in_bpm_range

    q = select(TrackRow.id, TrackRow.tempo, TrackRow.estimates, TrackRow.grid_hint).where(
        TrackRow.analysis_version == analysis_version
    )
    if not changed and bpm_range is not None:
        q = q.where(or_(TrackRow.tempo < bpm_range[0], TrackRow.tempo > bpm_range[1]))
    want = [round(float(x), 2) for x in bpm_range] if bpm_range is not None else None
    out = set()
    for r in session.execute(q):
        if (r.grid_hint or {}).get("bpm") is not None:
            continue
        tempo = (r.estimates or {}).get("tempo") or {}
        if (tempo.get("tags") or {}).get("used"):
            continue
        tried = tempo.get("range") or {}
        before = [float(x) for x in tried.get("range", [])] if tried else None
        if before == want:
            continue  # analysed in this very range (or, with none, in none)
        folded = bool(tried) and abs(float(tried["bpm"]) - float(tried["heard"])) > 0.01
        outside = want is not None and not in_bpm_range(float(r.tempo), want[0], want[1])
        if folded or outside:
            out.add(r.id)
    return frozenset(out)


def grid_hints(
    session: Session, track_ids: Sequence[str] | None = None
) -> dict[str, dict[str, object]]:
    """What users gave of their tracks' grids (``cratedig regrid``): track id -> the JSON
    object of :class:`~cratedig.analysis.rhythm.GridHint`, for the tracks (of ``track_ids``,
    default all) that have one."""
    q = select(TrackRow.id, TrackRow.grid_hint).where(TrackRow.grid_hint.is_not(None))
    if track_ids is not None:
        q = q.where(TrackRow.id.in_(list(track_ids)))
    return {r.id: dict(r.grid_hint) for r in session.execute(q) if r.grid_hint}


def track_ingest_id(session: Session, track_id: str) -> str | None:
    """The ingest run that stored the track's analysis (None if unknown)."""
    return session.scalars(select(TrackRow.ingest_id).where(TrackRow.id == track_id)).first()


def set_grid_hint(session: Session, track_id: str, hint: Mapping[str, object] | None) -> None:
    """Keep ``hint`` (None: forget it) as what the user gave of the track's grid."""
    row = session.get(TrackRow, track_id)
    if row is None:
        raise ParameterError(f"track {track_id} is not in the library")
    row.grid_hint = dict(hint) if hint else None


def track_of_path(session: Session, path: str) -> str | None:
    """The track recorded at ``path`` (as ingest stored it: absolute), or None."""
    return session.scalars(select(FileRow.track_id).where(FileRow.path == path)).first()


def track_paths(session: Session, track_id: str) -> list[str]:
    """Paths recorded for a track, oldest first."""
    return list(
        session.scalars(
            select(FileRow.path).where(FileRow.track_id == track_id).order_by(FileRow.id)
        )
    )


def record_file(session: Session, *, path: str, track_id: str, size: int, mtime_ns: int) -> None:
    """Insert or update the row saying that ``path`` holds ``track_id``; clear its error."""
    row = session.scalars(select(FileRow).where(FileRow.path == path)).first()
    if row is None:
        session.add(
            FileRow(path=path, track_id=track_id, size=size, mtime_ns=mtime_ns, seen_at=now())
        )
    else:
        row.track_id, row.size, row.mtime_ns, row.seen_at = track_id, size, mtime_ns, now()
    session.execute(delete(IngestErrorRow).where(IngestErrorRow.path == path))


def forget_files(session: Session, paths: Sequence[str]) -> int:
    """Delete the rows of ``paths`` (the tracks stay); returns how many went."""
    gone = 0
    for i in range(0, len(paths), 500):
        chunk = list(paths[i : i + 500])
        result = cast(
            CursorResult[Any], session.execute(delete(FileRow).where(FileRow.path.in_(chunk)))
        )
        gone += result.rowcount or 0
    return gone


def record_error(
    session: Session,
    *,
    path: str,
    reason: str,
    size: int,
    mtime_ns: int,
    analysis_version: int = ANALYSIS_VERSION,
) -> None:
    """Record (or replace) why ``path`` failed; the path no longer holds any known track."""
    session.execute(delete(FileRow).where(FileRow.path == path))
    row = session.scalars(select(IngestErrorRow).where(IngestErrorRow.path == path)).first()
    if row is None:
        session.add(
            IngestErrorRow(
                path=path,
                reason=reason,
                size=size,
                mtime_ns=mtime_ns,
                analysis_version=analysis_version,
                at=now(),
            )
        )
    else:
        row.reason, row.size, row.mtime_ns = reason, size, mtime_ns
        row.analysis_version, row.at = analysis_version, now()


def ingest_errors(session: Session) -> list[KnownError]:
    """Every recorded failure, by path."""
    return sorted(known_errors(session).values(), key=lambda e: e.path)


# ---------------------------------------------------------------------------------------------
# Queries


_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(?:-|\.\.)\s*(\d+(?:\.\d+)?)?\s*$")


def parse_bpm_range(text: str) -> tuple[float, float]:
    """Parse ``"120-130"``, ``"120..130"``, ``"120-"`` or ``"128"`` (128 +- 0.5) into bounds.

    Examples
    --------
    >>> parse_bpm_range("120-130")
    (120.0, 130.0)
    >>> parse_bpm_range("128")
    (127.5, 128.5)
    """
    t = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        x = float(t)
        return (x - 0.5, x + 0.5)
    m = _RANGE.match(t)
    if not m or (m.group(1) is None and m.group(2) is None):
        raise ParameterError(f"bpm={text!r} must look like '120-130', '120..130' or '128'")
    lo = float(m.group(1)) if m.group(1) else 0.0
    hi = float(m.group(2)) if m.group(2) else float("inf")
    if lo > hi:
        raise ParameterError(f"bpm={text!r}: the lower bound is above the upper one")
    return (lo, hi)


def _loop_bars(estimates: Mapping[str, Any] | None) -> int | None:
    """Bars of a loop from a track's stored estimates (``grid.loop.bars``), else None."""
    loop = ((estimates or {}).get("grid") or {}).get("loop") or {}
    return int(loop["bars"]) if loop.get("bars") else None


@dataclass
class TrackSummary:
    """One line of ``cratedig tracks``."""

    track_id: str
    path: str
    paths: int
    format: str
    duration: float
    tempo: float
    time_signature: tuple[int, int]
    key: str
    mode: str
    camelot: str
    segments: int
    analysis_version: int
    quality: dict[str, Any] = field(default_factory=dict)
    # what the user gave of its grid (``cratedig regrid``), empty if nothing
    grid_given: dict[str, Any] = field(default_factory=dict)
    # what its file's tags say (artist, title, album, genre, year, bpm, key), empty if nothing
    tags: dict[str, Any] = field(default_factory=dict)
    # bars of a loop (cratedig.analysis.rhythm.fit_loop); None for a song
    loop_bars: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = round(self.duration, 3)
        out["tempo"] = round(self.tempo, 2)
        out["time_signature"] = list(self.time_signature)
        return out


def query_tracks(
    session: Session,
    *,
    key: str | None = None,
    bpm: tuple[float, float] | str | None = None,
    limit: int | None = None,
    quality: str | None = None,
    kind: str | None = None,
) -> list[TrackSummary]:
    """Tracks matching a key (any spelling :meth:`Key.parse` reads: "8A", "A minor", "Am")
    and a BPM range, slowest first; ``quality="low"`` keeps only tracks with a quality flag,
    ``"ok"`` only assessed tracks without one; ``kind="loops"`` only loops
    (:func:`cratedig.analysis.rhythm.fit_loop`), ``"songs"`` only the others.

    Examples
    --------
    >>> [t.camelot for t in query_tracks(session, key="8A", bpm="120-130")]  # doctest: +SKIP
    ['8A', '8A']
    """
    segs = (
        select(SegmentRow.track_id, func.count().label("n"))
        .group_by(SegmentRow.track_id)
        .subquery()
    )
    files = (
        select(FileRow.track_id, func.min(FileRow.path).label("path"), func.count().label("paths"))
        .group_by(FileRow.track_id)
        .subquery()
    )
    q = (
        select(TrackRow, segs.c.n, files.c.path, files.c.paths)
        .outerjoin(segs, segs.c.track_id == TrackRow.id)
        .outerjoin(files, files.c.track_id == TrackRow.id)
        .order_by(TrackRow.tempo, TrackRow.id)
    )
    if key:
        q = q.where(TrackRow.camelot == Key.parse(key).camelot)
    if bpm is not None:
        lo, hi = parse_bpm_range(bpm) if isinstance(bpm, str) else bpm
        q = q.where(TrackRow.tempo >= lo)
        if np.isfinite(hi):
            q = q.where(TrackRow.tempo <= hi)
    if quality not in (None, "low", "ok"):
        raise ParameterError(f"quality={quality!r} must be 'low' or 'ok'")
    if kind not in (None, "loops", "songs"):
        raise ParameterError(f"kind={kind!r} must be 'loops' or 'songs'")
    if limit is not None and quality is None and kind is None:
        q = q.limit(limit)
    rows = [
        TrackSummary(
            track_id=t.id,
            path=path or "",
            paths=int(paths or 0),
            format=t.format,
            duration=t.duration,
            tempo=t.tempo,
            time_signature=(t.beats_per_bar, t.beat_unit),
            key=t.key,
            mode=t.mode,
            camelot=t.camelot,
            segments=int(n or 0),
            analysis_version=t.analysis_version,
            quality=dict(t.quality or {}),
            grid_given=dict(t.grid_hint or {}),
            tags=dict(t.tags or {}),
            loop_bars=_loop_bars(t.estimates),
        )
        for t, n, path, paths in session.execute(q).all()
    ]
    # JSON is filtered here, not in SQL: SQLite and PostgreSQL spell JSON paths differently,
    # and a library holds thousands of tracks, not millions.
    if kind is not None:
        rows = [r for r in rows if (r.loop_bars is not None) == (kind == "loops")]
    if quality is not None:
        rows = [r for r in rows if r.quality and (r.quality.get("level") == quality)]
    if limit is not None and (quality is not None or kind is not None):
        rows = rows[:limit]
    return rows


@dataclass
class LibraryStats:
    """What ``cratedig stats`` prints."""

    tracks: int
    segments: int
    files: int
    duplicate_tracks: int
    missing_tracks: int  # gone: no file recorded any more (the next ingest or prune drops them)
    stale_tracks: int
    errors: int
    hours: float
    formats: dict[str, int]
    camelot: dict[str, int]
    tempo_min: float | None
    tempo_max: float | None
    #: Tracks per quality flag (``"fake_lossless": 3``...), and ``"low"``/``"ok"``/``"unassessed"``.
    quality: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["hours"] = round(self.hours, 3)
        return out


def library_stats(session: Session, *, analysis_version: int = ANALYSIS_VERSION) -> LibraryStats:
    """Counts and distributions over the whole library."""

    def count(q: Any) -> int:
        return int(session.execute(q).scalar_one() or 0)

    dup = select(FileRow.track_id).group_by(FileRow.track_id).having(func.count() > 1).subquery()
    tempo_min, tempo_max, seconds = session.execute(
        select(func.min(TrackRow.tempo), func.max(TrackRow.tempo), func.sum(TrackRow.duration))
    ).one()
    has_file = select(FileRow.id).where(FileRow.track_id == TrackRow.id).exists()
    return LibraryStats(
        tracks=count(select(func.count()).select_from(TrackRow).where(has_file)),
        segments=count(select(func.count()).select_from(SegmentRow)),
        files=count(select(func.count()).select_from(FileRow)),
        duplicate_tracks=count(select(func.count()).select_from(dup)),
        missing_tracks=count(select(func.count()).select_from(TrackRow).where(~has_file)),
        stale_tracks=count(
            select(func.count())
            .select_from(TrackRow)
            .where(TrackRow.analysis_version != analysis_version)
        ),
        errors=count(select(func.count()).select_from(IngestErrorRow)),
        hours=float(seconds or 0.0) / 3600.0,
        formats={
            f: int(n)
            for f, n in session.execute(
                select(TrackRow.format, func.count())
                .group_by(TrackRow.format)
                .order_by(TrackRow.format)
            ).all()
        },
        camelot={
            c: int(n)
            for c, n in session.execute(
                select(TrackRow.camelot, func.count())
                .group_by(TrackRow.camelot)
                .order_by(TrackRow.camelot)
            ).all()
        },
        tempo_min=float(tempo_min) if tempo_min is not None else None,
        tempo_max=float(tempo_max) if tempo_max is not None else None,
        quality=quality_counts(session),
    )


# ---------------------------------------------------------------------------------------------
# Ratings and per-track aggregates for the application layer (cratedig.workflows)


def track_energies(session: Session) -> dict[str, float]:
    """Mean phrase energy (0-1) of every track that has segments."""
    return {
        t: float(e)
        for t, e in session.execute(
            select(SegmentRow.track_id, func.avg(SegmentRow.energy)).group_by(SegmentRow.track_id)
        ).all()
        if e is not None
    }


def add_rating(
    session: Session,
    *,
    query_segment: str,
    candidate_segment: str,
    score: int,
    semitones: int = 0,
    tempo_ratio: float = 1.0,
    offset_beats: int = 0,
    comment: str | None = None,
    analysis_version: int = ANALYSIS_VERSION,
) -> int:
    """Insert a rating (score 1-5, checked by the table too); its id.

    Each side's track and time span are recorded from the segments table, so that the rating
    can be re-attached when a re-analysis moves the segments (:func:`reattach_ratings`). A query
    segment not in the library (a file matched on the fly) keeps its track id (the id's prefix)
    and no span until that track is ingested.
    """
    spans = {
        sid: (tid, start, end)
        for sid, tid, start, end in session.execute(
            select(SegmentRow.id, SegmentRow.track_id, SegmentRow.start, SegmentRow.end).where(
                SegmentRow.id.in_([query_segment, candidate_segment])
            )
        ).all()
    }
    q = spans.get(query_segment, (query_segment[:TRACK_ID_LENGTH], None, None))
    c = spans.get(candidate_segment, (candidate_segment[:TRACK_ID_LENGTH], None, None))
    row = RatingRow(
        query_segment_id=query_segment,
        candidate_segment_id=candidate_segment,
        score=score,
        semitones=semitones,
        tempo_ratio=tempo_ratio,
        offset_beats=offset_beats,
        comment=comment,
        analysis_version=analysis_version,
        created_at=now(),
        query_track_id=q[0],
        query_start=q[1],
        query_end=q[2],
        candidate_track_id=c[0],
        candidate_start=c[1],
        candidate_end=c[2],
        state="attached",
    )
    session.add(row)
    session.flush()
    return int(row.id)


def ratings(session: Session, *, orphaned: bool | None = None) -> list[RatingRow]:
    """Every rating row, oldest first; only the orphaned ones (or only the others) when
    ``orphaned`` is True (False)."""
    q = select(RatingRow).order_by(RatingRow.id)
    if orphaned is not None:
        q = q.where((RatingRow.state == "orphaned") == orphaned)
    return list(session.scalars(q).all())


#: Share of a rated time span that a new segment must cover for a rating to follow it after a
#: re-analysis; below it the rating is orphaned (kept, with the reason), never guessed.
REATTACH_MIN_COVER = 0.5
#: Rating states: never moved, followed its music to a new segment at least once, or lost it.
RATING_STATES: tuple[str, ...] = ("attached", "reattached", "orphaned")
RATING_SIDES: tuple[str, ...] = ("query", "candidate")
# Spans closer than this (seconds) are the same span (float32 beat times, rounding).
_SAME_SPAN_S = 1e-3


def segment_spans(
    session: Session, track_ids: Sequence[str]
) -> dict[str, list[tuple[str, float, float]]]:
    """``track id -> [(segment id, start, end), ...]`` in segment order."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for i in range(0, len(track_ids), _IN_CHUNK):
        rows = session.execute(
            select(SegmentRow.track_id, SegmentRow.id, SegmentRow.start, SegmentRow.end)
            .where(SegmentRow.track_id.in_(track_ids[i : i + _IN_CHUNK]))
            .order_by(SegmentRow.track_id, SegmentRow.index)
        ).all()
        for tid, sid, start, end in rows:
            out.setdefault(tid, []).append((sid, float(start), float(end)))
    return out


def best_covering(
    spans: Sequence[tuple[str, float, float]], start: float, end: float
) -> tuple[str | None, float]:
    """The segment of ``spans`` most like ``[start, end]`` and the share of it that it covers.

    The most like is the one of largest intersection over union, so a segment of the same
    length in the same place beats a longer one that merely contains the span; the cover
    (intersection / rated length) decides whether it is close enough
    (:data:`REATTACH_MIN_COVER`).
    """
    best, best_iou, best_cover = None, 0.0, 0.0
    length = max(end - start, 1e-9)
    for sid, s, e in spans:
        inter = min(e, end) - max(s, start)
        if inter <= 0:
            continue
        iou = inter / (max(e, end) - min(s, start))
        if iou > best_iou:
            best, best_iou, best_cover = sid, iou, min(inter / length, 1.0)
    return best, best_cover


def _refresh_state(row: RatingRow) -> None:
    if row.query_orphaned or row.candidate_orphaned:
        row.state = "orphaned"
    else:
        row.state = "reattached" if row.reattachments else "attached"


def _ratings_of_tracks(session: Session, track_ids: Sequence[str]) -> list[RatingRow]:
    out: dict[int, RatingRow] = {}
    for i in range(0, len(track_ids), _IN_CHUNK):
        chunk = track_ids[i : i + _IN_CHUNK]
        for row in session.scalars(
            select(RatingRow).where(
                RatingRow.query_track_id.in_(chunk) | RatingRow.candidate_track_id.in_(chunk)
            )
        ):
            out[row.id] = row
    return [out[k] for k in sorted(out)]


@dataclass
class Reattachment:
    """What :func:`reattach_ratings` did to the ratings of one track."""

    kept: int = 0  # same segment, same span
    moved: int = 0  # followed their music to another segment (or to a moved one)
    orphaned: int = 0  # no segment covers the rated span any more


def reattach_ratings(
    session: Session,
    track_id: str,
    *,
    previous: Sequence[tuple[str, float, float]] = (),
) -> Reattachment:
    """Point every rating of ``track_id`` at the segment now covering its rated time span.

    Called after the track's segments were replaced (:func:`store_analysis`). For each rating
    side on this track, the new segment with the largest overlap (intersection over union) with
    the span rated becomes its segment if it covers at least :data:`REATTACH_MIN_COVER` of it;
    the move is logged in ``reattachments`` (when, side, from, to, cover, analysis version).
    Otherwise the side is orphaned with the reason: the rating is kept and never points at
    other music. An orphaned side whose music is back (the track re-ingested) is restored.

    Parameters
    ----------
    session : Session
    track_id : str
    previous : sequence of (segment id, start, end)
        The track's segments before the replacement (to tell a moved segment from a kept one).
    """
    done = Reattachment()
    rows = _ratings_of_tracks(session, [track_id])
    if not rows:
        return done
    current = segment_spans(session, [track_id]).get(track_id, [])
    by_id = {sid: (s, e) for sid, s, e in current}
    before = {sid: (s, e) for sid, s, e in previous}
    track = session.get(TrackRow, track_id)
    version = int(track.analysis_version) if track is not None else None
    for row in rows:
        outcome = "kept"
        for side in RATING_SIDES:
            if getattr(row, f"{side}_track_id") != track_id:
                continue
            result = _reattach_side(row, side, current, by_id, before, version)
            if result == "orphaned" or (result == "moved" and outcome == "kept"):
                outcome = result
        _refresh_state(row)
        setattr(done, outcome, getattr(done, outcome) + 1)
    return done


def _reattach_side(
    row: RatingRow,
    side: str,
    current: list[tuple[str, float, float]],
    by_id: dict[str, tuple[float, float]],
    before: dict[str, tuple[float, float]],
    version: int | None,
) -> str:
    sid = getattr(row, f"{side}_segment_id")
    track_id = getattr(row, f"{side}_track_id")
    start, end = getattr(row, f"{side}_start"), getattr(row, f"{side}_end")
    if start is None or end is None:
        # A span never recorded (a query matched on the fly, now ingested): the old segment,
        # else the new one of the same id, is what was rated.
        span = before.get(sid) or by_id.get(sid)
        if span is None:
            setattr(
                row,
                f"{side}_orphaned",
                f"{side} segment {sid}: its time span was never recorded and track "
                f"{track_id} has no segment of that id any more",
            )
            return "orphaned"
        start, end = span
        setattr(row, f"{side}_start", start)
        setattr(row, f"{side}_end", end)
    best, cover = best_covering(current, start, end)
    if best is None or cover < REATTACH_MIN_COVER:
        what = f"best covers {cover:.0%}" if best is not None else "none overlaps it"
        setattr(
            row,
            f"{side}_orphaned",
            f"{side} segment {sid}: after re-analysis (v{version}) no segment of track "
            f"{track_id} covers {REATTACH_MIN_COVER:.0%} of the rated {start:.2f}-{end:.2f} s "
            f"({what})"
            if current
            else f"{side} segment {sid}: track {track_id} has no segments after re-analysis "
            f"(v{version})",
        )
        return "orphaned"
    was_orphaned = getattr(row, f"{side}_orphaned") is not None
    old, new = before.get(sid), by_id[best]
    moved = (
        was_orphaned
        or best != sid
        or (old is not None and max(abs(old[0] - new[0]), abs(old[1] - new[1])) > _SAME_SPAN_S)
    )
    setattr(row, f"{side}_orphaned", None)
    if not moved:
        return "kept"
    setattr(row, f"{side}_segment_id", best)
    row.reattachments = [
        *(row.reattachments or []),
        {
            "at": now().isoformat(),
            "side": side,
            "from": sid,
            "to": best,
            "cover": round(cover, 3),
            "span": [round(new[0], 3), round(new[1], 3)],
            "analysis_version": version,
            **({"restored": True} if was_orphaned else {}),
        },
    ]
    return "moved"


def orphan_ratings_of_tracks(session: Session, track_ids: Sequence[str], *, reason: str) -> int:
    """Mark every rating side on ``track_ids`` orphaned (``"<side> track <id> <reason>"``);
    the ratings stay. Returns how many ratings were touched."""
    rows = _ratings_of_tracks(session, list(track_ids))
    gone = set(track_ids)
    for row in rows:
        for side in RATING_SIDES:
            tid = getattr(row, f"{side}_track_id")
            if tid in gone:
                setattr(row, f"{side}_orphaned", f"{side} track {tid} {reason}")
        _refresh_state(row)
    session.flush()
    return len(rows)


def quality_counts(session: Session) -> dict[str, int]:
    """Tracks per quality level (``low``, ``ok``, ``unassessed``) and per flag."""
    counts: Counter[str] = Counter()
    for (q,) in session.execute(select(TrackRow.quality)).all():
        if not q:
            counts["unassessed"] += 1
            continue
        counts[str(q.get("level", "ok"))] += 1
        counts.update(str(f) for f in cast(list[str], q.get("flags") or []))
    return dict(sorted(counts.items()))


def track_qualities(session: Session) -> dict[str, dict[str, Any]]:
    """``track id -> quality record`` of every assessed track."""
    return {
        tid: dict(q) for tid, q in session.execute(select(TrackRow.id, TrackRow.quality)).all() if q
    }


# ---------------------------------------------------------------------------------------------
# Watching the library (drift, reports)


def tracks_since(
    session: Session, *, since: datetime | None = None, ingest_id: str | None = None
) -> list[str]:
    """Ids of current tracks analysed at or after ``since`` and/or stored by ingest
    ``ingest_id``, oldest first."""
    q = select(TrackRow.id).where(TrackRow.analysis_version == ANALYSIS_VERSION)
    if since is not None:
        q = q.where(TrackRow.analysed_at >= since)
    if ingest_id is not None:
        q = q.where(TrackRow.ingest_id == ingest_id)
    return list(session.scalars(q.order_by(TrackRow.analysed_at, TrackRow.id)))


def analysed_span(session: Session, track_ids: Sequence[str]) -> tuple[datetime, datetime] | None:
    """Earliest and latest ``analysed_at`` of ``track_ids`` (None if none is known)."""
    lo: datetime | None = None
    hi: datetime | None = None
    for i in range(0, len(track_ids), _IN_CHUNK):
        a, b = session.execute(
            select(func.min(TrackRow.analysed_at), func.max(TrackRow.analysed_at)).where(
                TrackRow.id.in_(track_ids[i : i + _IN_CHUNK])
            )
        ).one()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return (lo, hi) if lo is not None and hi is not None else None


def errors_between(session: Session, start: datetime, end: datetime | None = None) -> int:
    """Ingest failures recorded in [start, end]."""
    q = select(func.count()).select_from(IngestErrorRow).where(IngestErrorRow.at >= start)
    if end is not None:
        q = q.where(IngestErrorRow.at <= end)
    return int(session.execute(q).scalar_one() or 0)


@dataclass(frozen=True)
class RatingFact:
    """A rating reduced to what watching the model needs."""

    query_segment_id: str
    candidate_segment_id: str
    score: int
    created_at: datetime


def rating_facts(session: Session) -> list[RatingFact]:
    """Every rating, oldest first."""
    rows = session.execute(
        select(
            RatingRow.query_segment_id,
            RatingRow.candidate_segment_id,
            RatingRow.score,
            RatingRow.created_at,
        ).order_by(RatingRow.created_at, RatingRow.id)
    ).all()
    return [RatingFact(q, c, int(s), t) for q, c, s, t in rows]


def track_overview(session: Session) -> list[dict[str, Any]]:
    """One small dict per track for reports: id, tempo, meter, camelot, key clarity, format,
    quality, analysed_at."""
    rows = session.execute(
        select(
            TrackRow.id,
            TrackRow.tempo,
            TrackRow.beats_per_bar,
            TrackRow.camelot,
            TrackRow.key_clarity,
            TrackRow.format,
            TrackRow.quality,
            TrackRow.analysed_at,
        ).order_by(TrackRow.id)
    ).all()
    return [
        {
            "id": r[0],
            "tempo": float(r[1]),
            "meter": int(r[2]),
            "camelot": r[3],
            "key_clarity": float(r[4]),
            "format": r[5],
            "quality": dict(r[6] or {}),
            "analysed_at": r[7],
        }
        for r in rows
    ]


def all_models(session: Session, kind: str | None = None) -> list[ModelInfo]:
    """Every model (of ``kind``), oldest first."""
    q = select(ModelRow).order_by(ModelRow.kind, ModelRow.version)
    if kind is not None:
        q = q.where(ModelRow.kind == kind)
    return [
        ModelInfo(
            kind=r.kind,
            version=r.version,
            trained_at=r.trained_at,
            parameters=dict(r.parameters),
            metrics=dict(r.metrics),
            artefact=r.artefact,
        )
        for r in session.scalars(q)
    ]


def mean_bar_chroma(chroma: np.ndarray) -> np.ndarray:
    """Mean of a segment's per-bar chroma rows (bars x 12) over the bars that have content."""
    c = np.asarray(chroma, dtype=np.float64).reshape(-1, 12)
    live = c.sum(axis=1) > 1e-6
    return c[live].mean(axis=0) if live.any() else np.zeros(12)


def drift_columns(session: Session, track_ids: Sequence[str]) -> dict[str, Any]:
    """Per-segment columns of ``track_ids`` for :func:`cratedig.learn.drift.table_from_columns`
    (tempo, key index, energy, balance, mean bar chroma, rhythm padded to 16 steps, its length,
    key clarity), read without building Segment records."""
    q = (
        select(
            SegmentRow.track_id,
            SegmentRow.tempo,
            SegmentRow.camelot,
            SegmentRow.energy,
            SegmentRow.key_clarity,
            FeatureRow.chroma,
            FeatureRow.rhythm,
            FeatureRow.rhythm_steps,
            FeatureRow.spectral_balance,
        )
        .join(FeatureRow, FeatureRow.segment_id == SegmentRow.id)
        .order_by(SegmentRow.track_id, SegmentRow.index)
    )
    rows: list[Any] = []
    ids = sorted(set(track_ids))
    for i in range(0, len(ids), _IN_CHUNK):
        rows.extend(session.execute(q.where(SegmentRow.track_id.in_(ids[i : i + _IN_CHUNK]))))
    n = len(rows)
    key_of = {k.camelot: k.index for k in (Key.from_index(i) for i in range(24))}
    rhythm = np.zeros((n, 16))
    steps = np.zeros(n, np.int64)
    chroma = np.zeros((n, 12))
    for i, r in enumerate(rows):
        x = np.frombuffer(r.rhythm, dtype=_F32)[:16]
        rhythm[i, : len(x)] = x
        steps[i] = len(x)
        chroma[i] = mean_bar_chroma(np.frombuffer(r.chroma, dtype=_F32))
    return {
        "track_ids": [r.track_id for r in rows],
        "tempo": np.array([r.tempo for r in rows], dtype=np.float64),
        "key": np.array([key_of[r.camelot] for r in rows], dtype=np.int64),
        "energy": np.array([r.energy for r in rows], dtype=np.float64),
        "balance": (
            np.frombuffer(b"".join(r.spectral_balance for r in rows), dtype=_F32)
            .astype(np.float64)
            .reshape(n, 3)
        ),
        "mean_chroma": chroma,
        "rhythm": rhythm,
        "steps": steps,
        "key_clarity": np.array([r.key_clarity for r in rows], dtype=np.float64),
    }
