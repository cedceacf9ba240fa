"""The journey store on SQLite and PostgreSQL: work claimed, decided and kept exactly once.

Each piece of work is one transaction that claims some customers (:mod:`engine.durable.batches`),
loads everything they hold into a fresh engine and writes back what it decided
(:mod:`engine.durable.store`). Their events leave ``journey_inbox`` in the same transaction, so a
crash replays them and nothing is decided twice. On PostgreSQL customers are claimed with
``FOR UPDATE SKIP LOCKED``, so any number of workers share the work, never wait on each other,
and never apply a customer's event or timer past an earlier one another pass holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import takewhile
from typing import Any

import sqlalchemy as sa

from engine.campaigns.schema import Campaign
from engine.channels import DeliveryAction
from engine.drive.outbox_port import NewOutboxRow
from engine.drive.partitions import WHOLE, Partition, bucket_of, split_row_name
from engine.drive.port import Work
from engine.drive.stored_schedules import SEGMENTS, sweep_of
from engine.durable.batches import (
    Claims,
    Taken,
    after,
    event_owners,
    inbox_batch,
    looks_batch,
    merged_away,
    not_merged_ahead,
    partition_of,
    take,
    timer_batch,
    timer_owners,
)
from engine.durable.book import CampaignBook
from engine.durable.sql_outbox import outbox_values
from engine.durable.store import Enrich, Loaded, load, save, save_views
from engine.durable.tick_marks import Tick, forget, mark, marked, schedule_rows, ticks_due
from engine.events import Event, EventType
from engine.ingest.pipeline import Ingestor
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import JourneyEngine, RendersBody
from engine.journeys.schedule import SEGMENT_SWEEP
from engine.journeys.wakeups import SweepGrid
from engine.policies import SendPolicies
from engine.rendering import BodyCheck
from engine.state.reducers import consent_changes
from engine.storage.customer_store import among, survivors_of
from engine.storage.driver_writes import insert_new_rows
from engine.storage.tables import journey_inbox, outbox, schedule_ticks, segment_looks
from engine.storage.upserts import insert_new

ANALYZE_AFTER = 1_000  # plan lines saved before the outbox's statistics are refreshed

# Segment looks are booked to the microsecond, the resolution of a time: a sweep at any moment
# finds every customer whose answer may have turned since the last (booked to the second, a turn
# within the second before a sweep, such as a cooldown ending at the time of day of the sweep
# that entered the customer, waited an hour). Searched two years ahead; beyond, booked there.
LOOK_GRID = (datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1), 2**46)

log = logging.getLogger("followup.durable")


@dataclass
class SqlWork:
    """Claimed customers and their due events, in the transaction ``conn``."""

    conn: sa.Connection
    taken: Taken
    looks_taken: int = 0
    loaded: Loaded | None = field(default=None, repr=False)
    # a schedule's run: the profiles it goes over, in id order, and those of them whose tick a
    # batch acted on before, by schedule (marked: passed over)
    gone_over: list[str] | None = None
    marked: dict[str, set[str]] = field(default_factory=dict)
    acting: frozenset[str] = frozenset()  # the runs that act on ``gone_over`` with this work
    # the ticks this work acts on for profiles away from their runs' places (marked at saving)
    ticks: list[Tick] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return self.taken.ids

    @property
    def events(self) -> list[Event]:
        return self.taken.events

    @property
    def run(self) -> list[str]:
        return self.taken.ids if self.gone_over is None else self.gone_over

    @property
    def place(self) -> str:
        return self.run[-1]

    def profiles_for(self, name: str) -> list[str]:
        passed = self.marked.get(name, set())
        return [profile for profile in self.run if profile not in passed]


class SqlScheduleRow:
    """A ``schedule_ticks`` row, locked on PostgreSQL, in the transaction ``conn``."""

    def __init__(self, store: SqlJourneyStore, conn: sa.Connection, row: Any) -> None:
        self._store = store
        self._conn = conn
        self._row = row
        self.finished = False

    @property
    def due_at(self) -> datetime:
        return self._row.due_at  # type: ignore[no-any-return]

    @property
    def under_way(self) -> bool:
        return self._row.after_customer is not None

    @property
    def place(self) -> str | None:
        return self._row.after_customer  # type: ignore[no-any-return]

    def next_customers(
        self, now: datetime, through: str | None = None, runs: Mapping[str, datetime] | None = None
    ) -> SqlWork | None:
        """The next profiles of the run: the live customers, and the profiles merged by an event
        the engine has yet to take (it knows them apart until then: docs/runtime.md, "Merges
        ahead of the engine"), each at its own place; a merged profile's work is its survivor's,
        held and taken with it. Those whose tick of a schedule of ``runs`` (name -> due time) a
        batch acted on first are marked for it (:mod:`engine.durable.tick_marks`)."""
        conn, claims = self._conn, self._store.claims
        store = self._store
        page, merged = after(
            conn, self._row.after_customer, store.batch_size, store.partition, through
        )
        self.finished = not page
        if not page:
            return None
        holder = {profile: profile for profile in page}  # whose row holds each one's work
        holder.update(survivors_of(conn, merged) if merged else {})
        held = claims.these(conn, set(holder.values()))
        ready = list(takewhile(lambda p: holder[p] in held, page))
        taken = take(conn, claims, list(dict.fromkeys(holder[p] for p in ready)), now)
        kept = set(taken.ids)
        run = list(takewhile(lambda p: holder[p] in kept, ready))
        if not run:  # the next customer is another pass's: a later pass goes on
            return None
        work = SqlWork(conn, taken.only([holder[p] for p in run]), gone_over=run)
        work.marked = marked(conn, runs or {}, run)
        work.acting = frozenset(runs or ())
        return work

    def advance(self, last_customer: str) -> None:
        self._update(after_customer=last_customer)

    def move(self, due_at: datetime) -> None:
        self._update(due_at=due_at, after_customer=None)
        name, partition = split_row_name(self._row.name)
        forget(self._conn, name, partition, due_at)

    def _update(self, **values: Any) -> None:
        _update_schedule(self._conn, self._row.name, **values)


class SqlJourneyStore:
    """Journeys, timers, the inbox, the outbox and the schedule rows of one database."""

    def __init__(
        self,
        db: sa.Engine,
        book: CampaignBook,
        policies: SendPolicies,
        ingestor: Ingestor,
        enrich: Enrich,
        default_timezone: str,
        batch_size: int = 500,
        consent_channels: frozenset[str] = frozenset(),
        synced_events: Mapping[str, frozenset[str]] | None = None,
        check_body: RendersBody | None = None,
        partition: Partition = WHOLE,
    ) -> None:
        self.db = db
        self.book = book
        self.policies = policies
        self.ingestor = ingestor
        self.enrich = enrich
        self.default_timezone = default_timezone
        self.batch_size = batch_size
        self.consent_channels = consent_channels
        self.synced_events = dict(synced_events or {})  # channel -> event names it mirrors
        self.check_body = check_body
        self.decided = 0  # plan lines saved since the outbox's statistics were refreshed
        self.claims = Claims(db.dialect.name)
        self.partition = partition  # the customers whose work this store hands out

    # --- work --------------------------------------------------------------------------------

    @contextmanager
    def events(self, now: datetime) -> Iterator[SqlWork | None]:
        """The customers of the next events in the inbox, with all they have due."""
        with self.db.begin() as conn:
            ids = self.claims.first(
                conn, inbox_batch(now, self.batch_size, self.partition), event_owners
            )
            taken = take(conn, self.claims, ids, now)
            yield SqlWork(conn, taken) if taken.events else None

    @contextmanager
    def timers(self, now: datetime) -> Iterator[SqlWork | None]:
        """The customers of the next due timers, with all they have due (their events too)."""
        running = sorted(c.id for c in self.book.active)
        with self.db.begin() as conn:
            ids = self.claims.first(
                conn, timer_batch(now, self.batch_size, running, self.partition), timer_owners(now)
            )
            taken = take(conn, self.claims, ids, now)
            yield SqlWork(conn, taken) if taken.ids else None

    @contextmanager
    def looks(self, at: datetime, now: datetime) -> Iterator[SqlWork | None]:
        """The customers whose segment look is due by ``at``, their looks taken; a customer
        merged away is dropped (its survivor was checked). The look of a profile merged by an
        event the engine has yet to take is left to the survivor's work that takes it (until
        then the engine knows the profile apart): it sweeps the look at its hour
        (:meth:`_sweep_due_looks`)."""
        with self.db.begin() as conn:
            claimed = self.claims.first(
                conn, looks_batch(at, self.batch_size, self.partition), not_merged_ahead, False
            )
            gone = merged_away(conn, claimed)
            taken = take(conn, self.claims, [c for c in claimed if c not in gone], now)
            done = sorted(gone) + taken.ids
            for where in among(conn, segment_looks.c.customer_id, done):
                conn.execute(segment_looks.delete().where(where))
            yield SqlWork(conn, taken, looks_taken=len(done)) if done else None

    def load(self, work: Work, now: datetime, decides_from: datetime) -> JourneyEngine:
        """A fresh engine with everything the work's customers hold."""
        assert isinstance(work, SqlWork)  # the work this store handed out
        taken = work.taken
        work.ticks = ticks = self._ticks_away(work, now)
        work.loaded = load(
            work.conn,
            self.book,
            taken.loading(),
            policies=self.policies,
            reducer=self.ingestor.reducer,
            default_timezone=self.default_timezone,
            now=now,
            # the engine takes each event as the profile it was received as, until the merge
            owner_of_event={**taken.owners, **taken.received_as},
            merged_by_event=taken.merged,
            decides_from=min([decides_from, *(tick.at for tick in ticks)]),
            check_body=self.check_body,
        )
        engine = work.loaded.engine
        for at, _name, campaign, profile in ticks:
            if campaign is not None:
                engine.call_at(at, partial(_enter_at, engine, campaign, profile))
            else:  # the look at everyone, at the time it began (which takes the sweeps by then)
                engine.segments.looks_at_everyone(at)
                engine.call_at(at, partial(_look_at, engine, profile))
        engine.book_segment_looks(SweepGrid(*LOOK_GRID))
        self._sweep_due_looks(work.conn, engine, work.loaded.customer_ids, now)
        return engine

    def _ticks_away(self, work: SqlWork, now: datetime) -> list[Tick]:
        """The ticks due for the profiles the work takes away from their runs' places (merged
        into its customers at ingest, a survivor in another partition, one a run holds for a
        profile merged into it): acted on before their events (:mod:`engine.durable.tick_marks`).
        A run's own profiles are at the places of the runs acting with it (the others due have
        gone over them), but for a schedule this pass leaves to the partitions of another
        count, in the middle of a tick. A pass's other work comes after its partition's runs,
        unless one stopped at a customer another pass holds and waited past its time: then it
        takes the work of those the run has yet to come to, which have their tick first."""
        profiles = sorted(work.taken.loading() | set(work.gone_over or ()))
        return ticks_due(
            work.conn,
            self.book,
            self.partition.count,
            self.default_timezone,
            profiles,
            now,
            acting=work.acting,
            gone_over=work.gone_over or (),
        )

    def _sweep_due_looks(
        self, conn: sa.Connection, engine: JourneyEngine, customer_ids: set[str], now: datetime
    ) -> None:
        """Book on ``engine`` the segment sweeps missed for these customers: each look due by
        ``now``, at the hourly sweep it fell to, so it comes before their later events and
        timers (a pass run late would otherwise take an event first, and enter the customer
        at the event rather than at the sweep, as ``simulate`` does)."""
        if not engine.segments.campaigns:
            return
        origin = conn.scalar(
            sa.select(schedule_ticks.c.due_at).where(
                schedule_ticks.c.name == self.partition.row_name(SEGMENTS)
            )
        )
        if origin is None:  # no sweep yet: the first one looks at everyone
            return
        # a look found in this decision, due by now, at its hour (maybe one the sweeps passed)
        engine.segments.sweep_due_by(SweepGrid(origin, SEGMENT_SWEEP), now)
        due: list[tuple[datetime, str]] = []
        for where in among(conn, segment_looks.c.customer_id, customer_ids):
            query = sa.select(segment_looks.c.due_at, segment_looks.c.customer_id).where(
                where, segment_looks.c.due_at <= now
            )
            due.extend((row[0], row[1]) for row in conn.execute(query))
        for look, customer_id in sorted(due):
            sweep = sweep_of(origin, look)
            if sweep <= now:
                engine.segments.sweep_at(sweep, customer_id)

    def save(self, work: Work, engine: JourneyEngine, now: datetime) -> list[PlanLine]:
        """Write back what the engine decided, the mirror rows of the events, and take the
        events out of the inbox."""
        assert isinstance(work, SqlWork)
        conn, loaded, taken = work.conn, work.loaded, work.taken
        assert loaded is not None and loaded.engine is engine
        appended = loaded.customers.appended
        survivors = loaded.customers.survivors()
        if appended:  # update steps: the traits a campaign wrote go into the log like any event
            self.ingestor.write_in(
                conn,
                [(event, "campaign") for _cid, event in appended],
                # the profile each was made for (its log is the live one's)
                known={event.message_id: cid for cid, event in appended},
            )
        lines = save(conn, self.book, loaded, now, self.enrich)
        mark(conn, work.ticks, {m for found in taken.merged.values() for m in found})
        for merged_id, survivor_id in survivors.items():
            # the merged profiles' sends go to the survivor, this batch's too (the caps count
            # them there); rows the dispatcher holds are being delivered (it finds the survivor
            # itself): passed over, not waited for
            rows = sa.select(outbox.c.id).where(outbox.c.customer_id == merged_id)
            if self.claims.lock:
                rows = rows.with_for_update(skip_locked=True)
            conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(rows.scalar_subquery()))
                .values(customer_id=survivor_id, bucket=bucket_of(survivor_id))
            )
        self._mirror_rows(conn, taken.events, taken.owners, survivors, now)
        for where in among(conn, journey_inbox.c.message_id, [e.message_id for e in taken.events]):
            conn.execute(journey_inbox.delete().where(where))
        save_views(conn, loaded)
        self.decided += len(lines)
        if isinstance(self.check_body, BodyCheck):  # its answers hold this batch's states,
            self.check_body.forget()  # found by identity: the next batch loads its own
        return lines

    def _mirror_rows(
        self,
        conn: sa.Connection,
        batch: Sequence[Event],
        owners: dict[str, str],
        survivors: dict[str, str],
        now: datetime,
    ) -> None:
        """An outbox row per change a provider keeps on its side: consent changes on a channel
        whose provider keeps consent, shop events a provider mirrors. The dispatcher sends the
        customer's consent or cart as they stand when the row is delivered."""
        if not self.consent_channels and not self.synced_events:
            return
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
        insert_new_rows(conn, outbox, rows)

    def refresh_statistics(self) -> None:
        """After passes that decided many lines, on PostgreSQL, fresh statistics of the outbox:
        until autovacuum gets to it, the planner goes on with the table as it was before, and
        the dispatcher's page of due rows, planned for a small table, sorted the whole outbox
        (24 ms a page, 2.4 s of delivering 20,000 emails, against 2.5 ms)."""
        if self.decided < ANALYZE_AFTER or not self.claims.lock:
            return
        self.decided = 0
        with self.db.begin() as conn:
            conn.exec_driver_sql("ANALYZE outbox")

    # --- schedule rows -----------------------------------------------------------------------

    def record_schedule(self, name: str, first: datetime, exact: bool = True) -> datetime | None:
        """Record ``name`` as due at ``first`` when new (in a transaction of its own: another
        worker may be recording it too); when it is due, or ``None`` while this pass must
        leave it (below).

        Each partition keeps its own row of a schedule (:meth:`Partition.row_name`), and the
        rows of one count of partitions are made together, at one time. When the passes are
        split in a new count, its rows take over from the rows of the old count once those are
        at one time with none under way (every partition of the old count has run every tick
        before it): they start there, rows of this count left behind move up to it, and the
        old rows go. Until then a pass of the new count leaves the schedule (``None``, logged):
        taking over sooner would skip the tick for the customers of the old count's
        partitions still behind, or run it twice for those ahead. ``exact=False`` (the hourly
        segment sweeps, whose looks are taken once whoever sweeps) takes over at once, from
        the earliest of the old rows: every old partition swept the hours before it, and a
        sweep of an hour some of them swept already finds none of their customers' looks due
        (taken, booked later), while the customers of those behind are swept at that hour,
        as in ``simulate`` (from the latest, their looks went to a later hour). A row of this
        count gone (deleted by hand) is made again as a new schedule's."""
        count = self.partition.count
        mine = self.partition.row_name(name)
        with self.db.connect() as conn:  # as usual, all there: read without holding them
            rows = schedule_rows(conn, name)
        due_at: dict[str, datetime] = {row.name: row.due_at for row in rows}
        if mine in due_at and len(rows) == count and all(_count_of(n) == count for n in due_at):
            return due_at[mine]
        with self.db.begin() as conn:  # made and taken over by one pass at a time
            rows = schedule_rows(conn, name, lock=self.claims.lock)
            ours = [row for row in rows if _count_of(row.name) == count]
            others = [row for row in rows if _count_of(row.name) != count]
            if exact and (busy := _under_way(others)):
                log.warning(
                    "%s: passes split in %s partition(s) are in the middle of a tick; passes"
                    " split in %s leave it until those finish",
                    name,
                    " and ".join(str(c) for c in busy),
                    count,
                )
                return None
            # exact: where every old partition is (all at one time); else the earliest
            ahead = (max if exact else min)((row.due_at for row in others), default=None)
            start = first if ahead is None else ahead
            due: dict[str, datetime] = {row.name: row.due_at for row in ours}
            if ahead is not None:  # the old count ran every tick before ``ahead`` for everyone
                for row in ours:
                    if row.due_at < ahead:
                        _update_schedule(conn, row.name, due_at=ahead, after_customer=None)
                        due[row.name] = ahead
            missing = [Partition(i, count).row_name(name) for i in range(count)]
            missing = [row_name for row_name in missing if row_name not in due]
            for where in among(conn, schedule_ticks.c.name, [row.name for row in others]):
                conn.execute(schedule_ticks.delete().where(where))
            if not missing:
                return due[mine]
            # a count's rows are made together; any of them gone start again as a new schedule
            insert_new(conn, schedule_ticks, [{"name": n, "due_at": start} for n in missing])
            made: datetime | None = conn.scalar(  # another pass may have made it first
                sa.select(schedule_ticks.c.due_at).where(schedule_ticks.c.name == mine)
            )
        return made

    @contextmanager
    def schedule(self, name: str) -> Iterator[SqlScheduleRow | None]:
        """This partition's row of ``name``, locked on PostgreSQL (see :meth:`schedules`)."""
        with self.schedules([name]) as rows:
            yield rows.get(name)

    @contextmanager
    def schedules(self, names: Sequence[str]) -> Iterator[dict[str, SqlScheduleRow]]:
        """This partition's rows of ``names`` there are, by name, in one transaction; locked
        on PostgreSQL, waiting for a pass that holds them: it holds them for a batch (or a
        moment, making rows), and a pass that went on with its events instead would take
        events later than the ticks, which then see the customers as changed after their
        instant. Two passes that run a tick together take its batches in turn."""
        mine = {self.partition.row_name(name): name for name in names}
        with self.db.begin() as conn:
            query = sa.select(schedule_ticks).where(schedule_ticks.c.name.in_(list(mine)))
            if self.claims.lock:
                query = query.with_for_update()
            found = {mine[row.name]: row for row in conn.execute(query)}
            yield {name: SqlScheduleRow(self, conn, found[name]) for name in names if name in found}

    def set_schedule(self, name: str, due_at: datetime) -> None:
        with self.db.begin() as conn:
            _update_schedule(
                conn, self.partition.row_name(name), due_at=due_at, after_customer=None
            )

    def forget_schedules(self, prefix: str, keep: str | None) -> None:
        """Delete the rows of the schedules named from ``prefix`` but ``keep`` (every
        partition's rows of it are kept)."""
        with self.db.begin() as conn:
            names = conn.scalars(
                sa.select(schedule_ticks.c.name).where(
                    schedule_ticks.c.name.startswith(prefix, autoescape=True)
                )
            )
            gone = [n for n in names if keep is None or split_row_name(n)[0] != keep]
            for where in among(conn, schedule_ticks.c.name, gone):
                conn.execute(schedule_ticks.delete().where(where))

    def earliest_look(self) -> datetime | None:
        query = sa.select(sa.func.min(segment_looks.c.due_at)).where(
            *partition_of(segment_looks, self.partition)
        )
        with self.db.connect() as conn:
            earliest: datetime | None = conn.scalar(query)
        return earliest


def _under_way(rows: Sequence[Any]) -> list[int]:
    """The counts of partitions whose schedule ``rows`` are not all at one time with none
    under way: passes split in that count are in the middle of a tick."""
    by_count: dict[int, list[Any]] = {}
    for row in rows:
        by_count.setdefault(_count_of(row.name), []).append(row)
    return sorted(
        count
        for count, of_count in by_count.items()
        if len({row.due_at for row in of_count}) > 1
        or any(row.after_customer is not None for row in of_count)
    )


def _count_of(row_name: str) -> int:
    """How many partitions the passes that keep the schedule row ``row_name`` were split in."""
    return split_row_name(row_name)[1].count


def _update_schedule(conn: sa.Connection, name: str, **values: Any) -> None:
    """Set ``values`` on the ``schedule_ticks`` row ``name``."""
    conn.execute(schedule_ticks.update().where(schedule_ticks.c.name == name).values(**values))


def _enter_at(engine: JourneyEngine, campaign: Campaign, profile: str, at: datetime) -> None:
    """The tick of ``campaign`` at ``at`` for ``profile`` (booked with :meth:`call_at`)."""
    engine.enter_scheduled(campaign, at, [profile])


def _look_at(engine: JourneyEngine, profile: str, at: datetime) -> None:
    """The look at everyone of the segment campaigns, at ``at``, for ``profile``."""
    engine.sweep_segments(at, [profile])


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
    row = NewOutboxRow(
        key=key[:200],
        journey_id="",
        step="",
        campaign_id="",
        customer_id=customer_id,
        channel=channel,
        action=action.value,
        decided_at=event.timestamp,
        fields=fields,
        due_at=now,
    )
    return outbox_values(row, now)
