"""A track keeps the grid its user gave: ``tracks.grid_hint``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

``cratedig regrid TRACK --bpm 124 --downbeat 0.52 --beats-per-bar 4`` (and the web page's
"Fix the grid") re-analyses a track on what its user knows of the grid, as a DJ fixes a beat
grid in rekordbox or Mixxx. The JSON object of what was given (``{"bpm": 124.0, "downbeat":
0.52}``) is kept with the track, so that every later re-analysis (a new analysis version, an
ingest of the same audio) lays the same grid; NULL where the analysis' own grid stands.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("grid_hint", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not in batch mode: on SQLite that rebuilds ``tracks``, and dropping the old table would
    # cascade to every track's segments. SQLite has dropped columns in place since 3.35.
    op.drop_column("tracks", "grid_hint")
