"""The report's reads of a simulated plan (``followup simulate --report``): the plan is loaded
into an in-memory SQLite ``decisions`` table and counted by the same queries as the live report,
touches are the plan's ``sent`` sends at their time, orders the simulated events named by
``reports.conversion``, each under the customer that received it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign
from engine.double_opt_in import is_transactional
from engine.durable.store import decision_record
from engine.events import Event, EventType
from engine.journeys.plan import PlanAction, PlanLine
from engine.journeys.simulate import PLAN_ORDER, Simulation
from engine.reports.attribution import Touch
from engine.reports.credit import Order, order_value
from engine.reports.html import Timeline
from engine.reports.journey_counts import ALL_TIME, CampaignCounts, Period, count_campaigns
from engine.reports.reads import TouchRecord, report_of
from engine.reports.settings import ReportSettings
from engine.storage.tables import decisions

TOUCH_ACTIONS = (PlanAction.SEND, PlanAction.AUDIENCE_ADD)
_BATCH = 10_000


class PlanReportReads:
    """:class:`engine.reports.reads.ReportReads` of ``simulation`` (run with
    ``watch={settings.conversion}``) over ``events``, those it simulated."""

    def __init__(self, simulation: Simulation, events: Iterable[Event]) -> None:
        self.simulation = simulation
        self.events = events
        self.plan = sorted(simulation.plan, key=PLAN_ORDER)

    def merged_into(self) -> Mapping[str, str]:
        return self.simulation.merged_into

    def campaign_counts(
        self, period: Period, splits: Mapping[str, tuple[str, ...]]
    ) -> dict[str, CampaignCounts]:
        """The plan's lines in an in-memory ``decisions`` table, counted."""
        db = sa.create_engine("sqlite://")
        try:
            decisions.create(db)
            with db.begin() as conn:
                rows = [decision_record(line, line.at) for line in self.plan]
                for start in range(0, len(rows), _BATCH):
                    conn.execute(decisions.insert(), rows[start : start + _BATCH])
                return count_campaigns(conn, decisions, period, splits)
        finally:
            db.dispose()

    def orders(self, settings: ReportSettings, period: Period) -> Iterator[Order]:
        owners = self.simulation.owners
        for event in self.events:
            if (
                event.type is EventType.TRACK  # a page named so is no order (REPORTS.md)
                and event.name == settings.conversion
                and event.message_id in owners
                and period.holds(event.timestamp)
            ):
                value = order_value(event, settings.value)
                yield Order(owners[event.message_id], event.timestamp, value, event.channel)

    def _touches(self, period: Period) -> Iterator[TouchRecord]:
        for n, line in enumerate(self.plan):
            if _is_touch(line) and period.holds(line.at):
                touch = Touch(line.at, str(line.channel), line.campaign, n)
                yield line.customer.id, line.campaign, touch

    def touch_counts(self, period: Period) -> list[tuple[str, str, int]]:
        tally = Counter((campaign, touch.channel) for _, campaign, touch in self._touches(period))
        return [(campaign, channel, number) for (campaign, channel), number in tally.items()]

    def touches_of(self, customers: Collection[str], period: Period) -> list[TouchRecord]:
        wanted = set(customers)
        return [record for record in self._touches(period) if record[0] in wanted]


def _is_touch(line: PlanLine) -> bool:
    """A send that went out, of a campaign that markets (not a double opt-in confirmation)."""
    return (
        line.action in TOUCH_ACTIONS
        and line.status == "sent"
        and not is_transactional(line.campaign)
    )


def plan_report(
    simulation: Simulation,
    events: Iterable[Event],
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period = ALL_TIME,
    only: str | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The JSON report of ``simulation`` over ``events`` and the figures per day for its
    pictures (see :func:`engine.reports.reads.report_of`)."""
    return report_of(PlanReportReads(simulation, events), campaigns, settings, period, only)
