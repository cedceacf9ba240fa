"""Which customers a batch of the journey engine works on, and the events it takes for them.

A customer's row is the one lock of their work. Every batch kind (events, timers, segment
looks, schedule ticks and sweeps) first claims its customers, on PostgreSQL with ``FOR UPDATE
SKIP LOCKED``: a customer another pass holds is passed over, never waited for. The batch then
takes, without further locks, everything of theirs that is due (every due inbox event, every
due timer), so no pass can apply a customer's later event or timer while another holds an
earlier one, whichever kind of batch it is, and whether that pass commits, dies or is rolled
back. The profiles an event merges into a customer are claimed the same way; a customer whose
merged profile another pass holds is left for later.

Nothing else a batch writes is locked by another pass (journeys, timers, memberships, looks and
outbox keys all belong to customers), so passes never wait on each other and cannot deadlock.
Ingest locks customers with a plain ``FOR UPDATE`` and may wait for a pass; a pass never waits
for ingest. On SQLite there is one writer at a time and nothing to claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.partitions import WHOLE, Partition
from engine.events import Event
from engine.storage.customer_store import among, event_from_row
from engine.storage.tables import (
    customers,
    events,
    journey_inbox,
    journey_timers,
    merges,
    segment_looks,
)

AFTER_PAGE = 20_000  # the most ids a schedule's run reads at once to find its partition's
# The order events are taken from the inbox in, the one place it is written.
INBOX_ORDER = (journey_inbox.c.timestamp, journey_inbox.c.seq)


def inbox_batch(now: datetime, size: int, partition: Partition = WHOLE) -> sa.Select[Any]:
    """The next ``size`` events of ``partition`` waiting in the inbox, in inbox order, up to
    ``now``: one stamped ahead of the clock waits for its time (taken sooner, it would come
    before a tick, sweep or timer due before it, or before an event stamped earlier that has yet
    to arrive; ``simulate`` puts it after them). Read by the inbox's own time index, so a batch
    costs the same whatever the backlog."""
    return _page(journey_inbox.c.message_id, INBOX_ORDER, size).where(
        journey_inbox.c.timestamp <= now, *partition_of(journey_inbox, partition)
    )


def timer_batch(
    now: datetime, size: int, running: Sequence[str], partition: Partition = WHOLE
) -> sa.Select[Any]:
    """The customers of the next ``size`` timers of ``partition`` due by ``now`` (of running
    campaigns)."""
    order = (journey_timers.c.due_at, journey_timers.c.id)
    return _page(journey_timers.c.customer_id, order, size).where(
        journey_timers.c.due_at <= now,
        journey_timers.c.campaign_id.in_(running),
        *partition_of(journey_timers, partition),
    )


def looks_batch(now: datetime, size: int, partition: Partition = WHOLE) -> sa.Select[Any]:
    """The customers of the next ``size`` segment looks of ``partition`` due by ``now``."""
    order = (segment_looks.c.due_at, segment_looks.c.customer_id)
    return _page(segment_looks.c.customer_id, order, size).where(
        segment_looks.c.due_at <= now, *partition_of(segment_looks, partition)
    )


def partition_of(table: sa.Table, partition: Partition) -> list[sa.ColumnElement[bool]]:
    """The condition that a row of ``table`` (one with a ``bucket``) is ``partition``'s."""
    if partition.whole:
        return []
    return [table.c.bucket >= partition.lo, table.c.bucket < partition.hi]


def _page(
    first: sa.ColumnElement[Any], order: Sequence[sa.ColumnElement[Any]], size: int
) -> sa.Select[Any]:
    """``first`` and the ``order`` columns (which :meth:`Claims.first` pages on), in order."""
    query: sa.Select[Any] = sa.select(first, *order)
    return query.order_by(*order).limit(size)


def after(
    conn: sa.Connection,
    customer_id: str | None,
    size: int,
    partition: Partition = WHOLE,
    through: str | None = None,
) -> tuple[list[str], set[str]]:
    """The next ``size`` profiles of ``partition`` the engine knows apart, by id after
    ``customer_id`` (a schedule's progress), up to ``through`` if given: the live customers and
    the profiles merged by an event still in the inbox; and which of them are merged. The
    customers table keeps no bucket: a partition reads the ids of every partition and keeps
    its own (by the primary key)."""
    waiting = (  # looked up for the merged profiles only, by merges.merged_id
        sa.select(merges.c.id)
        .join(journey_inbox, journey_inbox.c.message_id == merges.c.message_id)
        .where(merges.c.merged_id == customers.c.id)
    )
    query = sa.select(customers.c.id, customers.c.merged_into).where(
        sa.or_(customers.c.merged_into.is_(None), waiting.exists())
    )
    if through is not None:
        query = query.where(customers.c.id <= through)
    read = min(size * partition.count, max(size, AFTER_PAGE))
    found: list[str] = []
    merged: set[str] = set()
    while len(found) < size:
        page = query if customer_id is None else query.where(customers.c.id > customer_id)
        rows = list(conn.execute(page.order_by(customers.c.id).limit(read)))
        for profile, merged_into in rows:
            if partition.whole or partition.holds(profile):
                found.append(profile)
                if merged_into is not None:
                    merged.add(profile)
        if len(rows) < read:
            break
        customer_id = rows[-1][0]
    return found[:size], merged.intersection(found[:size])


class Claims:
    """Claims customers for a batch: locked and skipped when held on PostgreSQL, as read on
    SQLite."""

    def __init__(self, dialect_name: str) -> None:
        self.lock = dialect_name == "postgresql"

    def first(
        self,
        conn: sa.Connection,
        batch: sa.Select[Any],
        owners: Callable[[sa.Connection, Sequence[Any]], list[str]] | None = None,
        live: bool = True,
    ) -> list[str]:
        """The customers of the first page of ``batch`` (an ordered, limited query whose first
        column names a customer, or an event that ``owners`` turns into its customer) that
        names any this pass can hold; those, now held, in the page's order. A page whose
        customers other passes hold all is passed over for the next (by the order's columns).
        Read by the query's own index, then claimed by primary key: a plan that does not hang
        on the tables' statistics (joined and locked in one query, PostgreSQL sorted the whole
        inbox for every batch after a bulk ingest)."""
        order = batch.selected_columns[1:]
        page = batch
        while rows := list(conn.execute(page)):
            named = owners(conn, rows) if owners is not None else [row[0] for row in rows]
            ordered = list(dict.fromkeys(named))
            held = self.these(conn, ordered, live=live)
            if held:
                return [customer_id for customer_id in ordered if customer_id in held]
            page = batch.where(sa.tuple_(*order) > sa.tuple_(*rows[-1][1:]))
        return []

    def these(
        self, conn: sa.Connection, customer_ids: Iterable[str], live: bool = False
    ) -> set[str]:
        """Of ``customer_ids``, those now held by this pass (``live``: not merged away)."""
        if not self.lock and not live:
            return set(customer_ids)
        held: set[str] = set()
        for where in among(conn, customers.c.id, customer_ids):
            query = sa.select(customers.c.id).where(where)
            if live:
                query = query.where(customers.c.merged_into.is_(None))
            if self.lock:
                query = query.order_by(customers.c.id).with_for_update(skip_locked=True)
            held.update(conn.scalars(query))
        return held


def merged_away(conn: sa.Connection, customer_ids: Sequence[str]) -> set[str]:
    """Those of ``customer_ids`` merged into another profile."""
    found: set[str] = set()
    for where in among(conn, customers.c.id, customer_ids):
        query = sa.select(customers.c.id).where(where, customers.c.merged_into.is_not(None))
        found.update(conn.scalars(query))
    return found


def not_merged_ahead(conn: sa.Connection, rows: Sequence[Any]) -> list[str]:
    """The customers of ``rows`` (a page of customer ids first) but the profiles merged by an
    event the journey engine has yet to take (their merge's event still in the inbox)."""
    named = [row[0] for row in rows]
    ahead: set[str] = set()
    query = sa.select(merges.c.merged_id).join(
        journey_inbox, journey_inbox.c.message_id == merges.c.message_id
    )
    for where in among(conn, merges.c.merged_id, named):
        ahead.update(conn.scalars(query.where(where)))
    return [customer_id for customer_id in named if customer_id not in ahead]


def event_owners(conn: sa.Connection, rows: Sequence[Any]) -> list[str]:
    """The customer of each inbox row's event, in the rows' order (ingest moved a merged
    profile's events to the survivor)."""
    query = sa.select(events.c.message_id, events.c.customer_id)
    owner = {
        message_id: customer_id
        for where in among(conn, events.c.message_id, [row.message_id for row in rows])
        for message_id, customer_id in conn.execute(query.where(where))
    }
    return [owner[row.message_id] for row in rows if row.message_id in owner]


def due_events(conn: sa.Connection, customer_ids: Sequence[str], now: datetime) -> list[Any]:
    """Every event of ``customer_ids`` waiting in the inbox, up to ``now``, in inbox order.
    Read by the log's (customer, time) index from the oldest event waiting, so a customer's
    older history is not read."""
    oldest = conn.scalar(sa.select(sa.func.min(journey_inbox.c.timestamp)))
    if oldest is None or not customer_ids:
        return []
    rows: list[Any] = []
    for where in among(conn, events.c.customer_id, customer_ids):
        query = (
            sa.select(
                events,
                *(column.label(f"inbox_{column.name}") for column in INBOX_ORDER),
                journey_inbox.c.customer_id.label("inbox_customer"),
            )
            .join(journey_inbox, journey_inbox.c.message_id == events.c.message_id)
            .where(
                where,
                events.c.timestamp >= oldest,
                events.c.timestamp <= now,
            )
        )
        rows.extend(conn.execute(query))
    keys = [f"inbox_{column.name}" for column in INBOX_ORDER]
    return sorted(rows, key=lambda row: tuple(getattr(row, key) for key in keys))


def timer_owners(now: datetime) -> Callable[[sa.Connection, Sequence[Any]], list[str]]:
    """The customer to claim for each row of a page of due timers (customer ids first): the
    timer's own, or, for a profile ingest merged by an event stamped ahead of the clock, the
    profile it went into, whose batch holds it (:func:`merged_later`). Claimed as its own, a
    merged profile is never live: its due timer waited for a later event of the survivor's."""

    def owners(conn: sa.Connection, rows: Sequence[Any]) -> list[str]:
        named = [row[0] for row in rows]
        query = _merges_ahead(now)
        into: dict[str, str] = {}
        for where in among(conn, merges.c.merged_id, named):
            into.update(conn.execute(query.where(where)).all())
        return [into.get(customer_id, customer_id) for customer_id in named]

    return owners


def merged_later(conn: sa.Connection, customer_ids: Sequence[str], now: datetime) -> dict[str, str]:
    """The profiles merged into ``customer_ids`` by an event stamped ahead of the clock (in the
    inbox past ``now``), by the customer: until the engine takes that event it
    knows them apart, and a batch of the customer holds them (a tick before the event acts on
    them). Read from the inbox's time index: such events are few."""
    wanted = set(customer_ids)
    return {merged: owner for merged, owner in conn.execute(_merges_ahead(now)) if owner in wanted}


def _merges_ahead(now: datetime) -> sa.Select[Any]:
    """Each profile merged by an event still in the inbox past ``now``, with the customer that
    event is logged under now (the one it went into)."""
    return (
        sa.select(merges.c.merged_id, events.c.customer_id)
        .select_from(journey_inbox)
        .join(merges, merges.c.message_id == journey_inbox.c.message_id)
        .join(events, events.c.message_id == journey_inbox.c.message_id)
        .where(journey_inbox.c.timestamp > now)
    )


def merged_by(conn: sa.Connection, message_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The profiles each event merged into its customer, in merge order."""
    merged: dict[str, tuple[str, ...]] = {}
    for where in among(conn, merges.c.message_id, message_ids):
        query = sa.select(merges.c.message_id, merges.c.merged_id).where(where)
        for message_id, merged_id in conn.execute(query.order_by(merges.c.id)):
            merged[message_id] = (*merged.get(message_id, ()), merged_id)
    return merged


@dataclass
class Taken:
    """The customers a batch holds and works on, with their due inbox events in inbox order."""

    ids: list[str]  # claimed live customers, in claim order
    events: list[Event]
    owners: dict[str, str]  # message id -> customer
    merged: dict[str, tuple[str, ...]]  # message id -> profiles it merged (held too)
    # message id -> the profile it was received as, where a merge ingest made since moved it
    # (held too: the engine takes it as that profile's until it takes the merge)
    received_as: dict[str, str] = field(default_factory=dict)
    # profile -> the customer an event stamped ahead of the clock merged it into (held too)
    merged_later: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        ids: Sequence[str],
        rows: Sequence[Any],
        merged: Mapping[str, Any],
        later: Mapping[str, str],
    ) -> Taken:
        """``ids`` with their event ``rows``, what those merged, and what later events do."""
        owners = {row.message_id: row.customer_id for row in rows}
        return cls(
            list(ids),
            [event_from_row(row) for row in rows],
            owners,
            {m: found for m, found in merged.items() if m in owners},
            _received_as(rows),
            {profile: c for profile, c in later.items() if c in ids},
        )

    def loading(self) -> set[str]:
        """Every profile to load: the customers, the profiles merged into them, and those their
        events were received as."""
        merged = {m for found in self.merged.values() for m in found}
        return set(self.ids) | merged | set(self.received_as.values()) | set(self.merged_later)

    def only(self, ids: Sequence[str]) -> Taken:
        """The part of this batch that concerns ``ids``."""
        keep = set(ids)
        events = [e for e in self.events if self.owners[e.message_id] in keep]
        owners = {e.message_id: self.owners[e.message_id] for e in events}
        merged = {m: found for m, found in self.merged.items() if m in owners}
        received_as = {m: c for m, c in self.received_as.items() if m in owners}
        later = {profile: c for profile, c in self.merged_later.items() if c in keep}
        kept = [c for c in self.ids if c in keep]
        return Taken(kept, events, owners, merged, received_as, later)


def _received_as(rows: Sequence[Any]) -> dict[str, str]:
    """The rows' events that a merge since moved: message id -> the profile received as."""
    return {
        row.message_id: row.inbox_customer
        for row in rows
        if row.inbox_customer is not None and row.inbox_customer != row.customer_id
    }


def take(conn: sa.Connection, claims: Claims, ids: Sequence[str], now: datetime) -> Taken:
    """What a batch does for the claimed customers ``ids``: every event of theirs due in the
    inbox, with the profiles those events merged into them, claimed too. A customer whose merged
    profile another pass holds is left for a later batch."""
    rows = due_events(conn, ids, now)
    merged = merged_by(conn, [row.message_id for row in rows])
    received_as = _received_as(rows)
    later = merged_later(conn, ids, now)
    wanted = {merged_id for found in merged.values() for merged_id in found}
    wanted |= set(received_as.values()) | set(later)
    missing = wanted - claims.these(conn, wanted) if wanted else set()
    if missing:
        owners = {row.message_id: row.customer_id for row in rows}
        left = {owners[m] for m, found in merged.items() if missing.intersection(found)}
        left |= {owners[m] for m, profile in received_as.items() if profile in missing}
        left |= {later[profile] for profile in missing if profile in later}
        ids = [customer_id for customer_id in ids if customer_id not in left]
        rows = [row for row in rows if row.customer_id not in left]
    return Taken.of(ids, rows, merged, later)
