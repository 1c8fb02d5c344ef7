"""Confidence and runner-up of each track-level estimate (tempo, meter, downbeat, key).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

``tracks.estimates`` is a JSON object, e.g. ``{"tempo": {"value": 140.0, "confidence": 0.81,
"alternative": 105.0, "relation": "3:4"}, "downbeat": {...}, "meter": {...}, "key": {...}}``.
Tracks analysed before this revision have NULL: analysis version 4 marks them stale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("estimates", sa.JSON(), nullable=True))


def downgrade() -> None:
    # In place, not in batch mode: on SQLite batch mode rebuilds ``tracks``, and dropping the
    # old table cascades to every track's files, segments and features (SQLite >= 3.35 drops
    # a column in place).
    op.drop_column("tracks", "estimates")
