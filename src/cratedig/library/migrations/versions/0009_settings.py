"""Library-wide preferences: ``settings``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

A DJ sets a BPM range once (``cratedig ingest --bpm-range 70-140``, as DJ programs keep it in
their preferences); every later ingest, the web page's scan included, reads it from here, so a
track analysed again (a new analysis version, a retag) keeps its tempo in the range.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
