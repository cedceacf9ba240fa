"""What the decisions say per campaign, counted in SQL where the decisions are: journeys and
their holdout groups, conversions, exits, skips, the funnel per step and the variants of splits
(../shared/design/REPORTS.md, "Counting per campaign" to "Funnel").

The queries read any table shaped like ``decisions`` (engine/storage/tables.py): the durable
engine's own, or the plan of a simulation loaded into an in-memory SQLite table
(:mod:`engine.reports.from_plan`), so a backtest and the live report count the same way. A
journey counts when its entry is in the period; its lines count with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign, SplitStep, walk_steps
from engine.drive.outbox_status import OutboxStatus
from engine.journeys.outcomes import SendStatus, SkipReason
from engine.storage.tables import UTCDateTime

CHANNEL_ACTIONS = ("send", "audience_add")


@dataclass(frozen=True, slots=True)
class Period:
    """``since <= at < until``; ``None`` leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    def where(self, column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        """The conditions that keep ``column`` in the period."""
        found = []
        if self.since is not None:
            found.append(column >= self.since)
        if self.until is not None:
            found.append(column < self.until)
        return found

    def holds(self, at: datetime) -> bool:
        """Whether ``at`` is in the period."""
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


ALL_TIME = Period()


@dataclass
class Group:
    """Journeys of one campaign on one side of its holdout."""

    journeys: int = 0
    converted: int = 0
    revenue: float = 0.0
    exited: int = 0


@dataclass
class StepCounts:
    """One channel step of a campaign: journeys that reached it, sent, skipped by reason, and
    those whose journey exited after it, before any later step acted."""

    reached: int = 0
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    exited: int = 0


@dataclass
class VariantCounts:
    """The treatment journeys that took one variant of a split."""

    journeys: int = 0
    converted: int = 0
    revenue: float = 0.0


@dataclass
class CampaignCounts:
    """Everything counted of one campaign's journeys in the period."""

    treatment: Group = field(default_factory=Group)
    control: Group = field(default_factory=Group)
    steps: dict[str, StepCounts] = field(default_factory=dict)
    # split step path -> variant -> counts
    variants: dict[str, dict[str, VariantCounts]] = field(default_factory=dict)


def _number(column: sa.ColumnElement[Any], key: str, dialect: str) -> sa.ColumnElement[Any]:
    """``column[key]`` when it is a JSON number, else 0 (a goal value that failed is null)."""
    if dialect == "postgresql":
        kind = sa.func.jsonb_typeof(column.op("->")(key))
        value = sa.cast(column.op("->>")(key), sa.Float)
        return sa.case((kind == "number", value), else_=0.0)
    path = f'$."{key}"'
    kind = sa.func.json_type(column, path)
    return sa.case((kind.in_(("integer", "real")), sa.func.json_extract(column, path)), else_=0.0)


def _flag(column: sa.ColumnElement[Any], key: str, dialect: str) -> sa.ColumnElement[Any]:
    """1 when ``column[key]`` is JSON ``true``, else 0."""
    if dialect == "postgresql":
        return sa.case((column.op("->>")(key) == "true", 1), else_=0)
    return sa.case((sa.func.json_type(column, f'$."{key}"') == "true", 1), else_=0)


def _text(column: sa.ColumnElement[Any], key: str, dialect: str) -> sa.ColumnElement[Any]:
    """``column[key]`` as text (null when absent)."""
    if dialect == "postgresql":
        return column.op("->>")(key)
    return sa.func.json_extract(column, f'$."{key}"')


def journeys_query(table: sa.Table, period: Period, dialect: str) -> sa.Subquery:
    """One row per journey entered in the period: campaign, held out, converted, the value
    of its conversions, exited."""
    t = table.c
    is_enter = t.action == "enter"
    is_convert = t.action == "convert"
    grouped = (
        sa.select(
            t.campaign_id.label("campaign_id"),
            t.journey_id.label("journey_id"),
            sa.func.min(sa.case((is_enter, t.at))).label("entered_at"),
            sa.func.max(sa.case((is_enter, _flag(t.fields, "holdout", dialect)), else_=0)).label(
                "held_out"
            ),
            sa.func.max(sa.case((is_convert, 1), else_=0)).label("converted"),
            sa.func.sum(
                sa.case((is_convert, _number(t.fields, "value", dialect)), else_=0.0)
            ).label("value"),
            sa.func.max(sa.case((t.action == "exit", 1), else_=0)).label("exited"),
        )
        .where(t.journey_id.is_not(None))
        .group_by(t.campaign_id, t.journey_id)
        .subquery("journeys_grouped")
    )
    return (
        sa.select(grouped)
        .where(grouped.c.entered_at.is_not(None), *period.where(grouped.c.entered_at))
        .subquery("journeys_in_period")
    )


def split_steps(campaigns: Mapping[str, Campaign]) -> dict[str, tuple[str, ...]]:
    """The paths of each campaign's split steps."""
    return {
        cid: tuple(path for path, _, step in walk_steps(c.steps) if isinstance(step, SplitStep))
        for cid, c in campaigns.items()
    }


def count_campaigns(
    conn: sa.Connection,
    table: sa.Table,
    period: Period,
    splits: Mapping[str, tuple[str, ...]] | None = None,
    settled: sa.Table | None = None,
) -> dict[str, CampaignCounts]:
    """The counts of every campaign with a journey entered in the period. ``splits`` names
    each campaign's split steps (:func:`split_steps`), so that a journey down a nested split
    counts for the outer variant too; without it, lines count for their innermost one.
    ``settled`` (the durable engine's outbox): a send decided ``sent`` whose row was settled
    ``skipped`` at delivery (consent withdrawn before it went, ``policies.max_delay``, a late
    exit) counts as skipped, by the reason its detail starts with."""
    dialect = conn.dialect.name
    # the journeys, kept once in a temporary table: joined as a subquery, SQLite would work the
    # grouping out again for every line (155 s for 20,000 sends; 0.4 s kept)
    journeys = sa.Table(
        "report_journeys",
        sa.MetaData(),
        sa.Column("campaign_id", sa.String(64)),
        sa.Column("journey_id", sa.String(32), index=True),
        sa.Column("entered_at", UTCDateTime()),
        sa.Column("held_out", sa.Integer()),
        sa.Column("converted", sa.Integer()),
        sa.Column("value", sa.Float()),
        sa.Column("exited", sa.Integer()),
        prefixes=["TEMPORARY"],
    )
    journeys.drop(conn, checkfirst=True)
    journeys.create(conn)
    try:
        grouped = journeys_query(table, period, dialect)
        conn.execute(journeys.insert().from_select(list(grouped.c.keys()), sa.select(grouped)))
        if dialect == "postgresql":  # a temporary table has no statistics until analyzed
            conn.execute(sa.text(f"ANALYZE {journeys.name}"))
        found: dict[str, CampaignCounts] = {}
        _groups(conn, journeys, found)
        _steps(conn, table, journeys, found, settled)
        _exits(conn, table, journeys, found)
        _variants(conn, table, journeys, found, dialect, splits or {})
    finally:
        journeys.drop(conn)
    return found


def _groups(conn: sa.Connection, journeys: sa.Table, found: dict[str, CampaignCounts]) -> None:
    j = journeys.c
    query = sa.select(
        j.campaign_id,
        j.held_out,
        sa.func.count(),
        sa.func.sum(j.converted),
        sa.func.sum(sa.case((j.converted == 1, j.value), else_=0.0)),
        sa.func.sum(j.exited),
    ).group_by(j.campaign_id, j.held_out)
    for campaign, held_out, count, converted, value, exited in conn.execute(query):
        counts = found.setdefault(campaign, CampaignCounts())
        group = counts.control if held_out else counts.treatment
        group.journeys += int(count)
        group.converted += int(converted or 0)
        group.revenue += float(value or 0.0)
        group.exited += int(exited or 0)


def _steps(
    conn: sa.Connection,
    table: sa.Table,
    journeys: sa.Table,
    found: dict[str, CampaignCounts],
    settled: sa.Table | None,
) -> None:
    t, j = table.c, journeys.c
    status: sa.ColumnElement[Any] = t.status
    reason: sa.ColumnElement[Any] = t.reason
    lines = sa.select().join_from(table, journeys, sa.and_(t.journey_id == j.journey_id))
    if settled is not None:
        o = settled.c
        skipped = o.status == OutboxStatus.SKIPPED.value
        status = sa.case((skipped, o.status), else_=t.status)
        reason = sa.case((skipped, _reason_of(o.detail, conn.dialect.name)), else_=t.reason)
        lines = lines.outerjoin(
            settled,
            sa.and_(
                o.journey_id == t.journey_id,
                o.step == t.step,
                o.action == t.action,
                t.status == SendStatus.SENT.value,
            ),
        )
    channel_lines = (
        lines.add_columns(
            t.campaign_id, t.step, status.label("status"), reason.label("reason"), t.journey_id
        )
        .where(t.action.in_(CHANNEL_ACTIONS))
        .subquery("channel_lines")
    )
    c = channel_lines.c
    by_status = sa.select(c.campaign_id, c.step, c.status, c.reason, sa.func.count()).group_by(
        c.campaign_id, c.step, c.status, c.reason
    )
    for campaign, step, decided, why, count in conn.execute(by_status):
        counts = found.setdefault(campaign, CampaignCounts()).steps.setdefault(step, StepCounts())
        if decided == "sent":
            counts.sent += int(count)
        else:
            counts.skipped[why or "unknown"] += int(count)
    reached = sa.select(c.campaign_id, c.step, sa.func.count(sa.distinct(c.journey_id))).group_by(
        c.campaign_id, c.step
    )
    for campaign, step, count in conn.execute(reached):
        found[campaign].steps[step].reached = int(count)


def _reason_of(detail: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """The reason an outbox row's detail starts with (``stale: decided for ...`` is ``stale``)."""
    if dialect == "postgresql":
        return sa.func.split_part(detail, ":", 1)
    return sa.func.substr(detail, 1, sa.func.instr(detail + ":", ":") - 1)


def _exits(
    conn: sa.Connection, table: sa.Table, journeys: sa.Table, found: dict[str, CampaignCounts]
) -> None:
    """Per step, the exited journeys whose last channel line before the exit was at it, or
    whose send held back there (quiet hours) was skipped for the exit when it came due."""
    t, j = table.c, journeys.c
    exits = (
        sa.select(t.journey_id, sa.func.min(t.at).label("exit_at"))
        .join_from(table, journeys, t.journey_id == j.journey_id)
        .where(t.action == "exit")
        .group_by(t.journey_id)
        .subquery("exits")
    )
    e = exits.c
    ranked = (
        sa.select(
            t.campaign_id,
            t.step,
            sa.func.row_number()
            .over(partition_by=t.journey_id, order_by=(t.at.desc(), t.id.desc()))
            .label("rank"),
        )
        .join_from(table, exits, t.journey_id == e.journey_id)
        .where(
            t.action.in_(CHANNEL_ACTIONS),
            sa.or_(t.at <= e.exit_at, t.reason == SkipReason.EXITED.value),
        )
        .subquery("last_lines")
    )
    r = ranked.c
    query = (
        sa.select(r.campaign_id, r.step, sa.func.count())
        .where(r.rank == 1)
        .group_by(r.campaign_id, r.step)
    )
    for campaign, step, count in conn.execute(query):
        found[campaign].steps[step].exited += int(count)


def _variants(
    conn: sa.Connection,
    table: sa.Table,
    journeys: sa.Table,
    found: dict[str, CampaignCounts],
    dialect: str,
    splits: Mapping[str, tuple[str, ...]],
) -> None:
    """Per split step and variant, the treatment journeys with a line in that variant (a
    journey counts once per variant it took, whatever its lines)."""
    t, j = table.c, journeys.c
    variant = _text(t.fields, "variant", dialect)
    query = (
        sa.select(t.campaign_id, t.journey_id, t.step, variant, j.converted, j.value)
        .distinct()
        .join_from(table, journeys, t.journey_id == j.journey_id)
        .where(t.action.in_(CHANNEL_ACTIONS), j.held_out == 0, variant.is_not(None))
    )
    taken: set[tuple[str, str, str, str]] = set()
    for campaign, journey, step, name, converted, value in conn.execute(query):
        for split, chosen in _taken(str(step), str(name), splits.get(campaign)):
            if (campaign, journey, split, chosen) in taken:
                continue
            taken.add((campaign, journey, split, chosen))
            variants = found.setdefault(campaign, CampaignCounts()).variants.setdefault(split, {})
            counts = variants.setdefault(chosen, VariantCounts())
            counts.journeys += 1
            counts.converted += int(converted or 0)
            counts.revenue += float(value or 0.0) if converted else 0.0


def _taken(step: str, innermost: str, splits: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """The (split step, variant) pairs a line at ``step`` lies under: every split of the
    campaign whose path is a prefix of it; without the campaign's splits, the innermost."""
    if not splits:
        return [(split_path(step, innermost), innermost)]
    return [
        (split, step[len(split) + 1 :].split(".", 1)[0])
        for split in splits
        if step.startswith(f"{split}.")
    ]


def split_path(step: str, variant: str) -> str:
    """The path of the split step whose ``variant`` the step at ``step`` is in:
    ``"2"`` for ``"2.A.0"``."""
    marker = f".{variant}."
    return step[: step.rindex(marker)] if marker in step else step
