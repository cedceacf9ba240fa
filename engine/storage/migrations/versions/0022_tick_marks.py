"""Tick marks: the schedule ticks a batch acted on for a profile away from the run's place.

A schedule's run goes over the profiles in id order, keeping how far it got. A batch that takes
a profile's work before the run comes to it (a profile merged at ingest while the run is under
way, its survivor's work taken by another partition) acts on the tick for it first, so the
profile is seen as it stood at the tick's instant; it marks the tick here, and the run, when it
comes to the profile, passes it over. A partition's marks of a tick go when its run has gone over
every profile (``bucket``: the profile's, engine/drive/partitions.py), a profile's when the
engine takes its merge.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tick_marks",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", "customer_id", name="pk_tick_marks"),
    )


def downgrade() -> None:
    op.drop_table("tick_marks")
