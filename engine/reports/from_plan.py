"""The report of a simulated plan (``followup simulate --report``): the plan is loaded into an
in-memory SQLite ``decisions`` table and counted by the same queries as the live report, touches
are the plan's ``sent`` sends at their time, orders the simulated events named by
``reports.conversion``, each under the customer it belongs to at the end of the run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign
from engine.double_opt_in import is_transactional
from engine.durable.store import decision_record
from engine.events import Event
from engine.journeys.plan import PlanAction, PlanLine
from engine.journeys.simulate import PLAN_ORDER, Simulation
from engine.reports.attribution import Touch
from engine.reports.build import build_report, timeline
from engine.reports.credit import Order, attribute, by_customer, order_value, survivor_of
from engine.reports.html import Timeline
from engine.reports.journey_counts import ALL_TIME, Period, count_campaigns, split_steps
from engine.reports.settings import ReportSettings
from engine.storage.tables import decisions

TOUCH_ACTIONS = (PlanAction.SEND, PlanAction.AUDIENCE_ADD)
_BATCH = 10_000


def plan_report(
    simulation: Simulation,
    events: Iterable[Event],
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period = ALL_TIME,
    only: str | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The JSON report of ``simulation`` (run with ``watch={settings.conversion}``) over
    ``events`` (those it simulated), and the figures per day for its pictures. With ``only``
    the report lists that campaign alone; the orders are credited among every campaign's
    touches all the same."""
    plan = sorted(simulation.plan, key=PLAN_ORDER)
    survivor = survivor_of(simulation.merged_into)
    counts = _counts(plan, period, split_steps(campaigns))
    records = [
        (
            survivor(line.customer.id),
            line.campaign,
            Touch(line.at, str(line.channel), line.campaign, n),
        )
        for n, line in enumerate(plan)
        if line.action in TOUCH_ACTIONS
        and line.status == "sent"
        and period.holds(line.at)
        and not is_transactional(line.campaign)  # a double opt-in confirmation markets nothing
    ]
    tally = Counter((campaign, touch.channel) for _, campaign, touch in records)
    orders = [
        Order(
            survivor(simulation.owners[event.message_id]),
            event.timestamp,
            order_value(event, settings.value),
            event.channel,
        )
        for event in events
        if event.name == settings.conversion
        and event.message_id in simulation.owners
        and period.holds(event.timestamp)
    ]
    attributed = attribute(
        orders,
        [(campaign, channel, number) for (campaign, channel), number in tally.items()],
        by_customer(records),
        settings,
    )
    report = build_report(counts, attributed, campaigns, settings, period, only)
    return report, timeline(attributed)


def _counts(plan: list[PlanLine], period: Period, splits: Mapping[str, tuple[str, ...]]) -> Any:
    """The plan's lines in an in-memory ``decisions`` table, counted."""
    db = sa.create_engine("sqlite://")
    try:
        decisions.create(db)
        with db.begin() as conn:
            rows = [decision_record(line, line.at) for line in plan]
            for start in range(0, len(rows), _BATCH):
                conn.execute(decisions.insert(), rows[start : start + _BATCH])
            return count_campaigns(conn, decisions, period, splits)
    finally:
        db.dispose()
