"""The HTTP service's reads over the tables: the dashboard's figures beside the report
(:class:`engine.service.dashboard.figures.DashboardReads`) and the gauges of ``/metrics``
(:class:`engine.service.metrics.GaugeReads`). Only SQLAlchemy Core reads, on the caller's
connection; aggregates in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_status import OutboxStatus
from engine.journeys.outcomes import JourneyStatus
from engine.reports.journey_counts import Period
from engine.service.dashboard.figures import DecisionRow
from engine.storage.tables import decisions, journeys, outbox


def _day_of(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    """The UTC date of a UTC time column, as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.date(column)  # SQLite keeps UTC times as naive text


class SqlServiceReads:
    """What the tables on ``conn`` tell the dashboard and the metrics."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    # -- the dashboard ----------------------------------------------------------------------

    def entries_per_day(self, period: Period) -> list[tuple[str, str, int]]:
        d = decisions.c
        day = _day_of(d.at, self.conn.dialect.name)
        query = (
            sa.select(d.campaign_id, day, sa.func.count())
            .where(d.action == "enter", *period.where(d.at))
            .group_by(d.campaign_id, day)
        )
        return [(campaign, str(on), int(n)) for campaign, on, n in self.conn.execute(query)]

    def recent_decisions(self, campaign_id: str, limit: int) -> list[DecisionRow]:
        d = decisions.c
        query = (
            sa.select(
                d.at, d.customer_id, d.journey_id, d.action, d.step, d.channel, d.status, d.reason
            )
            .where(d.campaign_id == campaign_id)
            .order_by(d.at.desc(), d.id.desc())
            .limit(limit)
        )
        return [DecisionRow(*row) for row in self.conn.execute(query)]

    def has_decisions(self, campaign_id: str) -> bool:
        query = sa.select(decisions.c.id).where(decisions.c.campaign_id == campaign_id).limit(1)
        return self.conn.execute(query).first() is not None

    def outbox_statuses(self) -> list[tuple[str, bool, int]]:
        o = outbox.c
        retried = sa.case((o.attempts > 0, 1), else_=0)
        query = sa.select(o.status, retried, sa.func.count()).group_by(o.status, retried)
        return [(status, bool(again), int(n)) for status, again, n in self.conn.execute(query)]

    def outbox_details(self) -> list[tuple[str, str | None, int]]:
        o = outbox.c
        query = (
            sa.select(o.status, o.detail, sa.func.count())
            .where(o.status.in_((OutboxStatus.FAILED, OutboxStatus.SKIPPED)))
            .group_by(o.status, o.detail)
        )
        return [(status, detail, int(n)) for status, detail, n in self.conn.execute(query)]

    # -- the metrics' gauges ----------------------------------------------------------------

    def active_journeys(self) -> list[tuple[str, int]]:
        query = (
            sa.select(journeys.c.campaign_id, sa.func.count())
            .where(journeys.c.status == JourneyStatus.ACTIVE)
            .group_by(journeys.c.campaign_id)
        )
        return [(campaign, int(n)) for campaign, n in self.conn.execute(query)]

    def outbox_by_channel(self) -> list[tuple[str, str, int]]:
        o = outbox.c
        query = sa.select(o.channel, o.status, sa.func.count()).group_by(o.channel, o.status)
        return [(channel, status, int(n)) for channel, status, n in self.conn.execute(query)]

    def oldest_due(self, now: datetime) -> datetime | None:
        o = outbox.c
        query = sa.select(sa.func.min(o.next_attempt_at)).where(
            o.status == OutboxStatus.PENDING, o.next_attempt_at <= now
        )
        oldest: datetime | None = self.conn.scalar(query)
        return oldest
