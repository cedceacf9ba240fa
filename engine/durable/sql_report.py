"""The report's reads of the durable engine's tables (``followup report``, the dashboard).

Journeys, conversions, skips, the funnel and variants are counted in SQL over ``decisions``
(:mod:`engine.reports.journey_counts`); touches are ``outbox`` rows the provider confirmed
(``delivered``), at the time it did, counted in SQL per campaign and channel; orders are the
logged events named by ``reports.conversion``. Only the touches of the customers asked for
(those who ordered in the period) are read into Python, to credit their orders.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign
from engine.double_opt_in import TRANSACTIONAL
from engine.reports.attribution import Touch
from engine.reports.credit import Order, order_value
from engine.reports.html import Timeline
from engine.reports.journey_counts import (
    ALL_TIME,
    CHANNEL_ACTIONS,
    CampaignCounts,
    Period,
    count_campaigns,
)
from engine.reports.reads import TouchRecord, report_of
from engine.reports.settings import ReportSettings
from engine.storage.customer_store import chunks, event_from_row
from engine.storage.tables import customers, decisions, events, outbox


class SqlReportReads:
    """:class:`engine.reports.reads.ReportReads` on a connection to the project database."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def merged_into(self) -> dict[str, str]:
        c = customers.c
        query = sa.select(c.id, c.merged_into).where(c.merged_into.is_not(None))
        return dict(self.conn.execute(query).all())

    def campaign_counts(
        self, period: Period, splits: Mapping[str, tuple[str, ...]]
    ) -> dict[str, CampaignCounts]:
        return count_campaigns(self.conn, decisions, period, splits, settled=outbox)

    def orders(self, settings: ReportSettings, period: Period) -> Iterator[Order]:
        query = (
            sa.select(events)
            .where(
                events.c.type == "track",
                events.c.name == settings.conversion,
                *period.where(events.c.timestamp),
            )
            .order_by(events.c.timestamp, events.c.seq)
        )
        for row in self.conn.execute(query):
            event = event_from_row(row)
            value = order_value(event, settings.value)
            yield Order(row.customer_id, event.timestamp, value, event.channel)

    def touch_counts(self, period: Period) -> list[tuple[str, str, int]]:
        o = outbox.c
        query = (
            sa.select(o.campaign_id, o.channel, sa.func.count())
            .where(*_delivered(period))
            .group_by(o.campaign_id, o.channel)
        )
        return [(campaign, channel, int(n)) for campaign, channel, n in self.conn.execute(query)]

    def touches_of(self, customers: Collection[str], period: Period) -> list[TouchRecord]:
        """In plan order: by decision time, then journey, then the order decided. The ids go
        into a temporary table the outbox is joined with: one query, however many."""
        conn = self.conn
        wanted = sa.Table(
            "report_buyers",
            sa.MetaData(),
            sa.Column("customer_id", sa.String(32), primary_key=True),
            prefixes=["TEMPORARY"],
        )
        wanted.drop(conn, checkfirst=True)
        wanted.create(conn)
        o = outbox.c
        try:
            for part in chunks(sorted(customers), 10_000):
                conn.execute(wanted.insert(), [{"customer_id": customer} for customer in part])
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(f"ANALYZE {wanted.name}"))
            query = (
                sa.select(o.customer_id, o.campaign_id, o.channel, o.updated_at)
                .join_from(outbox, wanted, o.customer_id == wanted.c.customer_id)
                .where(*_delivered(period))
                .order_by(o.decided_at, o.journey_id, o.id)
            )
            return [
                (customer, campaign, Touch(at, channel, campaign, sequence))
                for sequence, (customer, campaign, channel, at) in enumerate(conn.execute(query))
            ]
        finally:
            wanted.drop(conn)


def _delivered(period: Period) -> list[sa.ColumnElement[bool]]:
    o = outbox.c
    return [
        o.status == "delivered",
        o.action.in_(CHANNEL_ACTIONS),
        o.campaign_id != "",  # consent and activity syncs belong to no campaign
        o.campaign_id.not_in(TRANSACTIONAL),  # a double opt-in confirmation markets nothing
        *period.where(o.updated_at),
    ]


def database_report(
    conn: sa.Connection,
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period = ALL_TIME,
    only: str | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The JSON report of the project database on ``conn``, and the figures per day for its
    pictures; with ``only``, the report lists that campaign alone."""
    return report_of(SqlReportReads(conn), campaigns, settings, period, only)
