"""The durable runtime's passes: events, due timers, schedule ticks, segment sweeps.

Each pass works in batches; a batch is one transaction that loads the customers it touches,
lets the journey engine decide, and writes back (see :mod:`engine.durable.store`). Events are
taken from ``journey_inbox`` in event order and removed in the same transaction, so a crash
replays them and nothing is decided twice. On PostgreSQL the rows a batch takes are claimed with
``FOR UPDATE SKIP LOCKED`` and its customers locked, so any number of workers share the work.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign, ScheduleTrigger, SegmentTrigger
from engine.channels import DeliveryAction
from engine.clock import Clock
from engine.config import ProjectConfig
from engine.durable.book import CampaignBook
from engine.durable.crash_points import CrashPoint, no_crash
from engine.durable.store import Enrich, Loaded, load, save
from engine.events import Event, EventType
from engine.ingest.pipeline import Ingestor
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import SEGMENT_SWEEP, JourneyEngine, next_tick
from engine.journeys.wakeups import SweepGrid
from engine.policies import Policies, SendPolicies
from engine.state.reducers import consent_changes
from engine.storage.customer_store import chunks, event_from_row
from engine.storage.tables import (
    customers,
    events,
    journey_inbox,
    journey_timers,
    merges,
    outbox,
    schedule_ticks,
    segment_looks,
)
from engine.storage.upserts import insert_new

SEGMENTS = "segments"  # the hourly sweep of the customers whose segment look is due
# Segment looks are booked to the microsecond, the resolution of a time: a sweep at any moment
# finds every customer whose answer may have turned since the last (booked to the second, a turn
# within the second before a sweep, such as a cooldown ending at the time of day of the sweep
# that entered the customer, waited an hour). Searched two years ahead; beyond, booked there.
LOOK_GRID = (datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1), 2**46)
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of the clock an event's time may be


def inbox_batch(now: datetime, size: int) -> sa.Select[Any]:
    """The next ``size`` events waiting in the inbox, in event order (time, then arrival), up
    to ``now`` (a later one waits for its time). Read by the inbox's own index and joined to
    the log by message id, so a batch costs the same whatever the backlog."""
    return (
        sa.select(events)
        .select_from(journey_inbox)
        .join(events, events.c.message_id == journey_inbox.c.message_id)
        .where(journey_inbox.c.timestamp <= now + CLOCK_SKEW)
        .order_by(journey_inbox.c.timestamp, journey_inbox.c.seq)
        .limit(size)
    )


@dataclass
class TickSummary:
    """What one pass did."""

    events: int = 0
    timer_customers: int = 0
    scheduled_customers: int = 0
    swept_customers: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    lines: list[PlanLine] = field(default_factory=list)

    def count(self, lines: list[PlanLine]) -> None:
        """Keep the plan lines decided, and count them by action and status."""
        self.lines.extend(lines)
        for line in lines:
            label = line.action.value + (f":{line.status}" if line.status else "")
            self.decisions[label] += 1


class DurableRuntime:
    """The journey engine over the database: one project's campaigns, exactly once."""

    def __init__(
        self,
        db: sa.Engine,
        book: CampaignBook,
        config: ProjectConfig,
        ingestor: Ingestor,
        enrich: Enrich,
        clock: Clock,
        batch_size: int = 500,
        crash: CrashPoint = no_crash,
        consent_channels: frozenset[str] = frozenset(),
        synced_events: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.db = db
        self.consent_channels = consent_channels
        self.synced_events = dict(synced_events or {})  # channel -> event names it mirrors
        self.book = book
        self.config = config
        self.ingestor = ingestor
        self.enrich = enrich
        self.clock = clock
        self.batch_size = batch_size
        self.crash = crash
        self.policies = SendPolicies(
            Policies.model_validate(config.policies), config.timezone, config.phone_region
        )
        self._lock = db.dialect.name == "postgresql"
        self._full_sweep = _full_sweep_name(book)
        with db.begin() as conn:
            book.record(conn, clock())
            # the full sweeps of other segment campaign versions; with none active, every one
            # of them: events taken meanwhile book no looks, so the same campaigns back sweep
            # everyone again
            conn.execute(
                schedule_ticks.delete().where(
                    schedule_ticks.c.name.like(f"{SEGMENTS}:%"),
                    schedule_ticks.c.name != (self._full_sweep or ""),
                )
            )

    # --- one pass ----------------------------------------------------------------------------

    def tick(self) -> TickSummary:
        """One pass: every new event, every due timer, due schedule ticks and segment sweeps."""
        summary = TickSummary()
        now = self.clock()
        while (taken := self._event_batch(summary, now)) > 0:
            summary.events += taken
        while (taken := self._timer_batch(summary, now)) > 0:
            summary.timer_customers += taken
        self._schedules(summary, now)
        self._segments(summary, now)
        return summary

    # --- batches -----------------------------------------------------------------------------

    def _load(
        self, conn: sa.Connection, ids: Iterable[str], now: datetime, **events: Any
    ) -> Loaded:
        loaded = load(
            conn,
            self.book,
            ids,
            policies=self.policies,
            reducer=self.ingestor.reducer,
            default_timezone=self.config.timezone,
            now=now,
            **events,
        )
        loaded.engine.book_segment_looks(SweepGrid(*LOOK_GRID))
        return loaded

    def _save(
        self, conn: sa.Connection, loaded: Loaded, now: datetime, summary: TickSummary
    ) -> None:
        appended = loaded.customers.appended
        survivors = loaded.customers.survivors()
        if appended:  # update steps: the traits a campaign wrote go into the log like any event
            self.ingestor.write_in(
                conn,
                [(event, "campaign") for _cid, event in appended],
                known={event.message_id: survivors.get(cid, cid) for cid, event in appended},
            )
        for merged_id, survivor_id in survivors.items():
            conn.execute(
                outbox.update()
                .where(outbox.c.customer_id == merged_id)
                .values(customer_id=survivor_id)
            )
        summary.count(save(conn, self.book, loaded, now, self.enrich))

    def _claim(self, query: sa.Select[Any], of: sa.Table) -> sa.Select[Any]:
        return query.with_for_update(skip_locked=True, of=of) if self._lock else query

    def _event_batch(self, summary: TickSummary, now: datetime) -> int:
        with self.db.begin() as conn:
            rows = list(conn.execute(self._claim(inbox_batch(now, self.batch_size), journey_inbox)))
            if not rows:
                return 0
            claimed = [row.message_id for row in rows]
            batch = sorted((event_from_row(row) for row in rows), key=lambda e: e.order_key)
            owners = {row.message_id: row.customer_id for row in rows}
            merged: dict[str, tuple[str, ...]] = {}
            for part in chunks(claimed):
                query = sa.select(merges.c.message_id, merges.c.merged_id).where(
                    merges.c.message_id.in_(part)
                )
                for message_id, merged_id in conn.execute(query.order_by(merges.c.id)):
                    merged[message_id] = (*merged.get(message_id, ()), merged_id)
            ids = set(owners.values()) | {m for found in merged.values() for m in found}
            loaded = self._load(
                conn,
                ids,
                now,
                owner_of_event=owners,
                merged_by_event=merged,
                decides_from=min(event.timestamp for event in batch),
            )
            engine = loaded.engine
            for event in batch:
                if event.timestamp > now:  # within the clock skew: the timers due by now
                    engine.advance_to(now)
                else:
                    engine.advance_before(event.timestamp)
                engine.on_event(event)
            self.crash("events_decided")
            self._save(conn, loaded, now, summary)
            self._mirror_rows(conn, batch, owners, loaded, now)
            for part in chunks(claimed):
                conn.execute(journey_inbox.delete().where(journey_inbox.c.message_id.in_(part)))
        self.crash("events_committed")
        return len(claimed)

    def _mirror_rows(
        self,
        conn: sa.Connection,
        batch: Sequence[Event],
        owners: dict[str, str],
        loaded: Loaded,
        now: datetime,
    ) -> None:
        """An outbox row per change a provider keeps on its side: consent changes on a channel
        whose provider keeps consent, shop events a provider mirrors. The dispatcher sends the
        customer's consent or cart as they stand when the row is delivered."""
        if not self.consent_channels and not self.synced_events:
            return
        survivors = loaded.customers.survivors()
        rows = []
        for event in batch:
            owner = owners.get(event.message_id)
            if owner is None:
                continue
            customer_id = survivors.get(owner, owner)
            for channel in sorted(consent_changes(event).keys() & self.consent_channels):
                key = f"consent:{channel}:{event.message_id}"
                rows.append(
                    _mirror_row(key, customer_id, channel, DeliveryAction.CONSENT, {}, event, now)
                )
            for channel, names in sorted(self.synced_events.items()):
                if event.type is EventType.TRACK and event.name in names:
                    fields = {"event": event.name, "properties": dict(event.properties)}
                    key = f"activity:{channel}:{event.message_id}"
                    rows.append(
                        _mirror_row(
                            key, customer_id, channel, DeliveryAction.ACTIVITY, fields, event, now
                        )
                    )
        if rows:
            insert_new(conn, outbox, rows)

    def _timer_batch(self, summary: TickSummary, now: datetime) -> int:
        running = sorted(c.id for c in self.book.active)
        with self.db.begin() as conn:
            query = (
                sa.select(journey_timers.c.customer_id)
                .where(journey_timers.c.due_at <= now, journey_timers.c.campaign_id.in_(running))
                .order_by(journey_timers.c.due_at, journey_timers.c.id)
                .limit(self.batch_size)
            )
            ids = set(conn.scalars(self._claim(query, journey_timers)))
            if not ids:
                return 0
            loaded = self._load(conn, ids, now)
            loaded.engine.advance_to(now)
            self._save(conn, loaded, now, summary)
        return len(ids)

    def _live_ids_after(self, conn: sa.Connection, after: str | None) -> Sequence[str]:
        query = sa.select(customers.c.id).where(customers.c.merged_into.is_(None))
        if after is not None:
            query = query.where(customers.c.id > after)
        return list(conn.scalars(query.order_by(customers.c.id).limit(self.batch_size)))

    def _due(self, conn: sa.Connection, name: str, first: datetime) -> Any:
        row = conn.execute(sa.select(schedule_ticks).where(schedule_ticks.c.name == name)).first()
        if row is None:  # first seen: another worker may be recording it too
            insert_new(conn, schedule_ticks, [{"name": name, "due_at": first}])
        return row

    def _schedules(self, summary: TickSummary, now: datetime) -> None:
        for campaign in self.book.active:
            if isinstance(campaign.trigger, ScheduleTrigger):
                summary.scheduled_customers += self._schedule(
                    campaign, campaign.trigger, summary, now
                )

    def _schedule(
        self, campaign: Campaign, trigger: ScheduleTrigger, summary: TickSummary, now: datetime
    ) -> int:
        zone = self.config.timezone
        return self._every_customer(
            f"schedule:{campaign.id}",
            next_tick(trigger, now, zone),  # first seen: the next tick, not one now
            now,
            summary,
            lambda engine, due, ids: engine.enter_scheduled(campaign, due, ids),
            # the next tick after now: missed ticks are not caught up
            lambda due: next_tick(trigger, max(due, now), zone),
        )

    def _segments(self, summary: TickSummary, now: datetime) -> None:
        """The segment sweep. Every customer is looked at once when the segment campaigns are
        new or changed (which books each one's next look); then, every hour, only those whose
        booked look is due."""
        full = self._full_sweep
        if full is None:
            return
        summary.swept_customers += self._every_customer(
            full,
            now,
            now,
            summary,
            lambda engine, _due, ids: engine.sweep_segments(now, ids),
            lambda _due: NEVER,  # once per version of the segment campaigns
        )
        with self.db.begin() as conn:
            row = self._due(conn, SEGMENTS, now)
            if row is not None and row.due_at > now:
                return
        while (taken := self._looks_batch(summary, now)) > 0:
            summary.swept_customers += taken
        with self.db.begin() as conn:
            conn.execute(
                schedule_ticks.update()
                .where(schedule_ticks.c.name == SEGMENTS)
                .values(due_at=now + SEGMENT_SWEEP, after_customer=None)
            )

    def _looks_batch(self, summary: TickSummary, now: datetime) -> int:
        """Sweep a batch of the customers whose segment look is due; the sweep books each one's
        next look after ``now`` (a customer merged away or gone is dropped). On PostgreSQL the
        customers are claimed, then their looks taken: the order of an event batch, which locks
        its customers and then books their looks (the other way round, the two deadlocked)."""
        with self.db.begin() as conn:
            query = (
                sa.select(segment_looks.c.customer_id, customers.c.merged_into)
                .join(customers, customers.c.id == segment_looks.c.customer_id)
                .where(segment_looks.c.due_at <= now)
                .order_by(segment_looks.c.due_at, segment_looks.c.customer_id)
                .limit(self.batch_size)
            )
            rows = list(conn.execute(self._claim(query, customers)))
            if not rows:
                return 0
            ids = [row.customer_id for row in rows]
            conn.execute(segment_looks.delete().where(segment_looks.c.customer_id.in_(ids)))
            live = sorted(row.customer_id for row in rows if row.merged_into is None)
            if live:
                loaded = self._load(conn, live, now)
                loaded.engine.sweep_segments(now, live)
                self._save(conn, loaded, now, summary)
        return len(ids)

    def _every_customer(
        self,
        name: str,
        first: datetime,
        now: datetime,
        summary: TickSummary,
        act: Callable[[JourneyEngine, datetime, Sequence[str]], None],
        following: Callable[[datetime], datetime],
    ) -> int:
        """When the ``schedule_ticks`` row ``name`` is due (``first`` when new), ``act`` on every
        live customer, a batch per transaction that records how far it got (a crash resumes),
        then set the row to ``following(due)``. Returns how many customers it went over."""
        done = 0
        while True:
            with self.db.begin() as conn:
                row = self._due(conn, name, first)
                due = row.due_at if row is not None else first
                if due > now:
                    return done
                ids = self._live_ids_after(conn, row.after_customer if row is not None else None)
                if not ids:
                    conn.execute(
                        schedule_ticks.update()
                        .where(schedule_ticks.c.name == name)
                        .values(due_at=following(due), after_customer=None)
                    )
                    return done
                loaded = self._load(conn, ids, now, decides_from=due)
                act(loaded.engine, due, ids)
                self._save(conn, loaded, now, summary)
                conn.execute(
                    schedule_ticks.update()
                    .where(schedule_ticks.c.name == name)
                    .values(after_customer=ids[-1])
                )
                done += len(ids)


def _full_sweep_name(book: CampaignBook) -> str | None:
    """The ``schedule_ticks`` row of the one sweep of every customer that the active segment
    campaigns, at their versions, need (``None``: there are none)."""
    versions = sorted(
        (c.id, book.version_of[c.id]) for c in book.active if isinstance(c.trigger, SegmentTrigger)
    )
    if not versions:
        return None
    return f"{SEGMENTS}:{hashlib.sha256(json.dumps(versions).encode()).hexdigest()[:16]}"


def _mirror_row(
    key: str,
    customer_id: str,
    channel: str,
    action: DeliveryAction,
    fields: dict[str, Any],
    event: Event,
    now: datetime,
) -> dict[str, Any]:
    """An outbox row of no campaign: a change a provider keeps in step on its side."""
    return {
        "key": key[:200],
        "journey_id": "",
        "step": "",
        "campaign_id": "",
        "customer_id": customer_id,
        "channel": channel,
        "action": action.value,
        "fields": fields,
        "status": "pending",
        "decided_at": event.timestamp,
        "next_attempt_at": now,
        "updated_at": now,
    }
