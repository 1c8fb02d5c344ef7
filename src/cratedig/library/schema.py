"""The library's tables (SQLAlchemy 2 typed ORM). Migrations in ``migrations/`` create them.

Tables
------
tracks
    One row per distinct decoded audio (``id`` = first 16 hex digits of its content hash) and
    the track-level analysis. Beat and downbeat times are float32 arrays stored as bytes.
files
    Where a track lives on disk: ``path`` -> ``track_id`` with the size and mtime seen, so an
    unchanged file is skipped without decoding. Several paths per track are exact duplicates.
segments
    Phrase segments (``id`` = ``<trackid>_<n>``) and their scalar attributes.
features
    One row per segment: per-bar chroma (bars x 12), per-beat chroma, rhythm pattern and spectral balance as
    little-endian float32 bytes with their shape, so a matcher loads a feature matrix with one
    query and ``numpy.frombuffer``.
stems
    Stems of a track (``<name>.stems/`` folder beside the file, or streams of an NI
    ``.stem.mp4``), by stem name.
ingest_errors
    The latest failure per path with its reason, size and mtime (an unchanged broken file is
    not retried unless asked).
ratings
    A user's 1-5 judgement of a (query segment, candidate segment, transform). Deliberately no
    foreign key to ``segments``: re-analysing a track replaces its segments, and ratings are
    user data that must survive that. Each side also keeps its track and the time span rated,
    so a re-analysis re-attaches the rating to the segment covering that span, or marks it
    orphaned with the reason (``state``); ``analysis_version`` says which analysis it was given
    under.
models
    Trained models (kind, version, parameters, metrics); artefacts live on disk beside the DB.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints let Alembic alter them later (SQLite batch mode needs names to drop them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TRACK_ID_LENGTH = 16
SEGMENT_ID_LENGTH = 40


# File names are bytes on POSIX; Python hands the bytes that are not UTF-8 over as lone
# surrogates (U+DC80..U+DCFF, PEP 383 "surrogateescape"), which no database text column takes.
# Stored, each becomes a private-use character U+F780..U+F7FF; a genuine private-use character
# of U+F700..U+F7FF is stored behind the escape U+F700. The mapping is one-to-one, so any path
# the OS allows goes in and comes back out identical, and valid UTF-8 names are stored as is.
_ESCAPE = "\uf700"
_TO_DB = re.compile("[\udc80-\udcff\uf700-\uf7ff]")
_FROM_DB = re.compile("\uf700(.)|[\uf780-\uf7ff]", re.DOTALL)


def path_to_db(path: str) -> str:
    """``path`` (any name the OS allows, via :func:`os.fsdecode`) as storable text.

    Examples
    --------
    >>> path_to_db("/music/caf\udce9.mp3")
    '/music/caf\uf7e9.mp3'
    >>> path_from_db(path_to_db("/music/caf\udce9.mp3")) == "/music/caf\udce9.mp3"
    True
    """

    def sub(m: re.Match[str]) -> str:
        c = m.group()
        if "\udc80" <= c <= "\udcff":
            return chr(ord(c) - 0xDC00 + 0xF700)
        return _ESCAPE + c

    return _TO_DB.sub(sub, path)


def path_from_db(text: str) -> str:
    """Inverse of :func:`path_to_db`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return m.group(1)
        return chr(ord(m.group()) - 0xF700 + 0xDC00)

    return _FROM_DB.sub(sub, text)


class FsPath(TypeDecorator[str]):
    """A file path column: text in the database, any OS file name in Python."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return path_to_db(value) if isinstance(value, str) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return path_from_db(value) if isinstance(value, str) else value


class SafeText(TypeDecorator[str]):
    """Free text (an error reason) that may quote a file name: stored with any lone surrogate
    written as ``\\udcXX`` (readable, never refused by the database)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value


class Base(DeclarativeBase):
    """Declarative base whose metadata carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TrackRow(Base):
    """A distinct piece of audio and its track-level analysis."""

    __tablename__ = "tracks"

    id: Mapped[str] = mapped_column(String(TRACK_ID_LENGTH), primary_key=True)
    format: Mapped[str] = mapped_column(String(32))
    duration: Mapped[float] = mapped_column(Float)  # seconds
    sample_rate: Mapped[int] = mapped_column(Integer)  # of the source file, Hz
    channels: Mapped[int] = mapped_column(Integer)
    tempo: Mapped[float] = mapped_column(Float, index=True)  # BPM
    beats_per_bar: Mapped[int] = mapped_column(Integer)
    beat_unit: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(2))  # tonic name with sharps: "A", "F#"
    mode: Mapped[str] = mapped_column(String(5))  # "major" | "minor"
    camelot: Mapped[str] = mapped_column(String(3), index=True)
    tuning: Mapped[float] = mapped_column(Float)  # cents off A440
    key_clarity: Mapped[float] = mapped_column(Float)
    loudness: Mapped[float] = mapped_column(Float)  # integrated LUFS
    beats: Mapped[bytes] = mapped_column(LargeBinary)  # float32 seconds
    downbeats: Mapped[bytes] = mapped_column(LargeBinary)  # float32 seconds
    sections: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    # Confidence and runner-up per estimate (tempo, meter, downbeat, key); NULL before v4.
    estimates: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # Input quality (bandwidth, fake lossless, clipping, flags...); NULL before migration 0004.
    quality: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # What the user gave of the grid (``cratedig regrid``; migration 0007): every re-analysis
    # lays it again. NULL where the analysis' own grid stands.
    grid_hint: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # What the file's tags say (artist, title, album, genre, year, bpm, key; migration 0008):
    # read at ingest, refreshed when the file is retagged. NULL where there are none.
    tags: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    # The audio fingerprint (cratedig.analysis.fingerprint; migration 0010): the same
    # recording in another file is never a partner. NULL for analyses stored before it.
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The ingest run that stored this analysis (``cratedig drift --batch``).
    ingest_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    analysis_version: Mapped[int] = mapped_column(Integer, index=True)
    analysed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    files: Mapped[list[FileRow]] = relationship(back_populates="track", passive_deletes=True)
    segments: Mapped[list[SegmentRow]] = relationship(
        back_populates="track", passive_deletes=True, order_by="SegmentRow.index"
    )


class FileRow(Base):
    """A path on disk holding a track's audio (several paths = duplicates)."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)  # bytes
    mtime_ns: Mapped[int] = mapped_column(BigInteger)  # st_mtime_ns
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    track: Mapped[TrackRow] = relationship(back_populates="files")


class SegmentRow(Base):
    """A phrase segment of a track."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("track_id", "index", name="uq_segments_track_index"),)

    id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH), primary_key=True)
    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))  # "bar" | "phrase" | "section"
    start: Mapped[float] = mapped_column(Float)  # seconds
    end: Mapped[float] = mapped_column(Float)  # seconds
    bar: Mapped[int] = mapped_column(Integer)
    bars: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))
    section: Mapped[int] = mapped_column(Integer)
    tempo: Mapped[float] = mapped_column(Float, index=True)
    key: Mapped[str] = mapped_column(String(2))
    mode: Mapped[str] = mapped_column(String(5))
    camelot: Mapped[str] = mapped_column(String(3), index=True)
    energy: Mapped[float] = mapped_column(Float)
    rms_db: Mapped[float] = mapped_column(Float)
    loudness: Mapped[float] = mapped_column(Float)
    key_clarity: Mapped[float] = mapped_column(Float)
    cluster_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)

    track: Mapped[TrackRow] = relationship(back_populates="segments")
    features: Mapped[FeatureRow] = relationship(
        back_populates="segment", passive_deletes=True, uselist=False
    )


class FeatureRow(Base):
    """A segment's feature vectors as float32 bytes (little-endian) with their shapes."""

    __tablename__ = "features"

    segment_id: Mapped[str] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    # Repeated from the segment so that one indexed query loads a track's (or all) features.
    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    chroma: Mapped[bytes] = mapped_column(LargeBinary)  # shape (chroma_bars, 12)
    chroma_bars: Mapped[int] = mapped_column(Integer)
    rhythm: Mapped[bytes] = mapped_column(LargeBinary)  # shape (rhythm_steps,)
    rhythm_steps: Mapped[int] = mapped_column(Integer)
    spectral_balance: Mapped[bytes] = mapped_column(LargeBinary)  # shape (3,)
    # One chroma row per beat, shape (beat_rows, 12); NULL for rows of analysis version 1.
    beat_chroma: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    beat_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)

    segment: Mapped[SegmentRow] = relationship(back_populates="features")


class StemRow(Base):
    """A stem (vocals, drums, bass, other...) of a track: a file beside it or a stream in it."""

    __tablename__ = "stems"
    __table_args__ = (UniqueConstraint("track_id", "name", name="uq_stems_track_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(FsPath)
    # Audio stream index inside ``path`` (NI .stem.mp4); None for a stem file of its own.
    stream: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IngestErrorRow(Base):
    """The latest reason a path could not be ingested."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    reason: Mapped[str] = mapped_column(SafeText)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    analysis_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RatingRow(Base):
    """A user's score of how well a candidate segment mixes with a query segment."""

    __tablename__ = "ratings"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_segment_id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH), index=True)
    candidate_segment_id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH), index=True)
    tempo_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    semitones: Mapped[int] = mapped_column(Integer, default=0)
    # How many of its beats the candidate was moved when it was heard (migration 0006).
    offset_beats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    analysis_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What was rated, so that a rating follows its music when a re-analysis renumbers or moves
    # segments (migration 0005): each side's track and time span (seconds) at rating time,
    # the reason a side could not be re-attached, the state and the log of re-attachments.
    query_track_id: Mapped[str | None] = mapped_column(
        String(TRACK_ID_LENGTH), nullable=True, index=True
    )
    query_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    query_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    query_orphaned: Mapped[str | None] = mapped_column(Text, nullable=True)
    candidate_track_id: Mapped[str | None] = mapped_column(
        String(TRACK_ID_LENGTH), nullable=True, index=True
    )
    candidate_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    candidate_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    candidate_orphaned: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "attached" | "reattached" | "orphaned"
    state: Mapped[str] = mapped_column(
        String(16), index=True, default="attached", server_default="attached"
    )
    reattachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class ModelRow(Base):
    """A trained model: what it is, when it was trained, with what, and how well it did."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_models_kind_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    parameters: Mapped[dict[str, object]] = mapped_column(JSON)
    metrics: Mapped[dict[str, object]] = mapped_column(JSON)
    artefact: Mapped[str | None] = mapped_column(Text, nullable=True)  # relative to the DB dir


class SettingRow(Base):
    """A library-wide preference, kept across ingests: ``key`` -> a JSON value
    (``bpm_range``: the DJ's BPM range, ``[lo, hi]``, set by ``cratedig ingest --bpm-range``)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
