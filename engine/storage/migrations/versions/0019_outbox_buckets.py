"""The bucket of each outbox row's customer, so a pass over a partition delivers its own rows.

Like 0018 for the due work: ``outbox.bucket`` is the bucket of the row's customer
(``engine.drive.partitions``), moved with the row when a sign-in merges the profile; the rows
already there are filled in here, in pages, by the function the engine writes new rows with.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.drive.partitions import bucket_of

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

PAGE = 5000


def upgrade() -> None:
    op.add_column(
        "outbox", sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0")
    )
    conn = op.get_bind()
    update = sa.text("UPDATE outbox SET bucket = :bucket WHERE customer_id = :customer")
    customers = conn.execute(sa.text("SELECT DISTINCT customer_id FROM outbox")).scalars().all()
    for start in range(0, len(customers), PAGE):
        page = customers[start : start + PAGE]
        conn.execute(update, [{"bucket": bucket_of(c), "customer": c} for c in page])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("bucket")
