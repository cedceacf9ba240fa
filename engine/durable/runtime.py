"""The durable runtime's passes: events, due timers, schedule ticks, segment sweeps.

Each pass works in batches; a batch is one transaction that claims some customers, lets the
journey engine decide everything they have due (their events in the inbox, in event order, and
their timers) and writes back (see :mod:`engine.durable.store`). Events are removed from
``journey_inbox`` in the same transaction, so a crash replays them and nothing is decided twice.
On PostgreSQL customers are claimed with ``FOR UPDATE SKIP LOCKED`` (:mod:`engine.durable.batches`),
so any number of workers share the work, never wait on each other, and never apply a customer's
event or timer past an earlier one another pass holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from typing import Any

import sqlalchemy as sa

from engine.campaigns.durations import format_duration
from engine.campaigns.schema import Campaign, ScheduleTrigger, SegmentTrigger
from engine.channels import DeliveryAction
from engine.clock import Clock
from engine.config import ProjectConfig
from engine.durable.batches import (
    Claims,
    Taken,
    after,
    event_owners,
    inbox_batch,
    looks_batch,
    merged_away,
    take,
    timer_batch,
)
from engine.durable.book import CampaignBook
from engine.durable.crash_points import CrashPoint, no_crash
from engine.durable.outbox_status import OutboxStatus
from engine.durable.store import Enrich, Loaded, load, save, save_views
from engine.events import Event, EventType
from engine.ingest.pipeline import Ingestor
from engine.journeys.plan import PlanLine, format_time
from engine.journeys.runtime import JourneyEngine, RendersBody
from engine.journeys.schedule import SEGMENT_SWEEP, next_tick
from engine.journeys.wakeups import SweepGrid
from engine.policies import Policies, SendPolicies
from engine.state.reducers import consent_changes
from engine.storage.customer_store import chunks
from engine.storage.tables import (
    journey_inbox,
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


log = logging.getLogger("followup.durable")


@dataclass
class TickSummary:
    """What one pass did."""

    events: int = 0
    timer_customers: int = 0
    scheduled_customers: int = 0
    swept_customers: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    lines: list[PlanLine] = field(default_factory=list)
    ticks_skipped: Counter[str] = field(default_factory=Counter)  # by schedule, past the grace

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
        check_body: RendersBody | None = None,
    ) -> None:
        self.db = db
        self.check_body = check_body
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
        self.claims = Claims(db.dialect.name)
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
            check_body=self.check_body,
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
            # rows the dispatcher holds are being delivered (it finds the survivor itself):
            # passed over, not waited for
            rows = sa.select(outbox.c.id).where(outbox.c.customer_id == merged_id)
            if self.claims.lock:
                rows = rows.with_for_update(skip_locked=True)
            conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(rows.scalar_subquery()))
                .values(customer_id=survivor_id)
            )
        summary.count(save(conn, self.book, loaded, now, self.enrich))

    def _work(
        self,
        conn: sa.Connection,
        taken: Taken,
        now: datetime,
        summary: TickSummary,
        act: Callable[[JourneyEngine], None] | None = None,
        act_at: datetime | None = None,
    ) -> None:
        """Decide everything due for the customers ``taken`` holds, in time order: each event
        after the timers due before it, ``act`` at ``act_at`` (a schedule tick, a segment
        sweep), then the timers due by ``now``; and write it back."""
        at = now if act_at is None else act_at
        loaded = self._load(
            conn,
            taken.loading(),
            now,
            # the engine takes each event as the profile it was received as, until the merge
            owner_of_event={**taken.owners, **taken.received_as},
            merged_by_event=taken.merged,
            # the earliest decision: the first event, the act (the customers' due timers,
            # ``load`` adds itself)
            decides_from=min([at, *(event.timestamp for event in taken.events[:1])]),
        )
        engine = loaded.engine
        for event in taken.events:
            if act is not None and event.timestamp > at:
                engine.advance_to(at)
                act(engine)
                act = None
            if event.timestamp > now:  # within the clock skew: the timers due by now
                engine.advance_to(now)
            else:
                engine.advance_before(event.timestamp)
            engine.on_event(event)
        if act is not None:
            engine.advance_to(at)
            act(engine)
        engine.advance_to(now)
        if taken.events:
            self.crash("events_decided")
        self._save(conn, loaded, now, summary)
        self._mirror_rows(conn, taken.events, taken.owners, loaded, now)
        for part in chunks([event.message_id for event in taken.events]):
            conn.execute(journey_inbox.delete().where(journey_inbox.c.message_id.in_(part)))
        save_views(conn, loaded)

    def _event_batch(self, summary: TickSummary, now: datetime) -> int:
        """The customers of the next events in the inbox, with all they have due."""
        with self.db.begin() as conn:
            ids = self.claims.first(conn, inbox_batch(now, self.batch_size), event_owners)
            taken = take(conn, self.claims, ids, now)
            if not taken.events:
                return 0
            self._work(conn, taken, now, summary)
        self.crash("events_committed")
        return len(taken.events)

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
        held = self.ingestor.reducer.holds_back
        rows = []
        for event in batch:
            owner = owners.get(event.message_id)
            if owner is None:
                continue
            customer_id = survivors.get(owner, owner)
            for channel in sorted(consent_changes(event, held).keys() & self.consent_channels):
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
        """The customers of the next due timers, with all they have due (their events too)."""
        running = sorted(c.id for c in self.book.active)
        with self.db.begin() as conn:
            ids = self.claims.first(conn, timer_batch(now, self.batch_size, running))
            taken = take(conn, self.claims, ids, now)
            if not taken.ids:
                return 0
            self._work(conn, taken, now, summary)
        summary.events += len(taken.events)
        return len(taken.ids)

    def _due(self, name: str, first: datetime) -> Any:
        """The ``schedule_ticks`` row ``name``, recorded as due at ``first`` when new (in a
        transaction of its own: another worker may be recording it too)."""
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(schedule_ticks).where(schedule_ticks.c.name == name)
            ).first()
            if row is None:
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
        name = f"schedule:{campaign.id}"
        self._coalesce(name, trigger, summary, now)
        return self._every_customer(
            name,
            next_tick(trigger, now, zone),  # first seen: the next tick, not one now
            now,
            summary,
            lambda engine, due, ids: engine.enter_scheduled(campaign, due, ids),
            # the next tick after now: missed ticks are not caught up
            lambda due: next_tick(trigger, max(due, now), zone),
        )

    def _coalesce(
        self, name: str, trigger: ScheduleTrigger, summary: TickSummary, now: datetime
    ) -> None:
        """After passes stopped (downtime, a cron that did not run), APScheduler's model: the
        ticks missed by more than ``misfire_grace`` are skipped, the rest coalesce into the
        latest, so a weekly newsletter 11 weeks behind sends at most this week's issue, never
        the oldest one 11 weeks late. A tick already under way (a crash mid-run) goes on."""
        zone = self.config.timezone
        with self.db.begin() as conn:
            query = sa.select(schedule_ticks).where(schedule_ticks.c.name == name)
            if self.claims.lock:
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).first()
            if row is None or row.after_customer is not None or row.due_at > now:
                return
            if now - row.due_at <= trigger.misfire_grace:
                return  # on time enough; a later tick due by now is not missed yet
            # the latest tick due by now and within the grace, else the next one to come
            due = next_tick(trigger, now - trigger.misfire_grace, zone)
            while due <= now and (following := next_tick(trigger, due, zone)) <= now:
                due = following
            skipped = _ticks_between(trigger, row.due_at, due, zone)
            conn.execute(
                schedule_ticks.update().where(schedule_ticks.c.name == name).values(due_at=due)
            )
        summary.ticks_skipped[name] += skipped
        log.warning(
            "%s: %s tick(s) from %s missed by more than misfire_grace %s: skipped; %s",
            name,
            f"{skipped:,}" if skipped < MAX_COUNTED_TICKS else f"{MAX_COUNTED_TICKS:,}+",
            format_time(row.due_at),
            format_duration(trigger.misfire_grace),
            f"runs the tick of {format_time(due)}" if due <= now else f"next {format_time(due)}",
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
            at_due=False,  # a sweep looks at now, after the timers due by now
        )
        row = self._due(SEGMENTS, now)
        origin = now if row is None else row.due_at  # the next sweep of the hourly grid
        if origin > now:
            return
        sweep = origin
        while (at := self._next_sweep(sweep, now)) is not None:
            while (taken := self._looks_batch(summary, now, at)) > 0:
                summary.swept_customers += taken
            sweep = at + SEGMENT_SWEEP
        with self.db.begin() as conn:
            conn.execute(
                schedule_ticks.update()
                .where(schedule_ticks.c.name == SEGMENTS)
                .values(due_at=_grid_after(origin, now), after_customer=None)
            )

    def _next_sweep(self, sweep: datetime, now: datetime) -> datetime | None:
        """The first sweep of the hourly grid, from ``sweep`` on and by ``now``, that a look is
        due at: the first at or after the earliest look (``None``: none by ``now``). A pass
        that runs late sweeps each hour it missed, as ``simulate`` does."""
        with self.db.connect() as conn:
            earliest = conn.scalar(sa.select(sa.func.min(segment_looks.c.due_at)))
        if earliest is None:
            return None
        at = max(sweep, _grid_after(sweep, earliest - _MICROSECOND))
        return at if at <= now else None

    def _looks_batch(self, summary: TickSummary, now: datetime, at: datetime) -> int:
        """Sweep at ``at`` (a sweep of the grid, by ``now``) a batch of the customers whose
        segment look is due by then, with all they have due; the sweep books each one's next
        look after ``at``. A customer merged away is dropped (its survivor was checked).
        Returns how many looks it took."""
        with self.db.begin() as conn:
            claimed = self.claims.first(conn, looks_batch(at, self.batch_size), live=False)
            gone = merged_away(conn, claimed)
            taken = take(conn, self.claims, [c for c in claimed if c not in gone], now)
            done = sorted(gone) + taken.ids
            for part in chunks(done):
                conn.execute(segment_looks.delete().where(segment_looks.c.customer_id.in_(part)))
            if taken.ids:
                self._work(
                    conn,
                    taken,
                    now,
                    summary,
                    lambda engine: engine.sweep_segments(at, _live(engine, taken.ids)),
                    at,
                )
        summary.events += len(taken.events)
        return len(done)

    def _every_customer(
        self,
        name: str,
        first: datetime,
        now: datetime,
        summary: TickSummary,
        act: Callable[[JourneyEngine, datetime, Sequence[str]], None],
        following: Callable[[datetime], datetime],
        at_due: bool = True,
    ) -> int:
        """When the ``schedule_ticks`` row ``name`` is due (``first`` when new), ``act`` on every
        live customer, a batch per transaction that records how far it got (a crash resumes),
        then set the row to ``following(due)``. Returns how many customers it went over.
        Each customer's events and timers before ``due`` (``at_due``, a tick) or before now (a
        sweep) are applied first, the later ones after.

        The row is held by one pass at a time (another goes on with its other work). The
        customers are taken in id order up to the first one another pass holds: the row records
        how far it got, so none is passed over; a later pass goes on from there."""
        self._due(name, first)
        done = 0
        while True:
            with self.db.begin() as conn:
                query = sa.select(schedule_ticks).where(schedule_ticks.c.name == name)
                if self.claims.lock:
                    query = query.with_for_update(skip_locked=True)
                row = conn.execute(query).first()
                if row is None or row.due_at > now:  # held by another pass, or not due
                    return done
                due = row.due_at
                ids = list(conn.scalars(after(row.after_customer, self.batch_size)))
                if not ids:
                    conn.execute(
                        schedule_ticks.update()
                        .where(schedule_ticks.c.name == name)
                        .values(due_at=following(due), after_customer=None)
                    )
                    return done
                held = self.claims.these(conn, ids)
                taken = take(conn, self.claims, list(takewhile(held.__contains__, ids)), now)
                kept = set(taken.ids)
                prefix = list(takewhile(kept.__contains__, ids))
                if not prefix:  # the next customer is another pass's: a later pass goes on
                    return done
                taken = taken.only(prefix)
                self._work(
                    conn,
                    taken,
                    now,
                    summary,
                    _on_live(act, due, prefix),
                    due if at_due else now,
                )
                conn.execute(
                    schedule_ticks.update()
                    .where(schedule_ticks.c.name == name)
                    .values(after_customer=prefix[-1])
                )
                summary.events += len(taken.events)
                done += len(prefix)


MAX_COUNTED_TICKS = 10_000  # a missed every-minute schedule is counted this far, no further


def _ticks_between(trigger: ScheduleTrigger, first: datetime, until: datetime, zone: str) -> int:
    """How many ticks of ``trigger`` fall in ``[first, until)`` (at most MAX_COUNTED_TICKS)."""
    count, tick = 0, first
    while tick < until and count < MAX_COUNTED_TICKS:
        count += 1
        tick = next_tick(trigger, tick, zone)
    return count


_MICROSECOND = timedelta(microseconds=1)


def _grid_after(origin: datetime, moment: datetime) -> datetime:
    """The first sweep of the hourly grid through ``origin`` that is after ``moment``."""
    if moment < origin:
        return origin
    return origin + ((moment - origin) // SEGMENT_SWEEP + 1) * SEGMENT_SWEEP


def _live(engine: JourneyEngine, customer_ids: Sequence[str]) -> list[str]:
    """Those of ``customer_ids`` not merged away by the events just applied."""
    return [customer_id for customer_id in customer_ids if engine.customers.has(customer_id)]


def _on_live(
    act: Callable[[JourneyEngine, datetime, Sequence[str]], None],
    due: datetime,
    customer_ids: Sequence[str],
) -> Callable[[JourneyEngine], None]:
    """``act`` at ``due`` on those of ``customer_ids`` still live when it runs."""
    return lambda engine: act(engine, due, _live(engine, customer_ids))


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
        "status": OutboxStatus.PENDING,
        "decided_at": event.timestamp,
        "next_attempt_at": now,
        "updated_at": now,
    }
