"""What the dashboard reads beside the report: the period picked, entries per campaign per day,
a campaign's latest decisions and the outbox by status and reason. Its reads are a
:class:`DashboardReads` (the tables': :class:`engine.durable.sql_service.SqlServiceReads`); the
dashboard runs them in a worker thread."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

from engine.drive.outbox_status import OutboxStatus
from engine.reports.journey_counts import Period

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


class DashboardReads(Protocol):
    """What a store tells the dashboard beside the report."""

    def entries_per_day(self, period: Period) -> Iterable[tuple[str, str, int]]:
        """``(campaign, UTC day as YYYY-MM-DD, journeys entered)`` in ``period``."""
        ...

    def recent_decisions(self, campaign_id: str, limit: int) -> list[DecisionRow]:
        """The campaign's latest ``limit`` decisions, newest first."""
        ...

    def has_decisions(self, campaign_id: str) -> bool:
        """Whether the engine ever decided anything for ``campaign_id``."""
        ...

    def outbox_statuses(self) -> Iterable[tuple[str, bool, int]]:
        """``(status, tried before, rows)`` of the whole outbox."""
        ...

    def outbox_details(self) -> Iterable[tuple[str, str | None, int]]:
        """``(status, detail, rows)`` of the failed and skipped rows."""
        ...


MAX_POINTS = 120  # a trend line over a longer period sums its days into this many points


@dataclass(frozen=True)
class DailyEntries:
    """Journeys entered per UTC day, per campaign, every day of the range."""

    days: tuple[str, ...]
    by_campaign: Mapping[str, tuple[int, ...]]

    def of(self, campaign_id: str) -> tuple[int, ...]:
        """The campaign's entries per day (zeros when it had none)."""
        return self.by_campaign.get(campaign_id, (0,) * len(self.days))


def daily_entries(reads: DashboardReads, period: Period, now: datetime) -> DailyEntries:
    """Entries (``enter`` decisions) per campaign and day in ``period``: every day from the
    period's start (else the first entry) to its end or ``now`` (else the last entry)."""
    counts = {(campaign, on): n for campaign, on, n in reads.entries_per_day(period)}
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


def outbox_health(reads: DashboardReads) -> OutboxHealth:
    """The whole outbox (campaign sends and consent syncs alike) by status and reason."""
    found = OutboxHealth()
    for status, again, number in reads.outbox_statuses():
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
    for status, detail, number in reads.outbox_details():
        (found.failed if status == OutboxStatus.FAILED else found.skipped)[_reason(detail)] += (
            number
        )
    return found
