"""A track keeps what its file's tags say: ``tracks.tags``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

A DJ knows a track by artist and title, not by its file name. The JSON object of the tags
that say something (``{"artist": "...", "title": "...", "bpm": 128.0, "key": "8A"}``, see
:func:`cratedig.audio.tags.read_tags`) is stored with the track at ingest and refreshed when
the file is retagged; NULL for tracks stored before this revision or files without tags.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not in batch mode (see 0007): dropping the rebuilt table would cascade to the segments.
    op.drop_column("tracks", "tags")
