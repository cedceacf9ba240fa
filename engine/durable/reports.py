"""Read-only reports over the campaign engine's tables, for ``followup status`` and ``explain``.

:func:`status_report` counts, per campaign, the journeys on each version (the current one from
the campaign files, the older ones journeys keep), the pending timers, the outbox rows by status,
and lists the outbox rows whose outcome is ``unknown`` (a human must check whether they reached
the customer) or ``failed``. :func:`explain_customer` gives a customer's decisions in time order,
those of every profile merged into them included, each channel action joined with the outcome
of its outbox row (by its ``journey:step`` key).

Only SQLAlchemy Core reads, on the caller's connection; the results are small frozen dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_status import OPEN, OutboxStatus
from engine.drive.partitions import next_due
from engine.durable.store import outbox_key
from engine.journeys.outcomes import JourneyStatus
from engine.rates import Rate
from engine.storage.customer_store import among
from engine.storage.tables import (
    campaign_versions,
    customers,
    decisions,
    events,
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
CHANNEL_ACTIONS = frozenset({"send", "audience_add", "audience_remove"})
OPEN_OUTBOX = tuple(status.value for status in OPEN)  # rows that keep a campaign reported
REMOVED = "removed"  # the status of a campaign whose file is gone
SCHEDULE_PREFIX = "schedule:"
SEGMENTS = "segments"
MAX_MERGE_DEPTH = 64


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


# --- followup explain ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a channel action: its outbox row."""

    key: str
    status: str  # pending | sending | delivered | skipped | failed | unknown
    detail: str | None
    attempts: int
    updated_at: datetime
    next_attempt_at: datetime
    provider_id: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision about the customer, with its reason, and for a channel action that was
    decided ``sent`` the outcome of its delivery (``None`` when no outbox row holds it)."""

    at: datetime
    campaign_id: str
    journey_id: str | None
    customer_id: str  # the profile it was decided for (an id merged since keeps its own)
    action: str  # enter | exit | convert | send | audience_add | audience_remove | not_entered
    step: str | None
    channel: str | None
    status: str | None  # sent | skipped, on channel actions
    reason: str | None
    fields: Mapping[str, Any]
    outcome: Outcome | None

    @property
    def outbox_key(self) -> str | None:
        """The key of the outbox row of a channel action decided ``sent``."""
        if (
            self.action not in CHANNEL_ACTIONS
            or self.status != "sent"
            or self.journey_id is None
            or self.step is None
        ):
            return None
        return outbox_key(self.journey_id, self.step, self.action)


@dataclass(frozen=True, slots=True)
class JourneyState:
    """One of the customer's journeys, with its next timer."""

    id: str
    campaign_id: str
    version: str
    status: str
    entered_at: datetime
    updated_at: datetime
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a customer did or did not get a campaign's messages."""

    customer_id: str
    merged_ids: tuple[str, ...]  # every profile merged into this one (directly or not)
    campaign_id: str | None
    decisions: tuple[Decision, ...]  # in time order
    journeys: tuple[JourneyState, ...]  # entry order
    events: Mapping[str, int]  # the customer's logged events, by name (else by type)
    pending_events: int  # of which the journey engine has not taken yet

    @property
    def customer_ids(self) -> tuple[str, ...]:
        """The customer and every profile merged into them."""
        return (self.customer_id, *self.merged_ids)


def merged_into(conn: sa.Connection, customer_id: str) -> tuple[str, ...]:
    """Every profile merged into ``customer_id``, following ``merged_into`` chains, sorted."""
    found: set[str] = set()
    frontier = [customer_id]
    for _ in range(MAX_MERGE_DEPTH):  # chains are short; the bound guards against a cycle
        if not frontier:
            break
        following: list[str] = []
        for where in among(conn, customers.c.merged_into, frontier):
            query = sa.select(customers.c.id).where(where)
            following.extend(cid for cid in conn.scalars(query) if cid not in found)
        found.update(following)
        frontier = following
    found.discard(customer_id)
    return tuple(sorted(found))


def outcomes(conn: sa.Connection, keys: Sequence[str]) -> dict[str, Outcome]:
    """The outbox rows of the given keys, by key."""
    found: dict[str, Outcome] = {}
    for where in among(conn, outbox.c.key, keys):
        for row in conn.execute(sa.select(outbox).where(where)):
            found[row.key] = Outcome(
                key=row.key,
                status=row.status,
                detail=row.detail,
                attempts=row.attempts,
                updated_at=row.updated_at,
                next_attempt_at=row.next_attempt_at,
                provider_id=row.provider_id,
            )
    return found


def explain_customer(
    conn: sa.Connection, customer_id: str, campaign_id: str | None = None
) -> Explanation:
    """The decisions about a live customer (and every profile merged into them), optionally
    for one campaign, each channel action joined with its delivery outcome."""
    merged = merged_into(conn, customer_id)
    ids = (customer_id, *merged)

    rows: list[Any] = []
    for where in among(conn, decisions.c.customer_id, ids):
        query = sa.select(decisions).where(where)
        if campaign_id is not None:
            query = query.where(decisions.c.campaign_id == campaign_id)
        rows.extend(conn.execute(query))
    rows.sort(key=lambda r: (r.at, r.id))
    partial = [
        Decision(
            at=row.at,
            campaign_id=row.campaign_id,
            journey_id=row.journey_id,
            customer_id=row.customer_id,
            action=row.action,
            step=row.step,
            channel=row.channel,
            status=row.status,
            reason=row.reason,
            fields=dict(row.fields or {}),
            outcome=None,
        )
        for row in rows
    ]
    found = outcomes(conn, [key for d in partial if (key := d.outbox_key) is not None])
    joined = tuple(
        d if d.outbox_key is None else replace(d, outcome=found.get(d.outbox_key)) for d in partial
    )

    journey_rows: list[Any] = []
    for where in among(conn, journeys.c.customer_id, ids):
        query = sa.select(journeys).where(where)
        if campaign_id is not None:
            query = query.where(journeys.c.campaign_id == campaign_id)
        journey_rows.extend(conn.execute(query))
    next_due: dict[str, datetime] = {}
    for where in among(conn, journey_timers.c.journey_id, [row.id for row in journey_rows]):
        query = sa.select(journey_timers.c.journey_id, journey_timers.c.due_at).where(where)
        for journey_id, due in conn.execute(query):
            if journey_id not in next_due or due < next_due[journey_id]:
                next_due[journey_id] = due
    states = tuple(
        JourneyState(
            id=row.id,
            campaign_id=row.campaign_id,
            version=row.campaign_version,
            status=row.status,
            entered_at=row.entered_at,
            updated_at=row.updated_at,
            next_due_at=next_due.get(row.id),
        )
        for row in sorted(journey_rows, key=lambda r: (r.entered_at, r.id))
    )

    by_name: dict[str, int] = {}
    pending = 0
    for where in among(conn, events.c.customer_id, ids):
        query = (
            sa.select(events.c.type, events.c.name, sa.func.count())
            .where(where)
            .group_by(events.c.type, events.c.name)
        )
        for kind, name, count in conn.execute(query):
            label = name or kind  # identify, alias and page events have no name
            by_name[label] = by_name.get(label, 0) + count
        query = (
            sa.select(sa.func.count())
            .select_from(
                events.join(journey_inbox, journey_inbox.c.message_id == events.c.message_id)
            )
            .where(where)
        )
        pending += conn.scalar(query) or 0
    return Explanation(
        customer_id=customer_id,
        merged_ids=merged,
        campaign_id=campaign_id,
        decisions=joined,
        journeys=states,
        events=dict(sorted(by_name.items())),
        pending_events=pending,
    )


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
