"""The customer each event belonged to when it was logged, kept in the journey inbox.

Ingest merges profiles as events arrive: an anonymous device's events move to the shopper who
signs in on it. The engine, when it takes those events later, must take them as the anonymous
profile's until it takes the sign-in, as ``simulate`` does; ``journey_inbox.customer_id`` says
whose each event was when logged. Empty for the rows already waiting: they are taken as their
event's current customer's, as before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("journey_inbox", sa.Column("customer_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journey_inbox") as batch:
        batch.drop_column("customer_id")
