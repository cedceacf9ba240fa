"""Two indexes that made durable passes quadratic on a million customers.

- ``customers.merged_into`` is indexed for the merged rows only. It serves "which profiles were
  merged into this one" (``followup explain``). Holding every row, it also let SQLite answer
  ``merged_into IS NULL`` (every live customer) from it: loading a batch of 500 customers by id
  read them all.
- ``segment_looks`` is indexed by ``(due_at, customer_id)``, the order a sweep takes the due
  looks in. By ``due_at`` alone, the looks due at one instant (every customer, after a full
  sweep) were sorted whole for every batch of 500.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MERGED = sa.text("merged_into IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_customers_merged_into", table_name="customers")
    op.create_index(
        "ix_customers_merged_into",
        "customers",
        ["merged_into"],
        sqlite_where=MERGED,
        postgresql_where=MERGED,
    )
    op.drop_index("ix_segment_looks_due_at", table_name="segment_looks")
    op.create_index("ix_segment_looks_due", "segment_looks", ["due_at", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_segment_looks_due", table_name="segment_looks")
    op.create_index("ix_segment_looks_due_at", "segment_looks", ["due_at"])
    op.drop_index("ix_customers_merged_into", table_name="customers")
    op.create_index("ix_customers_merged_into", "customers", ["merged_into"])
