"""Who holds an outbox row's claim, so a dead holder's rows are retaken at once.

``outbox.claimed_by`` names the dispatch that claimed a ``sending`` row (see
``engine/durable/holders.py``); before it, a stopped process's rows waited for the 5-minute lease.
Rows claimed before this migration have none, and wait for the lease as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
