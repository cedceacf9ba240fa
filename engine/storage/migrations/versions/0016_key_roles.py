"""Key roles: a ``write`` key sends events, a ``dashboard`` key logs in to the dashboard.

Every key made before is a write key (the column's default fills the existing rows).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("role", sa.String(16), nullable=False, server_default="write"),
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
