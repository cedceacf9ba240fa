"""The bucket of each piece of due work's customer, so a pass can take one partition of them.

``journey_inbox``, ``journey_timers`` and ``segment_looks`` get the bucket of the customer the
row belongs to (``engine.drive.partitions``: CRC-32 of the id, modulo 1024); a pass over the
partition ``i/N`` reads only the rows of its buckets. The rows already there are filled in
here, in pages, by the same function the engine writes new rows with.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.drive.partitions import bucket_of

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

PAGE = 5000
# the table, its key, and the column naming its row's customer (an inbox row's is its event's)
_OWNERS = (
    ("journey_timers", "id", "SELECT id, customer_id FROM journey_timers"),
    ("segment_looks", "customer_id", "SELECT customer_id, customer_id FROM segment_looks"),
    (
        "journey_inbox",
        "message_id",
        (
            "SELECT journey_inbox.message_id, events.customer_id FROM journey_inbox"
            " JOIN events ON events.message_id = journey_inbox.message_id"
        ),
    ),
)


def upgrade() -> None:
    for table, _key, _owners in _OWNERS:
        op.add_column(
            table, sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0")
        )
    conn = op.get_bind()
    for table, key, owners in _OWNERS:
        update = sa.text(f"UPDATE {table} SET bucket = :bucket WHERE {key} = :key")
        rows = conn.execute(sa.text(owners)).fetchall()
        for start in range(0, len(rows), PAGE):
            page = rows[start : start + PAGE]
            conn.execute(update, [{"bucket": bucket_of(c), "key": k} for k, c in page])


def downgrade() -> None:
    for table, _key, _owners in _OWNERS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("bucket")
