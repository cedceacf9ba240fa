"""Segment sweeps on the hours of UTC: move the sweep rows of a database made before onto them.

The hourly segment sweeps ran on the grid of the first pass (``simulate``: of the first event),
so an entry's time hung on when that came. They now fall on the hours of UTC
(``engine.journeys.schedule.sweep_hour``) in both; each partition's ``segments`` row (the next
sweep due) moves to the first hour at or after it, so no look is swept before its time. The
rows of the sweeps over everyone (``segments:<versions>``) are runs, not grids: left as they are.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.journeys.schedule import first_sweep_from
from engine.storage.tables import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_rows = sa.table("schedule_ticks", sa.column("name", sa.String), sa.column("due_at", UTCDateTime()))


def upgrade() -> None:
    conn = op.get_bind()
    query = sa.select(_rows.c.name, _rows.c.due_at).where(
        sa.or_(_rows.c.name == "segments", _rows.c.name.startswith("segments#"))
    )
    for name, due_at in conn.execute(query).all():
        moved = first_sweep_from(due_at)
        if moved != due_at:
            conn.execute(_rows.update().where(_rows.c.name == name).values(due_at=moved))


def downgrade() -> None:
    pass  # the hours of UTC are on a grid as good as any other
