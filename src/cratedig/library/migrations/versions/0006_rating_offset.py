"""A rating records how far the candidate was nudged: ``ratings.offset_beats``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

``render --offset-beats N`` (and the web page's nudge buttons) start the candidate N of its
beats later (earlier when negative), where its bar lines are doubtful. A rating given to what
was heard then is a rating of the moved span, not of the segment as suggested, so it keeps the
offset. Older ratings were all given at offset 0 (the column's default).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(
            sa.Column("offset_beats", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("offset_beats")
