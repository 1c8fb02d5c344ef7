"""A track keeps its audio fingerprint: ``tracks.fingerprint``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

The same recording in two files (the FLAC and the MP3 of a song) is two tracks, and ``match``
suggested each as the other's best partner: a song layered on itself. The fingerprint of
:mod:`cratedig.analysis.fingerprint` (analysis v31), one little-endian ``uint16`` per 93 ms,
tells them; NULL for tracks analysed before it (they are fingerprinted when ``ingest``
analyses them again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("fingerprint", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Not in batch mode (see 0007): dropping the rebuilt table would cascade to the segments.
    op.drop_column("tracks", "fingerprint")
