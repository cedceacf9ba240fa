"""``followup status``'s reads over the tables (:class:`engine.drive.status_model.StatusReads`):
journeys and campaign versions, timers, the outbox by status and its rows to check, schedule
rows, the inbox, segment looks, throttles. Only SQLAlchemy Core reads, on the caller's
connection; aggregates in SQL. ``explain``'s reads are in :mod:`engine.durable.sql_reads`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_status import OutboxStatus
from engine.drive.status_model import OutboxRow
from engine.storage.tables import (
    campaign_versions,
    decisions,
    journey_inbox,
    journey_timers,
    journeys,
    outbox,
    schedule_ticks,
    segment_looks,
    throttles,
)


def _utc(value: Any) -> datetime | None:
    """An aggregate of a UTC column (SQLite returns it naive, or as text), as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _outbox_row(row: Any) -> OutboxRow:
    return OutboxRow(
        key=row.key,
        campaign_id=row.campaign_id,
        journey_id=row.journey_id,
        step=row.step,
        customer_id=row.customer_id,
        channel=row.channel,
        action=row.action,
        status=row.status,
        detail=row.detail,
        attempts=row.attempts,
        decided_at=row.decided_at,
        updated_at=row.updated_at,
    )


class SqlStatusReads:
    """What the tables on ``conn`` tell ``status``."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def journey_counts(self) -> Iterable[tuple[str, str, str, int]]:
        """``(campaign, version, journey status, count)``, grouped in SQL."""
        columns = (journeys.c.campaign_id, journeys.c.campaign_version, journeys.c.status)
        query = sa.select(*columns, sa.func.count()).group_by(*columns)
        return [(cid, version, status, n) for cid, version, status, n in self.conn.execute(query)]

    def first_seen(self) -> Iterable[tuple[str, str, datetime]]:
        """Every campaign version recorded, with when the engine first ran it."""
        query = sa.select(
            campaign_versions.c.campaign_id,
            campaign_versions.c.version,
            campaign_versions.c.first_seen_at,
        )
        return [(cid, version, seen) for cid, version, seen in self.conn.execute(query)]

    def timer_counts(self, now: datetime) -> Iterable[tuple[str, int, int, datetime | None]]:
        """Per campaign: timers, those due by ``now``, the earliest due."""
        overdue = sa.func.sum(sa.case((journey_timers.c.due_at <= now, 1), else_=0))
        query = sa.select(
            journey_timers.c.campaign_id,
            sa.func.count(),
            overdue,
            sa.func.min(journey_timers.c.due_at),
        ).group_by(journey_timers.c.campaign_id)
        # min() of a UTC column comes back naive on SQLite: read it as UTC
        return [
            (cid, count, int(late or 0), _utc(due))
            for cid, count, late, due in self.conn.execute(query)
        ]

    def outbox_counts(self) -> Iterable[tuple[str, str, int]]:
        """``(campaign, status, count)`` of campaigns' outbox rows, grouped in SQL."""
        query = (
            sa.select(outbox.c.campaign_id, outbox.c.status, sa.func.count())
            .where(outbox.c.campaign_id != "")  # consent changes belong to no campaign
            .group_by(outbox.c.campaign_id, outbox.c.status)
        )
        return [(cid, status, n) for cid, status, n in self.conn.execute(query)]

    def schedules(self) -> dict[str, datetime]:
        """When each schedule row is next due."""
        return {row.name: row.due_at for row in self.conn.execute(sa.select(schedule_ticks))}

    def inbox(self) -> tuple[int, datetime | None]:
        """The inbox's size and its oldest event's time."""
        backlog, oldest = self.conn.execute(
            sa.select(sa.func.count(), sa.func.min(journey_inbox.c.timestamp))
        ).one()
        return int(backlog or 0), _utc(oldest)

    def unknown_rows(self) -> list[OutboxRow]:
        """Every row whose outcome is unknown, the earliest settled first."""
        query = (
            sa.select(outbox)
            .where(outbox.c.status == OutboxStatus.UNKNOWN)
            .order_by(outbox.c.updated_at, outbox.c.id)
        )
        return [_outbox_row(row) for row in self.conn.execute(query)]

    def failed_rows(self, limit: int) -> tuple[list[OutboxRow], int]:
        """The latest ``limit`` failed rows, the latest first; and how many failed."""
        failed = outbox.c.status == OutboxStatus.FAILED
        total = self.conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(failed))
        query = (
            sa.select(outbox)
            .where(failed)
            .order_by(outbox.c.updated_at.desc(), outbox.c.id.desc())
            .limit(limit)
        )
        return [_outbox_row(row) for row in self.conn.execute(query)], int(total or 0)

    def segment_looks(self, now: datetime) -> tuple[int, datetime | None]:
        """Looks due by ``now``, and the earliest booked after it."""
        due = self.conn.scalar(
            sa.select(sa.func.count())
            .select_from(segment_looks)
            .where(segment_looks.c.due_at <= now)
        )
        next_look = self.conn.scalar(
            sa.select(sa.func.min(segment_looks.c.due_at)).where(segment_looks.c.due_at > now)
        )
        return int(due or 0), _utc(next_look)

    def throttled(self) -> tuple[dict[str, int], dict[str, float]]:
        """Rows put off by a throttle, by channel; each bucket's ``tat``."""
        waiting = self.conn.execute(
            sa.select(outbox.c.channel, sa.func.count())
            .where(outbox.c.status == OutboxStatus.PENDING, outbox.c.detail.like("throttled:%"))
            .group_by(outbox.c.channel)
        )
        full = self.conn.execute(sa.select(throttles.c.name, throttles.c.tat))
        return (
            {channel: int(n) for channel, n in waiting},
            {name: float(tat) for name, tat in full},
        )


def recorded_campaigns(conn: sa.Connection) -> set[str]:
    """Every campaign the engine has ever run (a version recorded) or decided about."""
    found = set(conn.scalars(sa.select(campaign_versions.c.campaign_id).distinct()))
    found.update(conn.scalars(sa.select(decisions.c.campaign_id).distinct()))
    return found
