"""Ratings re-attach across re-analysis: each side's track and time span, and an orphaned state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

A rating names its segments by id (``<trackid>_<n>``), and re-analysing a track renumbers and
moves its segments. So each side now also records what was rated: ``query_track_id``,
``query_start``, ``query_end`` (seconds) and the same for the candidate. When a track's segments
are replaced (:func:`cratedig.library.repository.reattach_ratings`), a rating follows the new
segment that best covers the rated span, or is marked orphaned with the reason
(``query_orphaned`` / ``candidate_orphaned``); ``state`` is ``attached``, ``reattached`` or
``orphaned``; ``reattachments`` (JSON list) records every move.

Backfill: spans come from the segments table where the ids still resolve. A candidate whose
segment is gone is orphaned now (it was already pointing at nothing); a query whose track is
not in the library is a file matched on the fly and stays attached without a span (its span is
filled in if that track is ingested later).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SIDES = ("query", "candidate")


def upgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        for side in _SIDES:
            batch.add_column(sa.Column(f"{side}_track_id", sa.String(16), nullable=True))
            batch.add_column(sa.Column(f"{side}_start", sa.Float(), nullable=True))
            batch.add_column(sa.Column(f"{side}_end", sa.Float(), nullable=True))
            batch.add_column(sa.Column(f"{side}_orphaned", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("state", sa.String(16), nullable=False, server_default="attached")
        )
        batch.add_column(sa.Column("reattachments", sa.JSON(), nullable=True))
        batch.create_index("ix_ratings_state", ["state"])
        batch.create_index("ix_ratings_query_track_id", ["query_track_id"])
        batch.create_index("ix_ratings_candidate_track_id", ["candidate_track_id"])
    _backfill()


def _backfill() -> None:
    ratings = sa.table(
        "ratings",
        sa.column("query_segment_id", sa.String),
        sa.column("candidate_segment_id", sa.String),
        *(sa.column(f"{side}_{c}") for side in _SIDES for c in ("track_id", "start", "end")),
        *(sa.column(f"{side}_orphaned", sa.Text) for side in _SIDES),
        sa.column("state", sa.String),
    )
    segments = sa.table(
        "segments", sa.column("id"), sa.column("track_id"), sa.column("start"), sa.column("end")
    )
    tracks = sa.table("tracks", sa.column("id"))
    for side in _SIDES:
        sid = ratings.c[f"{side}_segment_id"]

        def of_segment(col: str, sid: sa.ColumnElement[str] = sid) -> sa.ScalarSelect[object]:
            return sa.select(segments.c[col]).where(segments.c.id == sid).scalar_subquery()

        resolves = sa.exists().where(segments.c.id == sid)
        op.execute(
            ratings.update()
            .where(resolves)
            .values(
                {
                    f"{side}_track_id": of_segment("track_id"),
                    f"{side}_start": of_segment("start"),
                    f"{side}_end": of_segment("end"),
                }
            )
        )
        # Segment ids are <16 hex digits>_<n>: the track is known even when the segment is not.
        op.execute(
            ratings.update()
            .where(~resolves)
            .values({f"{side}_track_id": sa.func.substr(sid, 1, 16)})
        )
        gone = ~resolves
        if side == "query":  # a query outside the library was matched on the fly
            gone = gone & sa.exists().where(tracks.c.id == sa.func.substr(sid, 1, 16))
        op.execute(
            ratings.update()
            .where(gone)
            .values(
                {
                    f"{side}_orphaned": (
                        f"{side} segment was no longer in the library when ratings began to "
                        "record time spans (migration 0005)"
                    ),
                    "state": "orphaned",
                }
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_index("ix_ratings_candidate_track_id")
        batch.drop_index("ix_ratings_query_track_id")
        batch.drop_index("ix_ratings_state")
        batch.drop_column("reattachments")
        batch.drop_column("state")
        for side in reversed(_SIDES):
            for c in ("orphaned", "end", "start", "track_id"):
                batch.drop_column(f"{side}_{c}")
