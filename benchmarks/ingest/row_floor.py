"""The row-work floor: every read and write followup's ingest makes, with nothing else done.

The events-only floor (:mod:`benchmarks.ingest.floor`) writes the ``events`` rows alone. An
ingest into followup also dedupes against the log, finds each event's customer by its identity
keys, reads and rewrites the customer's profile, records new keys and queues the event for the
journey engine. This floor makes those same statements, in batches of the same size, one
transaction each, with the backend's bulk paths and the engine's durability:

- parse each line with orjson and build the ``events`` row as :mod:`benchmarks.ingest.floor` does;
- look the batch's messageIds up in ``events`` (dupes are skipped) and take the next ``seq``;
- look up the batch's identity keys (``user:`` and ``anon:``, ``email:`` from traits) in
  ``identities``; an event goes to the owner of its first known key, or founds a customer named
  by its first key (no merges: the floor never joins two profiles);
- read the customers found (``state`` and ``version``), decode each state once;
- fold the batch's events into each state as plain dicts: seen times, a count per event name,
  traits, the 20 latest orders and the cart (a floor's reducers: no validation, no refunds);
- encode each state once, then insert the events, their ``journey_inbox`` rows, the new
  identities and the new customers, and update the known ones (keeping the engine's view as
  followup does: ``engine_state = coalesce(engine_state, state)``).

SQLite: ``executemany`` and ``IN`` lists of at most 900, WAL and ``synchronous=FULL``.
PostgreSQL: ``= ANY(array)`` lookups, ``COPY`` for the inserts, and the updates by
``executemany`` in pipeline mode.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg

from benchmarks.ingest.floor import (
    COLUMNS,
    Row,
    _aware_now,
    _sqlite_now,
    batches,
    drive,
    message_row,
    postgres_conninfo,
    sqlite_file,
)

RECENT = 20  # orders kept, as followup keeps
CHUNK = 900  # ids per IN list on SQLite, as followup chunks them
BUCKETS = 1024
EMPTY_VIEW = orjson.dumps({}).decode()

Message = dict[str, Any]


def _keys(message: Message) -> list[str]:
    """The message's identity keys, strongest first."""
    keys = []
    if message.get("userId"):
        keys.append(f"user:{message['userId']}")
    traits = message.get("traits")
    email = traits.get("email") if isinstance(traits, dict) else None
    if isinstance(email, str) and email:
        keys.append(f"email:{email.strip().lower()}")
    if message.get("anonymousId"):
        keys.append(f"anon:{message['anonymousId']}")
    return keys


def _customer_id(key: str) -> str:
    return "c_" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _fold(state: dict[str, Any], message: Message, name: str, timestamp: str) -> None:
    """One event into a profile state held as plain dicts and lists."""
    state.setdefault("first_seen_at", timestamp)
    state["last_seen_at"] = timestamp
    counts = state.setdefault("counts", {})
    counts[name] = counts.get(name, 0) + 1
    traits = message.get("traits")
    if isinstance(traits, dict):
        state.setdefault("traits", {}).update(traits)
    properties = message.get("properties") or {}
    if name == "Order Completed":
        orders = state.setdefault("orders", {"count": 0, "total": 0.0, "recent": []})
        total = properties.get("revenue") or properties.get("total") or 0
        orders["count"] += 1
        orders["total"] = round(orders["total"] + float(total), 2)
        orders["last_at"] = timestamp
        recent = orders["recent"]
        recent.append(
            {
                "order_id": properties.get("order_id"),
                "at": timestamp,
                "total": float(total),
                "products": properties.get("products") or [],
            }
        )
        del recent[:-RECENT]
        state["cart"] = {"items": [], "updated_at": timestamp}
    elif name == "Product Added":
        cart = state.setdefault("cart", {"items": [], "updated_at": timestamp})
        cart["items"].append(
            {k: properties.get(k) for k in ("product_id", "name", "price", "quantity", "category")}
        )
        cart["updated_at"] = timestamp


class Batch:
    """One batch's rows, worked out in Python between the lookups and the writes."""

    def __init__(self, messages: list[tuple[Message, Row]], logged: set[str]) -> None:
        seen = set(logged)  # a messageId logged already, or earlier in the batch: a resend
        self.messages: list[tuple[Message, Row]] = []
        for message, row in messages:
            if row[0] not in seen:
                seen.add(row[0])
                self.messages.append((message, row))
        self.keys = sorted({key for message, _ in self.messages for key in _keys(message)})

    def resolve(
        self, owners: dict[str, str], states: dict[str, tuple[dict[str, Any], int]], first_seq: int
    ) -> tuple[list[Row], list[Row], list[Row], list[Row], list[Row]]:
        """The events, inbox, identity, new-customer and customer-update rows of the batch."""
        fresh: dict[str, dict[str, Any]] = {}
        touched: dict[str, dict[str, Any]] = {}
        new_keys: list[Row] = []
        events: list[Row] = []
        inbox: list[Row] = []
        for seq, (message, row) in enumerate(self.messages, start=first_seq):
            keys = _keys(message)
            customer = next((owners[k] for k in keys if k in owners), None)
            if customer is None:
                customer = _customer_id(keys[0] if keys else row[0])
            for key in keys:
                if key not in owners:
                    owners[key] = customer
                    new_keys.append((key, customer, row[3]))
            if customer in states:
                state = touched.setdefault(customer, states[customer][0])
            else:
                state = fresh.setdefault(customer, {"user_id": message.get("userId")})
            _fold(state, message, row[2], row[3])
            events.append((seq, *row[:4], customer, *row[5:]))
            inbox.append((row[0], row[3], seq, customer, zlib.crc32(customer.encode()) % BUCKETS))
        now = self.messages[0][1][-1] if self.messages else None
        inserted = [
            (cid, s.get("user_id"), s["first_seen_at"], s["last_seen_at"], _text(s), 1, now)
            for cid, s in fresh.items()
        ]
        updated = [
            (s["last_seen_at"], _text(s), states[cid][1] + 1, now, cid)
            for cid, s in touched.items()
        ]
        return events, inbox, new_keys, inserted, updated


def _text(state: dict[str, Any]) -> str:
    return orjson.dumps(state).decode()


def message_batches(
    path: Path, batch_size: int, now: Callable[[], Any]
) -> Iterator[list[tuple[Message, Row]]]:
    """The file's messages with their ``events`` rows, in batches of ``batch_size``."""
    return batches(path, batch_size, now, lambda m, where, at: (m, message_row(m, where, at)))


EVENT_INSERT = ("seq", *COLUMNS)
INBOX_INSERT = ("message_id", "timestamp", "seq", "customer_id", "bucket")
IDENTITY_INSERT = ("key", "customer_id", "first_seen_at")
CUSTOMER_INSERT = (
    "id",
    "user_id",
    "first_seen_at",
    "last_seen_at",
    "state",
    "version",
    "updated_at",
    "engine_state",
)
CUSTOMER_UPDATE = (
    "UPDATE customers SET engine_state = coalesce(engine_state, state), last_seen_at = {m},"
    " state = {m}, version = {m}, updated_at = {m} WHERE id = {m}"
)


LOGGED = "SELECT message_id FROM events WHERE message_id IN ({marks})"
OWNERS = "SELECT key, customer_id FROM identities WHERE key IN ({marks})"


def _insert(table: str, columns: Sequence[str], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class SqliteRowSink:
    """The row work on a SQLite file, in the engine's durability mode."""

    def __init__(self, database: Path) -> None:
        self.conn = sqlite3.connect(database, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.now: Callable[[], Any] = _sqlite_now

    def _in(self, sql: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = []
        for part in _chunks(values):
            marks = ", ".join("?" for _ in part)
            found.extend(self.conn.execute(sql.format(marks=marks), part))
        return found

    def write(self, messages: list[tuple[Message, Row]]) -> int:
        """The batch's row work in one transaction; how many events it logged."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        ids = [row[0] for _, row in messages]
        logged = {m for (m,) in self._in(LOGGED, ids)}
        batch = Batch(messages, logged)
        (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        owners = dict(self._in(OWNERS, batch.keys))
        found = self._in(
            "SELECT id, state, version FROM customers WHERE id IN ({marks})"
            " AND merged_into IS NULL",
            sorted(set(owners.values())),
        )
        states = {cid: (orjson.loads(state), version) for cid, state, version in found}
        events, inbox, keys, inserted, updated = batch.resolve(owners, states, last + 1)
        conn.executemany(_insert("events", EVENT_INSERT, "?"), events)
        conn.executemany(_insert("journey_inbox", INBOX_INSERT, "?"), inbox)
        conn.executemany(_insert("identities", IDENTITY_INSERT, "?"), keys)
        conn.executemany(
            _insert("customers", CUSTOMER_INSERT, "?"), [(*r, EMPTY_VIEW) for r in inserted]
        )
        conn.executemany(CUSTOMER_UPDATE.format(m="?"), updated)
        conn.execute("COMMIT")
        return len(events)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class PostgresRowSink:
    """The row work on PostgreSQL: array lookups, ``COPY`` inserts, pipelined updates."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
        self.now: Callable[[], Any] = _aware_now

    @staticmethod
    def _copy(
        cursor: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: list[Row]
    ) -> None:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def write(self, messages: list[tuple[Message, Row]]) -> int:
        """The batch's row work in one transaction; how many events it logged."""
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            ids = [row[0] for _, row in messages]
            cur.execute("SELECT message_id FROM events WHERE message_id = ANY(%s)", (ids,))
            logged = {m for (m,) in cur.fetchall()}
            batch = Batch(messages, logged)
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('events', 'seq'))"
                " FROM generate_series(1, %s)",
                (len(batch.messages),),
            )
            first = min((value for (value,) in cur.fetchall()), default=1)
            cur.execute(
                "SELECT key, customer_id FROM identities WHERE key = ANY(%s)", (batch.keys,)
            )
            owners: dict[str, str] = dict(cur.fetchall())
            cur.execute(
                "SELECT id, state::text, version FROM customers WHERE id = ANY(%s)"
                " AND merged_into IS NULL FOR UPDATE",
                (sorted(set(owners.values())),),
            )
            states = {cid: (orjson.loads(state), version) for cid, state, version in cur}
            events, inbox, keys, inserted, updated = batch.resolve(owners, states, first)
            self._copy(cur, "events", EVENT_INSERT, events)
            self._copy(cur, "journey_inbox", INBOX_INSERT, inbox)
            self._copy(cur, "identities", IDENTITY_INSERT, keys)
            self._copy(cur, "customers", CUSTOMER_INSERT, [(*r, EMPTY_VIEW) for r in inserted])
            if updated:
                cur.executemany(CUSTOMER_UPDATE.format(m="%s"), updated)
        return len(events)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def load(
    url: str,
    path: Path,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    more: Callable[[], bool] | None = None,
) -> int:
    """Do the row work of ingesting the file into the database at ``url``; the events logged
    (see :func:`benchmarks.ingest.floor.drive`)."""
    sink: SqliteRowSink | PostgresRowSink = (
        SqliteRowSink(sqlite_file(url))
        if url.startswith("sqlite:///")
        else PostgresRowSink(postgres_conninfo(url))
    )
    return drive(sink, lambda now: message_batches(path, batch_size, now), on_batch, more)
