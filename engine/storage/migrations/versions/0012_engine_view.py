"""The journey engine's view of a customer, kept while ingest is ahead of it.

Ingest folds an event into ``customers.state`` as it arrives; the engine takes it at its next
pass. ``customers.engine_state`` keeps the profile as of the events the engine has taken, from
the moment ingest gets ahead (it copies the state it is about to change) until the engine has
taken every logged event of the customer (then it is cleared): so a pass decides on the profile
as of each moment, as ``simulate`` does, not on events logged since. Empty for every customer
here: the engine reads the profile itself, as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        json = sa.JSON().with_variant(JSONB(), "postgresql")  # as ``state``
        batch.add_column(sa.Column("engine_state", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("engine_state")
