"""Beat-level chroma on features; stems of a track.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Tracks analysed before this revision have no beat chroma (NULL): analysis version 2 marks
them stale, so the next ingest re-analyses them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("features") as batch:
        batch.add_column(sa.Column("beat_chroma", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("beat_rows", sa.Integer(), nullable=True))
    op.create_table(
        "stems",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("stream", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_stems_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stems")),
        sa.UniqueConstraint("track_id", "name", name="uq_stems_track_name"),
    )
    op.create_index(op.f("ix_stems_track_id"), "stems", ["track_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stems_track_id"), table_name="stems")
    op.drop_table("stems")
    with op.batch_alter_table("features") as batch:
        batch.drop_column("beat_rows")
        batch.drop_column("beat_chroma")
