"""The read model of the report: what a report reads of a run (:class:`ReportReads`), and the
one function that makes the report of REPORTS.md from it (:func:`report_of`).

Two sources answer it: the tables of the durable engine (``followup report``, the dashboard:
:class:`engine.durable.sql_report.SqlReportReads`) and a simulation's plan (``simulate
--report``: :class:`engine.reports.from_plan.PlanReportReads`). A source gives every id as it
was recorded; :func:`report_of` takes each to the customer it was merged into, once for both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from engine.campaigns.schema import Campaign
from engine.reports.attribution import Touch
from engine.reports.build import build_report, timeline
from engine.reports.credit import Order, attribute, by_customer, survivor_of
from engine.reports.html import Timeline
from engine.reports.journey_counts import ALL_TIME, CampaignCounts, Period, split_steps
from engine.reports.settings import ReportSettings

TouchRecord = tuple[str, str, Touch]
"""A touch of the period: the customer as recorded, its campaign, and the touch."""


class ReportReads(Protocol):
    """What a report reads of a run, over a period."""

    def merged_into(self) -> Mapping[str, str]:
        """Each merged customer id and the id it went into."""
        ...

    def campaign_counts(
        self, period: Period, splits: Mapping[str, tuple[str, ...]]
    ) -> Mapping[str, CampaignCounts]:
        """The journey counts of every campaign with an entry in the period (``splits``: the
        paths of each campaign's split steps, whose variants are counted)."""
        ...

    def orders(self, settings: ReportSettings, period: Period) -> Iterable[Order]:
        """The period's orders (events named ``settings.conversion``), in time order."""
        ...

    def touch_counts(self, period: Period) -> Iterable[tuple[str, str, int]]:
        """The period's touches counted per campaign and channel."""
        ...

    def touches_of(self, customers: Collection[str], period: Period) -> Iterable[TouchRecord]:
        """The period's touches of ``customers`` (ids as recorded), in plan order."""
        ...


def report_of(
    reads: ReportReads,
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period = ALL_TIME,
    only: str | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The JSON report of what ``reads`` holds, and the figures per day for its pictures. With
    ``only`` the report lists that campaign alone; the orders are credited among every
    campaign's touches all the same. Only the touches of customers who ordered are read."""
    merged_into = reads.merged_into()
    survivor = survivor_of(merged_into)
    counts = reads.campaign_counts(period, split_steps(campaigns))
    orders = [
        replace(order, customer=survivor(order.customer))
        for order in reads.orders(settings, period)
    ]
    buyers = {order.customer for order in orders}
    ids = buyers | {merged for merged in merged_into if survivor(merged) in buyers}
    touches = by_customer(
        (survivor(customer), campaign, touch)
        for customer, campaign, touch in reads.touches_of(ids, period)
    )
    attributed = attribute(orders, reads.touch_counts(period), touches, settings)
    report = build_report(counts, attributed, campaigns, settings, period, only)
    return report, timeline(attributed)
