"""The hot bulk writes of ingest, as plain driver calls.

SQLAlchemy Core spends more time binding parameters row by row (type processors, JSON
serialisation) than the database spends writing them. Ingest writes thousands of rows per batch,
so these statements go to the driver directly, with values already in the form each backend
stores: on SQLite ``executemany``, the ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text SQLAlchemy itself
writes and reads, JSON as text; on PostgreSQL ``COPY`` for events, inbox rows and profile
updates, aware datetimes, JSON text (payloads ``jsonb``, states ``json``). Reads stay on
SQLAlchemy, which reads both forms back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from engine.drive.partitions import bucket_of
from engine.state.codec import state_to_json
from engine.state.profile import CustomerState
from engine.storage.sqlite_time import sqlite_time

INBOX_COLUMNS = ("message_id", "timestamp", "seq", "customer_id", "bucket")
EVENT_COLUMNS = (
    "seq",
    "message_id",
    "type",
    "name",
    "timestamp",
    "customer_id",
    "user_id",
    "anonymous_id",
    "channel",
    "payload",
    "source",
    "received_at",
    "received_as",
)
_CUSTOMER_COLUMNS = (
    "user_id",
    "email",
    "phone",
    "first_seen_at",
    "last_seen_at",
    "state",
    "version",
    "updated_at",
)


def _other(owners: Mapping[str, str], message_id: str, customer_id: str) -> str | None:
    """The profile ``message_id`` was received as, where it is not ``customer_id``."""
    received_as = owners.get(message_id)
    return received_as if received_as != customer_id else None


def same_time(value: datetime | None) -> datetime | None:
    return value


def json_text(value: Any) -> str:
    """``value`` as compact JSON text."""
    return orjson.dumps(value).decode()


EMPTY_VIEW = json_text(state_to_json(CustomerState()))  # a new customer, as the engine saw them


def copy_rows(
    conn: sa.Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """``rows`` into ``table`` by PostgreSQL's ``COPY``, in the connection's transaction: a
    third of the time of an ``INSERT`` per row (benchmarks/README.md). A unique-key race or a
    deadlock is raised as SQLAlchemy's error, as an ``INSERT`` would raise it, so callers retry
    it the same way."""
    if not rows:
        return
    import psycopg  # PostgreSQL only: SQLite never comes here

    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


# PostgreSQL: a batch's profile updates go by COPY into this session's table, then one UPDATE
_CUSTOMER_WRITES = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS customer_writes (id text PRIMARY KEY, user_id text,"
    " email text, phone text, first_seen_at timestamptz, last_seen_at timestamptz,"
    " state json, version integer, updated_at timestamptz, ahead boolean)"
)
_UPDATE_FROM_WRITES = (
    "UPDATE customers AS c SET "
    + ", ".join(f"{column} = w.{column}" for column in _CUSTOMER_COLUMNS)
    # the engine's view keeps the state before ingest got ahead of it (SET reads the old row)
    + ", engine_state = CASE WHEN w.ahead THEN coalesce(c.engine_state, c.state)"
    " ELSE c.engine_state END FROM customer_writes AS w WHERE c.id = w.id"
)


def _update_customers_by_copy(
    conn: sa.Connection, updates: list[tuple[Any, ...]], ahead: Collection[str]
) -> None:
    """The profile ``updates`` of :meth:`BulkWriter.write_customers` in a few statements,
    not one ``UPDATE`` per row (a quarter to a half of the time, benchmarks/README.md). The
    table is the session's (created in a rolled-back transaction, it is gone again) and
    emptied after use, so it holds only this call's rows."""
    if not updates:
        return
    conn.exec_driver_sql(_CUSTOMER_WRITES)
    rows = [(*row, row[0] in ahead) for row in updates]
    copy_rows(conn, "customer_writes", ("id", *_CUSTOMER_COLUMNS, "ahead"), rows)
    conn.exec_driver_sql(_UPDATE_FROM_WRITES)
    conn.exec_driver_sql("TRUNCATE customer_writes")


class BulkWriter:
    """Dialect-aware ``executemany`` statements for events, identities and profiles."""

    def __init__(self, dialect_name: str) -> None:
        postgres = self.postgres = dialect_name == "postgresql"
        mark = "%s" if postgres else "?"
        # JSON goes as text, cast on PostgreSQL: payloads to jsonb (queried), states to json
        casts = (
            {"payload": "%s::jsonb", "state": "%s::json", "engine_state": "%s::json"}
            if postgres
            else {}
        )
        self.time: Callable[[datetime | None], datetime | str | None] = (
            same_time if postgres else sqlite_time
        )

        def marks(columns: tuple[str, ...]) -> str:
            return ", ".join(casts.get(c, mark) for c in columns)

        # (on PostgreSQL the events, inbox rows and profile updates go by COPY instead)
        self._insert_events = (
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks(EVENT_COLUMNS)})"
        )
        self._insert_inbox = f"INSERT INTO journey_inbox ({', '.join(INBOX_COLUMNS)}) VALUES ({marks(INBOX_COLUMNS)})"
        self._insert_identities = f"INSERT INTO identities (key, customer_id, first_seen_at) VALUES ({mark}, {mark}, {mark})"
        inserted = (*_CUSTOMER_COLUMNS, "engine_state")
        self._insert_customers = (
            f"INSERT INTO customers (id, {', '.join(inserted)}) VALUES ({mark}, {marks(inserted)})"
        )
        assignments = ", ".join(f"{c} = {marks((c,))}" for c in _CUSTOMER_COLUMNS)
        self._update_customers = f"UPDATE customers SET {assignments} WHERE id = {mark}"
        # the engine's view keeps the state before ingest got ahead of it (SET reads the old row)
        self._update_customers_ahead = (
            f"UPDATE customers SET engine_state = coalesce(engine_state, state), {assignments}"
            f" WHERE id = {mark}"
        )

    @staticmethod
    def _run(conn: sa.Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.exec_driver_sql(statement, rows)

    def insert_events(
        self,
        conn: sa.Connection,
        rows: Iterable[tuple[Any, ...]],
        taken: Collection[str] = (),
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Rows in :data:`EVENT_COLUMNS` order, times and payload still as Python values; each
        event also enters the journey inbox, in the same transaction, but those whose
        messageId is in ``taken`` (the engine made them and has seen them), with its customer
        when received (``owners`` by messageId; default the row's)."""
        time = self.time
        owner = owners or {}
        converted = [  # received as another profile: one a merge later in the batch moved
            (q, m, ty, n, time(ts), c, u, a, ch, json_text(p), s, time(r), _other(owner, m, c))
            for q, m, ty, n, ts, c, u, a, ch, p, s, r in rows
        ]
        inbox = [
            (row[1], row[4], row[0], row[12] or row[5], bucket_of(row[5]))
            for row in converted
            if row[1] not in taken
        ]
        if self.postgres:
            copy_rows(conn, "events", EVENT_COLUMNS, converted)
            copy_rows(conn, "journey_inbox", INBOX_COLUMNS, inbox)
            return
        self._run(conn, self._insert_events, converted)
        self._run(conn, self._insert_inbox, inbox)

    def next_sequences(self, conn: sa.Connection, count: int) -> list[int]:
        """``count`` new ``events.seq`` values, increasing: the arrival order of the events
        about to be logged. On PostgreSQL drawn from the column's sequence (concurrent writers
        get distinct values); on SQLite the ones after the largest logged (SQLite has one
        writer at a time, and a writer that got in between makes this batch's insert fail
        and be retried)."""
        if count <= 0:
            return []
        if self.postgres:
            found = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('events', 'seq'))"
                " FROM generate_series(1, %s)",
                (count,),
            )
            return sorted(value for (value,) in found)
        last = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM events").scalar_one()
        return list(range(last + 1, last + 1 + count))

    def insert_identities(
        self, conn: sa.Connection, rows: Iterable[tuple[str, str, datetime]]
    ) -> None:
        """``(key, customer_id, first_seen_at)`` rows."""
        time = self.time
        self._run(conn, self._insert_identities, [(k, c, time(t)) for k, c, t in rows])

    def write_customers(
        self,
        conn: sa.Connection,
        inserts: list[tuple[Any, ...]],
        updates: list[tuple[Any, ...]],
        ahead: Collection[str] = (),
    ) -> None:
        """``(id, user_id, email, phone, first_seen_at, last_seen_at, state_json, version,
        updated_at)`` rows to insert, and the same rows to update by id. ``ahead`` holds the
        customers whose new events the journey engine has yet to take: their engine view
        (``engine_state``) keeps the profile as it was before (empty for a new one), if it
        is not kept already."""
        time = self.time
        self._run(
            conn,
            self._insert_customers,
            [
                (i, u, e, p, time(f), time(la), s, v, time(up), EMPTY_VIEW if i in ahead else None)
                for i, u, e, p, f, la, s, v, up in inserts
            ],
        )
        if self.postgres:
            _update_customers_by_copy(conn, updates, ahead)
            return
        for statement, rows in (
            (self._update_customers, [row for row in updates if row[0] not in ahead]),
            (self._update_customers_ahead, [row for row in updates if row[0] in ahead]),
        ):
            self._run(
                conn,
                statement,
                [
                    (u, e, p, time(f), time(la), s, v, time(up), i)
                    for i, u, e, p, f, la, s, v, up in rows
                ],
            )
