"""Per customer, the next time a segment campaign needs to look at them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "segment_looks",
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_segment_looks"),
    )
    op.create_index("ix_segment_looks_due_at", "segment_looks", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_segment_looks_due_at", table_name="segment_looks")
    op.drop_table("segment_looks")
