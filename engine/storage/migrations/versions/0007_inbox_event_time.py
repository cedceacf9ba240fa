"""The journey inbox keeps each event's time, indexed, so the engine reads its backlog in order
without sorting the whole event log for every batch.

The time is copied from ``events``. An inbox row with no event could never be taken (the engine
joins the two), so it is dropped here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("journey_inbox") as batch:
        batch.add_column(sa.Column("timestamp", TIME, nullable=True))
    op.execute(
        "UPDATE journey_inbox SET timestamp = (SELECT events.timestamp FROM events"
        " WHERE events.message_id = journey_inbox.message_id)"
    )
    op.execute("DELETE FROM journey_inbox WHERE timestamp IS NULL")
    with op.batch_alter_table("journey_inbox") as batch:
        batch.alter_column("timestamp", existing_type=TIME, nullable=False)
    op.create_index("ix_journey_inbox_time", "journey_inbox", ["timestamp", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_journey_inbox_time", table_name="journey_inbox")
    with op.batch_alter_table("journey_inbox") as batch:
        batch.drop_column("timestamp")
