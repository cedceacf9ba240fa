"""The profile each logged event was received as, kept when a merge moves it.

Ingest moves a merged profile's events to its survivor at once; the journey engine merges the
two only when it takes the merging event, and meanwhile folds a survivor's view, at each merge it
takes, from the events of the profiles it has merged so far (as ``simulate`` does). So each
event keeps the profile it was received as (``received_as``; empty while that is its
``customer_id``, set when a merge moves it). Empty for the events already logged: taken as
their current customer's, as before.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("received_as", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("received_as")
