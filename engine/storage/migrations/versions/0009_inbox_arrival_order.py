"""The journey inbox keeps each event's arrival sequence, so events of one instant are taken in
the order they were received (CAMPAIGN_FORMAT.md), never by messageId.

The sequence is the event log's own (``events.seq``, assigned in the order ingest receives
events: file order, a batch's array order, then request order). Copied here and indexed with
the time, it is the order a batch reads the backlog in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("journey_inbox") as batch:
        batch.add_column(sa.Column("seq", SEQ, nullable=True))
    op.execute(
        "UPDATE journey_inbox SET seq = (SELECT events.seq FROM events"
        " WHERE events.message_id = journey_inbox.message_id)"
    )
    op.execute("DELETE FROM journey_inbox WHERE seq IS NULL")  # no event: never taken anyway
    op.drop_index("ix_journey_inbox_time", table_name="journey_inbox")
    with op.batch_alter_table("journey_inbox") as batch:
        batch.alter_column("seq", existing_type=SEQ, nullable=False)
    op.create_index("ix_journey_inbox_time", "journey_inbox", ["timestamp", "seq"])


def downgrade() -> None:
    op.drop_index("ix_journey_inbox_time", table_name="journey_inbox")
    with op.batch_alter_table("journey_inbox") as batch:
        batch.drop_column("seq")
    op.create_index("ix_journey_inbox_time", "journey_inbox", ["timestamp", "message_id"])
