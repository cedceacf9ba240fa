"""Reading and writing the event log, identities and profiles, in bulk, on one connection.

Every method takes the caller's connection, so that ingest writes a whole batch (events,
identities, merges and profiles) in one transaction: all of it lands or none of it does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from engine.drive.partitions import bucket_of
from engine.events import Event, EventType
from engine.state.codec import state_from_json, state_to_json
from engine.state.profile import CustomerState
from engine.storage.bulk import BulkWriter, json_text
from engine.storage.tables import (
    customers,
    events,
    identities,
    journey_inbox,
    journey_timers,
    merges,
)

T = TypeVar("T")
CHUNK = 900  # below SQLite's bound-parameter limit on old builds


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def among(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Iterable[Any]
) -> list[sa.ColumnElement[bool]]:
    """Conditions that together take the rows whose ``column`` is one of ``values`` (none when
    there are none), each for a query of its own; one, of a single parameter however many
    values: on PostgreSQL ``= ANY`` of an array, on SQLite ``IN`` the values of a JSON array
    (``json_each``). An ``IN`` list binds, sends and parses one parameter a value, and
    SQLAlchemy renders it anew at each call: a batch's lookups of 500 customers went 1.3x
    quicker on PostgreSQL, and on SQLite the statement is compiled once. Other databases get
    ``IN`` lists of at most :data:`CHUNK`."""
    ordered = sorted(set(values))  # a value twice could straddle two IN lists
    if not ordered:
        return []
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # text[], not varchar(n)[]: a cast to the column's varchar(n) would cut longer values
        kind = sa.Text() if isinstance(column.type, sa.String) else column.type
        array = sa.bindparam(None, ordered, type_=postgresql.ARRAY(kind))
        return [column == sa.any_(array)]
    if dialect == "sqlite":
        listed = sa.bindparam(None, json_text(ordered), type_=sa.Text())
        return [column.in_(sa.select(_JSON_VALUE).select_from(sa.func.json_each(listed)))]
    return [column.in_(part) for part in chunks(ordered)]


# a row of SQLite's json_each: one element of the array
_JSON_VALUE: sa.ColumnClause[Any] = sa.column("value")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with where it is stored: its sequence number, customer and source."""

    seq: int
    customer_id: str
    source: str | None
    received_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class VersionedState:
    """A customer's state with the version of the row it was read from or written as."""

    version: int
    state: CustomerState


class StateCache:
    """The states this process wrote last, by customer id; bounded, oldest dropped first.

    Trusted only at the version the database still holds, so another writer's update is never
    missed: a stale entry is just a cache miss.
    """

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._entries: dict[str, VersionedState] = {}

    def get(self, customer_id: str) -> VersionedState | None:
        """The cached state of ``customer_id``, if any."""
        return self._entries.get(customer_id)

    def update(self, written: dict[str, VersionedState]) -> None:
        """Remember ``written`` (call only once its transaction has committed)."""
        entries = self._entries
        for customer_id, versioned in written.items():
            entries.pop(customer_id, None)
            entries[customer_id] = versioned
        while len(entries) > self.size:
            del entries[next(iter(entries))]


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """Profile ``merged_id`` was merged into ``survivor_id`` by the event ``message_id``."""

    survivor_id: str
    merged_id: str
    message_id: str
    linked_keys: tuple[str, ...]
    at: datetime


def event_row(
    event: Event, customer_id: str, source: str | None, received_at: datetime
) -> tuple[Any, ...]:
    """The ``events`` row of ``event``, in :class:`BulkWriter` column order; its arrival is
    its sequence number in the log."""
    return (
        event.arrival,
        event.message_id,
        event.type.value,
        event.name,
        event.timestamp,
        customer_id,
        event.user_id,
        event.anonymous_id,
        event.channel,
        event.payload(),
        source,
        received_at,
    )


def event_from_row(row: Any) -> Event:
    """The :class:`Event` stored in ``row``."""
    payload = row.payload
    return Event(
        message_id=row.message_id,
        type=EventType(row.type),
        name=row.name,
        timestamp=row.timestamp,
        user_id=row.user_id,
        anonymous_id=row.anonymous_id,
        previous_id=payload.get("previousId"),
        channel=row.channel,
        properties=payload.get("properties") or {},
        traits=payload.get("traits") or {},
        context=payload.get("context") or {},
        arrival=row.seq,
    )


def survivors_of(conn: sa.Connection, customer_ids: Iterable[str]) -> dict[str, str]:
    """Each of ``customer_ids`` merged into another profile, with the live one it went into
    at the end of its chain of merges."""
    current = {customer_id: customer_id for customer_id in set(customer_ids)}
    for _ in range(64):  # merged_into chains are short; the bound guards against a cycle
        merged: dict[str, str] = {}
        for part in chunks(sorted(set(current.values()))):
            query = sa.select(customers.c.id, customers.c.merged_into).where(
                customers.c.id.in_(part), customers.c.merged_into.is_not(None)
            )
            merged.update((row[0], row[1]) for row in conn.execute(query))
        if not merged:
            break
        current = {first: merged.get(now, now) for first, now in current.items()}
    return {first: now for first, now in current.items() if first != now}


class CustomerStore:
    """Bulk queries over the profile tables; ``lock`` takes row locks where the backend has them."""

    def __init__(self, dialect_name: str) -> None:
        self.lock = dialect_name == "postgresql"
        self.bulk = BulkWriter(dialect_name)

    # --- reads ------------------------------------------------------------------------------

    def existing_message_ids(self, conn: sa.Connection, message_ids: Sequence[str]) -> set[str]:
        """Those of ``message_ids`` already in the event log."""
        if self.lock:  # PostgreSQL: one array, not literal-expanded IN lists (benchmarks/)
            statement = "SELECT message_id FROM events WHERE message_id = ANY(%s)"
            return {m for (m,) in conn.exec_driver_sql(statement, (list(message_ids),))}
        found: set[str] = set()
        for part in chunks(message_ids):
            query = sa.select(events.c.message_id).where(events.c.message_id.in_(part))
            found.update(conn.scalars(query))
        return found

    def owners(self, conn: sa.Connection, keys: Sequence[str]) -> dict[str, str]:
        """Identity key -> customer id, for the keys already known."""
        if self.lock:
            statement = "SELECT key, customer_id FROM identities WHERE key = ANY(%s)"
            return dict(conn.exec_driver_sql(statement, (list(keys),)).all())
        found: dict[str, str] = {}
        for part in chunks(keys):
            query = sa.select(identities.c.key, identities.c.customer_id).where(
                identities.c.key.in_(part)
            )
            found.update((key, cid) for key, cid in conn.execute(query))
        return found

    def states(self, conn: sa.Connection, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        """The stored state of each live customer in ``customer_ids``: a read, in one query a
        chunk, that locks nothing (a writer reads by :meth:`versioned_states`)."""
        found: dict[str, CustomerState] = {}
        for part in chunks(sorted(customer_ids)):
            query = sa.select(customers.c.id, customers.c.state).where(
                customers.c.id.in_(part), customers.c.merged_into.is_(None)
            )
            found.update((cid, state_from_json(state)) for cid, state in conn.execute(query))
        return found

    def states_at(
        self, conn: sa.Connection, customer_ids: Sequence[str], now: datetime
    ) -> dict[str, CustomerState]:
        """Each of ``customer_ids`` as a delivery at ``now`` checks them (a merged one by its
        survivor): the profile itself, with every event logged (an unsubscribe takes effect at
        once), unless it holds an event stamped after ``now`` (events ingested ahead of the
        clock: a backfill). Then the profile as the journey engine has taken it by its pass
        (``engine_state``; a merged one's own while ingest merged it ahead of the engine), not
        the next day's unsubscribe. A few queries a page, however many are merged."""
        columns = (
            customers.c.id,
            customers.c.merged_into,
            customers.c.state,
            customers.c.engine_state,
        )
        wanted = sorted(set(customer_ids))
        rows = self._rows(conn, columns, wanted)
        merged = [cid for cid, row in rows.items() if row.merged_into is not None]
        survivor = survivors_of(conn, merged) if merged else {}  # one walk for the page
        rows.update(self._rows(conn, columns, sorted(set(survivor.values()) - rows.keys())))
        found: dict[str, CustomerState] = {}
        for customer_id in wanted:
            row, live = rows.get(customer_id), rows.get(survivor.get(customer_id, customer_id))
            if row is None or live is None:
                continue
            state = state_from_json(live.state)
            if state.last_seen_at is not None and state.last_seen_at > now:
                seen = row.engine_state if row.engine_state is not None else live.engine_state
                if seen is not None:
                    state = state_from_json(seen)
            found[customer_id] = state
        return found

    @staticmethod
    def _rows(
        conn: sa.Connection, columns: tuple[Any, ...], customer_ids: Sequence[str]
    ) -> dict[str, Any]:
        """The rows of ``customer_ids`` (those there are), by id, in a query a chunk."""
        found: dict[str, Any] = {}
        for part in chunks(customer_ids):
            query = sa.select(*columns).where(customers.c.id.in_(part))
            found.update((row.id, row) for row in conn.execute(query))
        return found

    def versioned_states(
        self, conn: sa.Connection, customer_ids: Sequence[str], cache: StateCache | None = None
    ) -> dict[str, VersionedState]:
        """The state and version of each live customer in ``customer_ids``, locked on
        PostgreSQL; a state the cache holds at the stored version is not read again."""
        found: dict[str, VersionedState] = {}
        misses: list[str] = []
        for part in chunks(sorted(customer_ids)):
            query = sa.select(customers.c.id, customers.c.version).where(
                customers.c.id.in_(part), customers.c.merged_into.is_(None)
            )
            if self.lock:
                query = query.with_for_update()
            for customer_id, version in conn.execute(query):
                cached = cache.get(customer_id) if cache is not None else None
                if cached is not None and cached.version == version:
                    found[customer_id] = cached
                else:
                    misses.append(customer_id)
        for part in chunks(misses):
            query = sa.select(customers.c.id, customers.c.version, customers.c.state).where(
                customers.c.id.in_(part)
            )
            for row in conn.execute(query):
                found[row.id] = VersionedState(row.version, state_from_json(row.state))
        return found

    def history(self, conn: sa.Connection, customer_ids: Sequence[str]) -> list[Event]:
        """Every logged event of the given customers, together."""
        by_customer = self.history_by_customer(conn, customer_ids)
        return [event for found in by_customer.values() for event in found]

    def history_by_customer(
        self, conn: sa.Connection, customer_ids: Sequence[str]
    ) -> dict[str, list[Event]]:
        """Every logged event of the given customers, by customer."""
        found: dict[str, list[Event]] = {}
        for part in chunks(customer_ids):
            query = sa.select(events).where(events.c.customer_id.in_(part))
            for row in conn.execute(query):
                found.setdefault(row.customer_id, []).append(event_from_row(row))
        return found

    def stored_events(
        self, conn: sa.Connection, customer_id: str, limit: int | None = None
    ) -> list[StoredEvent]:
        """The customer's events, latest first."""
        query = (
            sa.select(events)
            .where(events.c.customer_id == customer_id)
            .order_by(events.c.timestamp.desc(), events.c.seq.desc())
            .limit(limit)
        )
        return [
            StoredEvent(row.seq, row.customer_id, row.source, row.received_at, event_from_row(row))
            for row in conn.execute(query)
        ]

    def resolve(self, conn: sa.Connection, reference: str) -> str | None:
        """The live customer id behind a customer id (merged ones too) or an identity key."""
        customer_id = conn.scalar(
            sa.select(identities.c.customer_id).where(identities.c.key == reference)
        )
        if customer_id is None:
            customer_id = reference
        for _ in range(64):  # merged_into chains are short; the bound guards against a cycle
            row = conn.execute(
                sa.select(customers.c.merged_into).where(customers.c.id == customer_id)
            ).first()
            if row is None:
                return None
            if row.merged_into is None:
                return customer_id
            customer_id = row.merged_into
        return None

    def survivors(self, conn: sa.Connection, customer_ids: Iterable[str]) -> dict[str, str]:
        """Each of ``customer_ids`` merged into another profile, with the live one it went
        into at the end of its chain of merges."""
        return survivors_of(conn, customer_ids)

    def keys_of(self, conn: sa.Connection, customer_id: str) -> list[str]:
        """Every identity key of the customer."""
        query = (
            sa.select(identities.c.key)
            .where(identities.c.customer_id == customer_id)
            .order_by(identities.c.key)
        )
        return list(conn.scalars(query))

    def merges_into(self, conn: sa.Connection, customer_id: str) -> list[MergeRecord]:
        """The merges whose survivor is the customer, oldest first."""
        query = sa.select(merges).where(merges.c.survivor_id == customer_id).order_by(merges.c.id)
        return [
            MergeRecord(r.survivor_id, r.merged_id, r.message_id, tuple(r.linked_keys), r.at)
            for r in conn.execute(query)
        ]

    def recent_customers(self, conn: sa.Connection, limit: int) -> list[tuple[str, CustomerState]]:
        """The live customers seen last, latest first."""
        query = (
            sa.select(customers.c.id, customers.c.state)
            .where(customers.c.merged_into.is_(None))
            .order_by(customers.c.last_seen_at.desc(), customers.c.id)
            .limit(limit)
        )
        return [(cid, state_from_json(state)) for cid, state in conn.execute(query)]

    def counts(self, conn: sa.Connection) -> dict[str, int]:
        """How many events, live customers, identity keys and merges are stored."""
        live = (
            sa.select(sa.func.count())
            .select_from(customers)
            .where(customers.c.merged_into.is_(None))
        )
        return {
            "events": conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0,
            "customers": conn.scalar(live) or 0,
            "identities": conn.scalar(sa.select(sa.func.count()).select_from(identities)) or 0,
            "merges": conn.scalar(sa.select(sa.func.count()).select_from(merges)) or 0,
        }

    def live_ids(self, conn: sa.Connection) -> list[str]:
        """Every customer that has not been merged into another."""
        query = sa.select(customers.c.id).where(customers.c.merged_into.is_(None))
        return list(conn.scalars(query.order_by(customers.c.id)))

    # --- writes -----------------------------------------------------------------------------

    def insert_events(
        self,
        conn: sa.Connection,
        rows: list[tuple[Any, ...]],
        taken: Collection[str] = (),
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Append :func:`event_row` rows to the event log (and, but those whose messageId is
        in ``taken``, to the journey engine's inbox, with the customer each was received as:
        ``owners`` by messageId, default the row's)."""
        self.bulk.insert_events(conn, rows, taken, owners)

    def arrived(self, conn: sa.Connection, fresh: Sequence[Event]) -> list[Event]:
        """``fresh`` (events about to be logged, in the order received), each with its arrival
        set to the log sequence number it will be stored under."""
        sequences = self.bulk.next_sequences(conn, len(fresh))
        return [replace(event, arrival=seq) for event, seq in zip(fresh, sequences, strict=True)]

    def insert_identities(
        self, conn: sa.Connection, new_keys: Iterable[tuple[str, str, datetime]]
    ) -> None:
        """Record new ``(key, customer_id, first_seen_at)`` identities."""
        self.bulk.insert_identities(conn, new_keys)

    def reassign(self, conn: sa.Connection, merged_ids: Sequence[str], survivor_id: str) -> None:
        """Point the identities and events of merged profiles at their survivor."""
        for part in chunks(merged_ids):
            conn.execute(
                identities.update()
                .where(identities.c.customer_id.in_(part))
                .values(customer_id=survivor_id)
            )
            conn.execute(  # each keeps the profile it was received as
                events.update()
                .where(events.c.customer_id.in_(part))
                .values(
                    customer_id=survivor_id,
                    received_as=sa.func.coalesce(events.c.received_as, events.c.customer_id),
                )
            )
        # their events waiting for the journey engine are the survivor's partition's now, and
        # their timers (batches.timer_owners: the survivor's batches take them)
        for part in chunks(merged_ids):
            conn.execute(
                journey_timers.update()
                .where(journey_timers.c.customer_id.in_(part))
                .values(bucket=bucket_of(survivor_id))
            )
        conn.execute(
            journey_inbox.update()
            .where(
                journey_inbox.c.message_id.in_(
                    sa.select(events.c.message_id).where(events.c.customer_id == survivor_id)
                )
            )
            .values(bucket=bucket_of(survivor_id))
        )

    def save_states(
        self,
        conn: sa.Connection,
        states: dict[str, CustomerState],
        versions: dict[str, int],
        now: datetime,
        ahead: Collection[str] = (),
    ) -> dict[str, VersionedState]:
        """Insert or update the profiles in ``states``; ``versions`` holds the stored version of
        those that exist; ``ahead`` the customers whose new events the journey engine has yet
        to take (see :meth:`BulkWriter.write_customers`). Returns what was written, at its
        new version."""
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        written: dict[str, VersionedState] = {}
        for customer_id, state in states.items():
            version = versions.get(customer_id, 0) + 1
            row = (
                customer_id,
                state.user_id,
                state.email,
                state.phone,
                state.first_seen_at,
                state.last_seen_at,
                json_text(state_to_json(state)),
                version,
                now,
            )
            (updates if customer_id in versions else inserts).append(row)
            written[customer_id] = VersionedState(version, state)
        self.bulk.write_customers(conn, inserts, updates, ahead)
        return written

    def record_merges(
        self, conn: sa.Connection, records: list[MergeRecord], existing: set[str], now: datetime
    ) -> None:
        """Mark merged profiles and log each merge; a profile created and merged within one
        batch gets its row too, so its id still resolves."""
        if not records:
            return
        conn.execute(
            merges.insert(),
            [
                {
                    "survivor_id": r.survivor_id,
                    "merged_id": r.merged_id,
                    "message_id": r.message_id,
                    "linked_keys": list(r.linked_keys),
                    "at": r.at,
                    "recorded_at": now,
                }
                for r in records
            ],
        )
        fresh = [
            {"id": r.merged_id, "merged_into": r.survivor_id, "state": None, "updated_at": now}
            for r in records
            if r.merged_id not in existing
        ]
        if fresh:
            conn.execute(customers.insert(), fresh)
        stale = [
            {"b_id": r.merged_id, "merged_into": r.survivor_id, "updated_at": now}
            for r in records
            if r.merged_id in existing
        ]
        if stale:
            # the engine's view of them stays until it takes the merging event (their events
            # before it are still theirs to the engine): the view kept, else the profile
            statement = (
                customers.update()
                .where(customers.c.id == sa.bindparam("b_id"))
                .values(
                    state=None,
                    engine_state=sa.func.coalesce(customers.c.engine_state, customers.c.state),
                )
            )
            conn.execute(statement, stale)
