"""Provider throttles: one bucket per throttled channel, shared by every process.

``rate: 20/s`` under a provider in ``followup.yaml`` is kept here (``engine/durable/throttles.py``):
the time its bucket is full again, taken in a transaction that locks the row.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "throttles",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_throttles"),
    )


def downgrade() -> None:
    op.drop_table("throttles")
