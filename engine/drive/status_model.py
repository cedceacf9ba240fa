"""The read model of ``followup status``: campaigns, their journeys by version, timers, the
outbox by status, the inbox backlog, the rows a person should check, throttles.

:func:`status_report` counts, per campaign, the journeys on each version (the current one from
the campaign files, the older ones journeys keep), the pending timers, the outbox rows by status,
and lists the outbox rows whose outcome is ``unknown`` (a human must check whether they reached
the customer) or ``failed``. It reads through :class:`StatusReads`, which a store implements
(:class:`engine.durable.sql_status.SqlStatusReads` over the tables: ``followup status``, the
dashboard); it only assembles. The results are small frozen dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from engine.drive.outbox_status import OPEN, OutboxStatus
from engine.drive.partitions import next_due
from engine.drive.stored_schedules import SCHEDULE_PREFIX, SEGMENTS
from engine.journeys.outcomes import JourneyStatus
from engine.rates import Rate

OUTBOX_STATUSES = tuple(status.value for status in OutboxStatus)  # plain str: JSON keys
JOURNEY_STATUSES = tuple(status.value for status in JourneyStatus)  # plain str: JSON keys
OPEN_OUTBOX = tuple(status.value for status in OPEN)  # rows that keep a campaign reported
REMOVED = "removed"  # the status of a campaign whose file is gone


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


class StatusReads(Protocol):
    """What a store tells ``status``."""

    def journey_counts(self) -> Iterable[tuple[str, str, str, int]]:
        """``(campaign, version, journey status, count)`` of every journey."""
        ...

    def first_seen(self) -> Iterable[tuple[str, str, datetime]]:
        """``(campaign, version, when the engine first ran it)`` of every version recorded."""
        ...

    def timer_counts(self, now: datetime) -> Iterable[tuple[str, int, int, datetime | None]]:
        """``(campaign, timers, of them due by now, the earliest due)`` per campaign."""
        ...

    def outbox_counts(self) -> Iterable[tuple[str, str, int]]:
        """``(campaign, status, count)`` of the outbox rows of campaigns (not of consent
        changes, which belong to none)."""
        ...

    def schedules(self) -> dict[str, datetime]:
        """When each schedule row (``schedule:<campaign>``, ``segments``) is next due."""
        ...

    def inbox(self) -> tuple[int, datetime | None]:
        """Events the journey engine has not taken yet, and the oldest one's time."""
        ...

    def unknown_rows(self) -> list[OutboxRow]:
        """Every row whose outcome is unknown, the earliest settled first."""
        ...

    def failed_rows(self, limit: int) -> tuple[list[OutboxRow], int]:
        """The latest ``limit`` rows failed for good (the latest first), and how many there are."""
        ...

    def segment_looks(self, now: datetime) -> tuple[int, datetime | None]:
        """Segment looks due by ``now``, and the earliest booked after it."""
        ...

    def throttled(self) -> tuple[dict[str, int], dict[str, float]]:
        """Rows put off by a throttle, by channel; and each throttle's bucket as kept: when it
        is full again, in wall seconds."""
        ...


def _version_order(
    current: str | None, first_seen: Mapping[str, datetime]
) -> Callable[[str], tuple[int, float, str]]:
    """Current version first, then the others, most recently first seen first."""

    def key(version: str) -> tuple[int, float, str]:
        seen = first_seen.get(version)
        return (0 if version == current else 1, -seen.timestamp() if seen else 0.0, version)

    return key


def status_report(
    reads: StatusReads,
    current: Mapping[str, CurrentCampaign],
    now: datetime,
    failed_limit: int = 20,
    rates: Mapping[str, Rate] | None = None,
    wall: float | None = None,
) -> StatusReport:
    """Every campaign of the files (``current``, by id) and every other one that still has
    running journeys, timers or undelivered outbox rows; ``now`` decides which timers are
    overdue; ``rates`` are the providers' throttles, reported with what they hold back at
    ``wall`` (seconds; default: now by the system's clock)."""
    by_version: dict[str, dict[str, dict[str, int]]] = {}
    for campaign_id, version, status, count in reads.journey_counts():
        counts = by_version.setdefault(campaign_id, {}).setdefault(version, {})
        counts[status] = counts.get(status, 0) + count
    first_seen: dict[str, dict[str, datetime]] = {}
    for campaign_id, version, first in reads.first_seen():
        first_seen.setdefault(campaign_id, {})[version] = first
    timers = {cid: (count, late, due) for cid, count, late, due in reads.timer_counts(now)}
    by_status: dict[str, dict[str, int]] = {}
    for campaign_id, status, count in reads.outbox_counts():
        by_status.setdefault(campaign_id, {})[status] = count
    ticks = reads.schedules()

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

    backlog, oldest = reads.inbox()
    failed, failed_total = reads.failed_rows(failed_limit)
    looks_due, next_look = reads.segment_looks(now)
    return StatusReport(
        throttles=_throttles(reads, rates or {}, wall),
        at=now,
        campaigns=tuple(campaigns),
        inbox_backlog=backlog,
        inbox_oldest_at=oldest,
        unknown=tuple(reads.unknown_rows()),
        failed=tuple(failed),
        failed_total=failed_total,
        next_sweep_at=next_due(ticks, SEGMENTS),
        segment_looks_due=looks_due,
        next_segment_look_at=next_look,
    )


def _throttles(
    reads: StatusReads, rates: Mapping[str, Rate], wall: float | None
) -> tuple[ThrottleStatus, ...]:
    if not rates:
        return ()
    waiting, full = reads.throttled()
    wall = time.time() if wall is None else wall
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
