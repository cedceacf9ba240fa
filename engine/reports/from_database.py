"""The report of what the durable engine did (``followup report``), read where the data is.

Journeys, conversions, skips, the funnel and variants are counted in SQL over ``decisions``
(:mod:`engine.reports.journey_counts`); touches are ``outbox`` rows the provider confirmed
(``delivered``), at the time it did, counted in SQL per campaign and channel; orders are the
logged events named by ``reports.conversion``. Only the touches of customers who ordered in the
period are read into Python, to credit their orders. Every id is taken to the live customer it
was merged into.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign
from engine.double_opt_in import TRANSACTIONAL
from engine.reports.attribution import Touch
from engine.reports.build import build_report, timeline
from engine.reports.credit import Order, attribute, order_value, survivor_of
from engine.reports.html import Timeline
from engine.reports.journey_counts import (
    ALL_TIME,
    CHANNEL_ACTIONS,
    Period,
    count_campaigns,
    split_steps,
)
from engine.reports.settings import ReportSettings
from engine.storage.customer_store import chunks, event_from_row
from engine.storage.tables import customers, decisions, events, outbox


def database_report(
    conn: sa.Connection,
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period = ALL_TIME,
    only: str | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The JSON report of the project database on ``conn``, and the figures per day for its
    pictures; with ``only``, the report lists that campaign alone."""
    merged_into = dict(
        conn.execute(
            sa.select(customers.c.id, customers.c.merged_into).where(
                customers.c.merged_into.is_not(None)
            )
        ).all()
    )
    survivor = survivor_of(merged_into)
    counts = count_campaigns(conn, decisions, period, split_steps(campaigns))
    orders = list(_orders(conn, settings, period, survivor))
    touches = _touches_of(conn, {order.customer for order in orders}, merged_into, period, survivor)
    attributed = attribute(orders, _touch_counts(conn, period), touches, settings)
    return build_report(counts, attributed, campaigns, settings, period, only), timeline(attributed)


def _delivered(period: Period) -> list[sa.ColumnElement[bool]]:
    o = outbox.c
    return [
        o.status == "delivered",
        o.action.in_(CHANNEL_ACTIONS),
        o.campaign_id != "",  # consent and activity syncs belong to no campaign
        o.campaign_id.not_in(TRANSACTIONAL),  # a double opt-in confirmation markets nothing
        *period.where(o.updated_at),
    ]


def _touch_counts(conn: sa.Connection, period: Period) -> list[tuple[str, str, int]]:
    o = outbox.c
    query = (
        sa.select(o.campaign_id, o.channel, sa.func.count())
        .where(*_delivered(period))
        .group_by(o.campaign_id, o.channel)
    )
    return [(campaign, channel, int(count)) for campaign, channel, count in conn.execute(query)]


def _orders(
    conn: sa.Connection, settings: ReportSettings, period: Period, survivor: Any
) -> Iterable[Order]:
    query = (
        sa.select(events)
        .where(
            events.c.type == "track",
            events.c.name == settings.conversion,
            *period.where(events.c.timestamp),
        )
        .order_by(events.c.timestamp, events.c.seq)
    )
    for row in conn.execute(query):
        event = event_from_row(row)
        yield Order(
            survivor(row.customer_id),
            event.timestamp,
            order_value(event, settings.value),
            event.channel,
        )


def _touches_of(
    conn: sa.Connection,
    buyers: set[str],
    merged_into: Mapping[str, str],
    period: Period,
    survivor: Any,
) -> dict[str, list[tuple[str, Touch]]]:
    """The period's touches of ``buyers`` (and of the profiles merged into them), in plan
    order: by decision time, then journey, then the order decided. The ids go into a
    temporary table the outbox is joined with: one query, however many buyers."""
    ids = set(buyers) | {merged for merged in merged_into if survivor(merged) in buyers}
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
        for part in chunks(sorted(ids), 10_000):
            conn.execute(wanted.insert(), [{"customer_id": customer} for customer in part])
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"ANALYZE {wanted.name}"))
        query = (
            sa.select(o.customer_id, o.campaign_id, o.channel, o.updated_at)
            .join_from(outbox, wanted, o.customer_id == wanted.c.customer_id)
            .where(*_delivered(period))
            .order_by(o.decided_at, o.journey_id, o.id)
        )
        found: dict[str, list[tuple[str, Touch]]] = {}
        for sequence, (customer, campaign, channel, at) in enumerate(conn.execute(query)):
            touch = Touch(at, channel, campaign, sequence)
            found.setdefault(survivor(customer), []).append((campaign, touch))
        return found
    finally:
        wanted.drop(conn)
