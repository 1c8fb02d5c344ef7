"""Initial schema: tracks, files, segments, features, ingest errors, ratings, models.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_errors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_errors")),
        sa.UniqueConstraint("path", name=op.f("uq_ingest_errors_path")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artefact", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("kind", "version", name="uq_models_kind_version"),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("query_segment_id", sa.String(length=40), nullable=False),
        sa.Column("candidate_segment_id", sa.String(length=40), nullable=False),
        sa.Column("tempo_ratio", sa.Float(), nullable=False),
        sa.Column("semitones", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_ratings_score_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
    )
    op.create_index(op.f("ix_ratings_candidate_segment_id"), "ratings", ["candidate_segment_id"])
    op.create_index(op.f("ix_ratings_query_segment_id"), "ratings", ["query_segment_id"])

    op.create_table(
        "tracks",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("tempo", sa.Float(), nullable=False),
        sa.Column("beats_per_bar", sa.Integer(), nullable=False),
        sa.Column("beat_unit", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=2), nullable=False),
        sa.Column("mode", sa.String(length=5), nullable=False),
        sa.Column("camelot", sa.String(length=3), nullable=False),
        sa.Column("tuning", sa.Float(), nullable=False),
        sa.Column("key_clarity", sa.Float(), nullable=False),
        sa.Column("loudness", sa.Float(), nullable=False),
        sa.Column("beats", sa.LargeBinary(), nullable=False),
        sa.Column("downbeats", sa.LargeBinary(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
    )
    op.create_index(op.f("ix_tracks_analysis_version"), "tracks", ["analysis_version"])
    op.create_index(op.f("ix_tracks_camelot"), "tracks", ["camelot"])
    op.create_index(op.f("ix_tracks_tempo"), "tracks", ["tempo"])

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_files_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("path", name=op.f("uq_files_path")),
    )
    op.create_index(op.f("ix_files_track_id"), "files", ["track_id"])

    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("bar", sa.Integer(), nullable=False),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("section", sa.Integer(), nullable=False),
        sa.Column("tempo", sa.Float(), nullable=False),
        sa.Column("key", sa.String(length=2), nullable=False),
        sa.Column("mode", sa.String(length=5), nullable=False),
        sa.Column("camelot", sa.String(length=3), nullable=False),
        sa.Column("energy", sa.Float(), nullable=False),
        sa.Column("rms_db", sa.Float(), nullable=False),
        sa.Column("loudness", sa.Float(), nullable=False),
        sa.Column("key_clarity", sa.Float(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_segments_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("track_id", "index", name="uq_segments_track_index"),
    )
    op.create_index(op.f("ix_segments_camelot"), "segments", ["camelot"])
    op.create_index(op.f("ix_segments_cluster_id"), "segments", ["cluster_id"])
    op.create_index(op.f("ix_segments_tempo"), "segments", ["tempo"])

    op.create_table(
        "features",
        sa.Column("segment_id", sa.String(length=40), nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=False),
        sa.Column("chroma", sa.LargeBinary(), nullable=False),
        sa.Column("chroma_bars", sa.Integer(), nullable=False),
        sa.Column("rhythm", sa.LargeBinary(), nullable=False),
        sa.Column("rhythm_steps", sa.Integer(), nullable=False),
        sa.Column("spectral_balance", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_features_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_features_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_features")),
    )
    op.create_index(op.f("ix_features_track_id"), "features", ["track_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_features_track_id"), table_name="features")

    op.drop_table("features")
    op.drop_index(op.f("ix_segments_tempo"), table_name="segments")
    op.drop_index(op.f("ix_segments_cluster_id"), table_name="segments")
    op.drop_index(op.f("ix_segments_camelot"), table_name="segments")

    op.drop_table("segments")
    op.drop_index(op.f("ix_files_track_id"), table_name="files")

    op.drop_table("files")
    op.drop_index(op.f("ix_tracks_tempo"), table_name="tracks")
    op.drop_index(op.f("ix_tracks_camelot"), table_name="tracks")
    op.drop_index(op.f("ix_tracks_analysis_version"), table_name="tracks")

    op.drop_table("tracks")
    op.drop_index(op.f("ix_ratings_query_segment_id"), table_name="ratings")
    op.drop_index(op.f("ix_ratings_candidate_segment_id"), table_name="ratings")

    op.drop_table("ratings")
    op.drop_table("models")
    op.drop_table("ingest_errors")
