"""Read-only reports over the campaign engine's tables, for ``followup status``.

:func:`status_report` counts, per campaign, the journeys on each version (the current one from
the campaign files, the older ones journeys keep), the pending timers, the outbox rows by status,
and lists the outbox rows whose outcome is ``unknown`` (a human must check whether they reached
the customer) or ``failed``. ``explain``'s read model is :mod:`engine.drive.explanation`, read
from the tables by :mod:`engine.durable.sql_reads`.

Only SQLAlchemy Core reads, on the caller's connection; the results are small frozen dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_status import OPEN, OutboxStatus
from engine.drive.partitions import next_due
from engine.journeys.outcomes import JourneyStatus
from engine.rates import Rate
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

OUTBOX_STATUSES = tuple(status.value for status in OutboxStatus)  # plain str: JSON keys
JOURNEY_STATUSES = tuple(status.value for status in JourneyStatus)  # plain str: JSON keys
OPEN_OUTBOX = tuple(status.value for status in OPEN)  # rows that keep a campaign reported
REMOVED = "removed"  # the status of a campaign whose file is gone
SCHEDULE_PREFIX = "schedule:"
SEGMENTS = "segments"


# --- followup status -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurrentCampaign:
    """What the campaign files say of one campaign now."""

    status: str  # active | paused | draft
    version: str


@dataclass(frozen=True, slots=True)
class VersionCount:
    """The journeys of one campaign version."""

    version: str
    current: bool
    active: int
    completed: int
    exited: int
    first_seen_at: datetime | None  # when the engine first ran this version


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An outbox row a person should look at (``unknown`` or ``failed``)."""

    key: str
    campaign_id: str
    journey_id: str
    step: str
    customer_id: str
    channel: str
    action: str
    status: str
    detail: str | None
    attempts: int
    decided_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CampaignStatus:
    """One campaign: its file's status and version, its journeys, timers and outbox."""

    campaign_id: str
    status: str  # active | paused | draft | removed
    current_version: str | None  # None when the file is gone
    versions: tuple[VersionCount, ...]  # the current one first, then older ones, latest first
    timers: int
    timers_overdue: int
    next_due_at: datetime | None
    next_tick_at: datetime | None  # the next run of a schedule-triggered campaign
    outbox: Mapping[str, int]  # every status of OUTBOX_STATUSES, zero included

    @property
    def active(self) -> int:
        """Journeys still running, on any version."""
        return sum(v.active for v in self.versions)

    @property
    def completed(self) -> int:
        """Journeys that ran to their last step."""
        return sum(v.completed for v in self.versions)

    @property
    def exited(self) -> int:
        """Journeys ended early (exit event, restart, merge)."""
        return sum(v.exited for v in self.versions)

    @property
    def active_on_older(self) -> int:
        """Journeys still running a version that is not the current file's."""
        return sum(v.active for v in self.versions if not v.current)


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    """A provider held to a rate: the rows it put off, waiting for a turn, and when its
    bucket is full again (``None``: before its first call, or already full)."""

    channel: str
    rate: str
    waiting: int
    full_at: datetime | None


@dataclass(frozen=True)
class StatusReport:
    """The whole project: campaigns, the inbox backlog and the outbox rows to check."""

    at: datetime
    campaigns: tuple[CampaignStatus, ...]
    inbox_backlog: int  # events logged that the journey engine has not taken yet
    inbox_oldest_at: datetime | None
    unknown: tuple[OutboxRow, ...]  # every row whose outcome is unknown
    failed: tuple[OutboxRow, ...]  # the latest failed rows (see ``failed_total``)
    failed_total: int
    next_sweep_at: datetime | None  # the next re-evaluation of segment triggers
    segment_looks_due: int = 0  # customers that sweep will look at, by now
    next_segment_look_at: datetime | None = None  # the earliest look booked after now
    throttles: tuple[ThrottleStatus, ...] = ()

    @property
    def outbox(self) -> dict[str, int]:
        """Outbox rows by status, over every campaign."""
        return {s: sum(c.outbox.get(s, 0) for c in self.campaigns) for s in OUTBOX_STATUSES}


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


def _version_order(
    current: str | None, first_seen: Mapping[str, datetime]
) -> Callable[[str], tuple[int, float, str]]:
    """Current version first, then the others, most recently first seen first."""

    def key(version: str) -> tuple[int, float, str]:
        seen = first_seen.get(version)
        return (0 if version == current else 1, -seen.timestamp() if seen else 0.0, version)

    return key


def status_report(
    conn: sa.Connection,
    current: Mapping[str, CurrentCampaign],
    now: datetime,
    failed_limit: int = 20,
    rates: Mapping[str, Rate] | None = None,
) -> StatusReport:
    """Every campaign of the files (``current``, by id) and every other one that still has
    running journeys, timers or undelivered outbox rows; ``now`` decides which timers are
    overdue; ``rates`` are the providers' throttles, reported with what they hold back."""
    by_version: dict[str, dict[str, dict[str, int]]] = {}
    query = sa.select(
        journeys.c.campaign_id, journeys.c.campaign_version, journeys.c.status, sa.func.count()
    ).group_by(journeys.c.campaign_id, journeys.c.campaign_version, journeys.c.status)
    for campaign_id, version, status, count in conn.execute(query):
        counts = by_version.setdefault(campaign_id, {}).setdefault(version, {})
        counts[status] = counts.get(status, 0) + count

    first_seen: dict[str, dict[str, datetime]] = {}
    query = sa.select(
        campaign_versions.c.campaign_id,
        campaign_versions.c.version,
        campaign_versions.c.first_seen_at,
    )
    for campaign_id, version, seen in conn.execute(query):
        first_seen.setdefault(campaign_id, {})[version] = seen

    timers: dict[str, tuple[int, int, datetime | None]] = {}
    overdue = sa.func.sum(sa.case((journey_timers.c.due_at <= now, 1), else_=0))
    query = sa.select(
        journey_timers.c.campaign_id,
        sa.func.count(),
        overdue,
        sa.func.min(journey_timers.c.due_at),
    ).group_by(journey_timers.c.campaign_id)
    for campaign_id, count, late, due in conn.execute(query):
        # min() of a UTC column comes back naive on SQLite: read it as UTC
        timers[campaign_id] = (count, int(late or 0), _utc(due))

    by_status: dict[str, dict[str, int]] = {}
    query = (
        sa.select(outbox.c.campaign_id, outbox.c.status, sa.func.count())
        .where(outbox.c.campaign_id != "")  # consent changes belong to no campaign
        .group_by(outbox.c.campaign_id, outbox.c.status)
    )
    for campaign_id, status, count in conn.execute(query):
        by_status.setdefault(campaign_id, {})[status] = count

    ticks = {row.name: row.due_at for row in conn.execute(sa.select(schedule_ticks))}

    running = {
        cid
        for cid, versions in by_version.items()
        if any(counts.get("active", 0) for counts in versions.values())
    }
    undelivered = {
        cid
        for cid, counts in by_status.items()
        if any(counts.get(status, 0) for status in OPEN_OUTBOX)
    }
    ids = sorted(set(current) | running | set(timers) | undelivered)

    campaigns = []
    for campaign_id in ids:
        file = current.get(campaign_id)
        version_now = file.version if file is not None else None
        seen = first_seen.get(campaign_id, {})
        counted = by_version.get(campaign_id, {})
        versions = set(counted) | ({version_now} if version_now is not None else set())
        count, late, due = timers.get(campaign_id, (0, 0, None))
        statuses = by_status.get(campaign_id, {})
        campaigns.append(
            CampaignStatus(
                campaign_id=campaign_id,
                status=file.status if file is not None else REMOVED,
                current_version=version_now,
                versions=tuple(
                    VersionCount(
                        version=version,
                        current=version == version_now,
                        active=counted.get(version, {}).get("active", 0),
                        completed=counted.get(version, {}).get("completed", 0),
                        exited=counted.get(version, {}).get("exited", 0),
                        first_seen_at=seen.get(version),
                    )
                    for version in sorted(versions, key=_version_order(version_now, seen))
                ),
                timers=count,
                timers_overdue=late,
                next_due_at=due,
                next_tick_at=next_due(ticks, SCHEDULE_PREFIX + campaign_id),
                outbox={status: statuses.get(status, 0) for status in OUTBOX_STATUSES}
                | {s: n for s, n in statuses.items() if s not in OUTBOX_STATUSES},
            )
        )

    backlog, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(journey_inbox.c.timestamp))
    ).one()
    unknown = tuple(
        _outbox_row(row)
        for row in conn.execute(
            sa.select(outbox)
            .where(outbox.c.status == OutboxStatus.UNKNOWN)
            .order_by(outbox.c.updated_at, outbox.c.id)
        )
    )
    failed_total = conn.scalar(
        sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == OutboxStatus.FAILED)
    )
    failed = tuple(
        _outbox_row(row)
        for row in conn.execute(
            sa.select(outbox)
            .where(outbox.c.status == OutboxStatus.FAILED)
            .order_by(outbox.c.updated_at.desc(), outbox.c.id.desc())
            .limit(failed_limit)
        )
    )
    looks_due = conn.scalar(
        sa.select(sa.func.count()).select_from(segment_looks).where(segment_looks.c.due_at <= now)
    )
    next_look = conn.scalar(
        sa.select(sa.func.min(segment_looks.c.due_at)).where(segment_looks.c.due_at > now)
    )
    return StatusReport(
        throttles=_throttles(conn, rates or {}),
        at=now,
        campaigns=tuple(campaigns),
        inbox_backlog=int(backlog or 0),
        inbox_oldest_at=_utc(oldest),
        unknown=unknown,
        failed=failed,
        failed_total=int(failed_total or 0),
        next_sweep_at=next_due(ticks, SEGMENTS),
        segment_looks_due=int(looks_due or 0),
        next_segment_look_at=_utc(next_look),
    )


def _utc(value: Any) -> datetime | None:
    """An aggregate of a UTC column (SQLite returns it naive, or as text), as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def recorded_campaigns(conn: sa.Connection) -> set[str]:
    """Every campaign the engine has ever run (a version recorded) or decided about."""
    found = set(conn.scalars(sa.select(campaign_versions.c.campaign_id).distinct()))
    found.update(conn.scalars(sa.select(decisions.c.campaign_id).distinct()))
    return found


def _throttles(conn: sa.Connection, rates: Mapping[str, Rate]) -> tuple[ThrottleStatus, ...]:
    if not rates:
        return ()
    waiting: dict[str, int] = dict(
        conn.execute(
            sa.select(outbox.c.channel, sa.func.count())
            .where(outbox.c.status == OutboxStatus.PENDING, outbox.c.detail.like("throttled:%"))
            .group_by(outbox.c.channel)
        ).all()
    )
    full: dict[str, float] = dict(conn.execute(sa.select(throttles.c.name, throttles.c.tat)).all())
    wall = time.time()
    return tuple(
        ThrottleStatus(
            channel,
            str(rate),
            int(waiting.get(channel, 0)),
            datetime.fromtimestamp(full[channel], UTC)
            if channel in full and full[channel] > wall
            else None,
        )
        for channel, rate in sorted(rates.items())
    )
