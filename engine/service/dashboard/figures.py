"""What the dashboard reads beside the report: the period picked, entries per campaign per day,
a campaign's latest decisions and the outbox by status and reason. SQLAlchemy Core reads on the
caller's connection; the dashboard runs them in a worker thread."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from engine.reports.journey_counts import Period
from engine.storage.tables import decisions, outbox

RANGES = {"7d": 7, "30d": 30, "90d": 90}
RANGE_LABELS = {
    "7d": "last 7 days",
    "30d": "last 30 days",
    "90d": "last 90 days",
    "all": "all time",
    "custom": "custom dates",
}
DEFAULT_RANGE = "30d"
RECENT_DECISIONS = 50


@dataclass(frozen=True)
class PeriodChoice:
    """The period picked on the form: ``range`` (``7d``, ``30d``, ``90d``, ``all`` or
    ``custom``), the custom dates as typed (``YYYY-MM-DD``, inclusive), and the period they
    make; ``error`` says why the dates were not taken."""

    range: str
    period: Period
    since: str = ""
    until: str = ""
    error: str | None = None

    @property
    def query(self) -> str:
        """The query string that picks this period again (for links between pages)."""
        fields = {"range": self.range}
        if self.range == "custom":
            fields.update(since=self.since, until=self.until)
        return urlencode(fields)

    @property
    def label(self) -> str:
        """The period in words, with its bounds in UTC."""
        since, until = self.period.since, self.period.until
        bounds = []
        if since is not None:
            bounds.append(f"from {since:%Y-%m-%d %H:%M} UTC")
        if until is not None:
            bounds.append(f"until {until:%Y-%m-%d %H:%M} UTC")
        return RANGE_LABELS[self.range] + (f" ({', '.join(bounds)})" if bounds else "")


def _day(text: str) -> datetime:
    """The start of a ``YYYY-MM-DD`` UTC day of the years 1900 to 2999 (``ValueError``)."""
    if not re.fullmatch(r"(19|2\d)\d\d-\d\d-\d\d", text):
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)


def pick_period(params: Mapping[str, str], now: datetime) -> PeriodChoice:
    """The period the form's ``range``, ``since`` and ``until`` ask for: the last 7, 30 or 90
    days up to ``now``, all time, or from the start of ``since`` to the end of ``until`` (UTC
    dates, either may be left empty); the last 30 days by default or when the dates are bad."""
    picked = params.get("range", "").strip()
    since, until = params.get("since", "").strip(), params.get("until", "").strip()
    if not picked:
        picked = "custom" if since or until else DEFAULT_RANGE
    if picked in RANGES:
        return PeriodChoice(picked, Period(now - timedelta(days=RANGES[picked]), None))
    if picked == "all":
        return PeriodChoice(picked, Period())
    if picked != "custom":
        return pick_period({}, now)
    try:
        start = _day(since) if since else None
        end = _day(until) + timedelta(days=1) if until else None
    except ValueError:
        error = "write the dates as YYYY-MM-DD"
    else:
        if start is None or end is None or start < end:
            return PeriodChoice(picked, Period(start, end), since, until)
        error = "the first day comes after the last"
    default = pick_period({}, now)
    return PeriodChoice(default.range, default.period, since, until, error)


def _day_of(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    """The UTC date of a UTC time column, as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.date(column)  # SQLite keeps UTC times as naive text


MAX_POINTS = 120  # a trend line over a longer period sums its days into this many points


@dataclass(frozen=True)
class DailyEntries:
    """Journeys entered per UTC day, per campaign, every day of the range."""

    days: tuple[str, ...]
    by_campaign: Mapping[str, tuple[int, ...]]

    def of(self, campaign_id: str) -> tuple[int, ...]:
        """The campaign's entries per day (zeros when it had none)."""
        return self.by_campaign.get(campaign_id, (0,) * len(self.days))


def daily_entries(conn: sa.Connection, period: Period, now: datetime) -> DailyEntries:
    """Entries (``enter`` decisions) per campaign and day in ``period``: every day from the
    period's start (else the first entry) to its end or ``now`` (else the last entry)."""
    d = decisions.c
    day = _day_of(d.at, conn.dialect.name)
    query = (
        sa.select(d.campaign_id, day, sa.func.count())
        .where(d.action == "enter", *period.where(d.at))
        .group_by(d.campaign_id, day)
    )
    counts: dict[tuple[str, str], int] = {
        (campaign, str(on)): int(n) for campaign, on, n in conn.execute(query)
    }
    seen = sorted({on for _, on in counts})
    first = period.since.date() if period.since else None
    last = (min(period.until, now) - timedelta(microseconds=1)).date() if period.until else None
    if period.until is None and period.since is not None:  # up to now, or a later entry's day
        last = max([now.date(), *(date.fromisoformat(on) for on in seen[-1:])])
    first = first or (date.fromisoformat(seen[0]) if seen else None)
    last = last or (date.fromisoformat(seen[-1]) if seen else None)
    if seen and first is not None and last is not None and (last - first).days > MAX_POINTS:
        # a long period (all time, a custom one): from the first entry on, not year 1
        first, last = (
            max(first, date.fromisoformat(seen[0])),
            min(last, date.fromisoformat(seen[-1])),
        )
    if first is None or last is None or last < first:
        return DailyEntries((), {})
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    campaigns = sorted({campaign for campaign, _ in counts})
    per_day = {c: [counts.get((c, on), 0) for on in days] for c in campaigns}
    step = -(-len(days) // MAX_POINTS)  # days per point: at most MAX_POINTS points
    return DailyEntries(
        tuple(days[::step]),
        {
            c: tuple(sum(values[n : n + step]) for n in range(0, len(values), step))
            for c, values in per_day.items()
        },
    )


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One line of the ``decisions`` table."""

    at: datetime
    customer_id: str
    journey_id: str | None
    action: str
    step: str | None
    channel: str | None
    status: str | None
    reason: str | None


def recent_decisions(
    conn: sa.Connection, campaign_id: str, limit: int = RECENT_DECISIONS
) -> list[DecisionRow]:
    """The campaign's latest ``limit`` decisions, newest first."""
    d = decisions.c
    query = (
        sa.select(
            d.at, d.customer_id, d.journey_id, d.action, d.step, d.channel, d.status, d.reason
        )
        .where(d.campaign_id == campaign_id)
        .order_by(d.at.desc(), d.id.desc())
        .limit(limit)
    )
    return [DecisionRow(*row) for row in conn.execute(query)]


def has_decisions(conn: sa.Connection, campaign_id: str) -> bool:
    """Whether the engine ever decided anything for ``campaign_id``."""
    query = sa.select(decisions.c.id).where(decisions.c.campaign_id == campaign_id).limit(1)
    return conn.execute(query).first() is not None


@dataclass
class OutboxHealth:
    """Every outbox row by where it stands; failed and skipped ones by reason (their detail's
    text before the first ``:``)."""

    pending: int = 0  # waiting for delivery, retrying ones included
    retrying: int = 0  # pending after at least one failed attempt
    sending: int = 0
    delivered: int = 0
    unknown: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)  # a status this version does not know


def _reason(detail: str | None) -> str:
    text = (detail or "").partition(":")[0].strip()
    return text or "no detail"


def outbox_health(conn: sa.Connection) -> OutboxHealth:
    """The whole outbox (campaign sends and consent syncs alike) by status and reason."""
    o = outbox.c
    found = OutboxHealth()
    retried = sa.case((o.attempts > 0, 1), else_=0)
    query = sa.select(o.status, retried, sa.func.count()).group_by(o.status, retried)
    for status, again, number in conn.execute(query):
        match status:
            case "pending":
                found.pending += number
                found.retrying += number if again else 0
            case "sending":
                found.sending += number
            case "delivered":
                found.delivered += number
            case "unknown":
                found.unknown += number
            case "failed" | "skipped":
                pass  # by reason, below
            case _:
                found.other[status] += number
    query = (
        sa.select(o.status, o.detail, sa.func.count())
        .where(o.status.in_(("failed", "skipped")))
        .group_by(o.status, o.detail)
    )
    for status, detail, number in conn.execute(query):
        (found.failed if status == "failed" else found.skipped)[_reason(detail)] += number
    return found
