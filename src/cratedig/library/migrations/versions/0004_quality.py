"""Input quality per track and the ingest batch that stored it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

``tracks.quality`` is a JSON object (:func:`cratedig.analysis.quality.assess_quality`):
``{"bandwidth_hz": 16020.0, "fake_lossless": true, "clipping": {...}, "flags": [...], ...}``;
NULL for tracks analysed before it existed. ``tracks.ingest_id`` names the ingest run that
stored the track's analysis (``cratedig drift --batch``); NULL for older rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("quality", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("ingest_id", sa.String(32), nullable=True))
        batch.create_index("ix_tracks_ingest_id", ["ingest_id"])


def downgrade() -> None:
    # In place, not in batch mode (see 0003's downgrade: a rebuilt ``tracks`` cascades).
    op.drop_index("ix_tracks_ingest_id", table_name="tracks")
    op.drop_column("tracks", "ingest_id")
    op.drop_column("tracks", "quality")
