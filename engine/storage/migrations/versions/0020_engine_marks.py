"""Engine marks: small named values the engine keeps about itself.

The first is ``quiet_tick``: the fingerprint (followup's version, the config, the environment,
the campaign files) of the last full ``followup tick`` on this database, so that a tick with
nothing due can answer without loading the engine (``engine/cli/quiet_tick.py``).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engine_marks")
