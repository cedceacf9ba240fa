"""Many rows of one table written by one driver call: the journey engine's saves (journeys,
timers, memberships, outbox rows, decisions, segment looks, the engine's views), as ingest
writes its events (:mod:`engine.storage.bulk`).

SQLAlchemy Core binds each value of each row through its type's processors and its own
bookkeeping: about as long as SQLite takes to write the rows (benchmarks/README.md). Here the
statement is made once per table, columns and kind of write, and each column gets one plain
conversion to the form its backend stores, done a column at a time: on SQLite the UTC text
SQLAlchemy itself writes and reads, JSON as text; on PostgreSQL aware datetimes and JSON text
cast to its column's type (plain inserts go by ``COPY``). Reads stay on SQLAlchemy, which reads
both back. Every row of a call has the same keys, the columns written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.storage.bulk import copy_rows, json_text, same_time, sqlite_time
from engine.storage.tables import UTCDateTime

Convert = Callable[[Any], Any]
_POSTGRESQL: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
_SQLITE: sa.Dialect = sqlite.dialect()
_QUOTE = {True: _POSTGRESQL.identifier_preparer, False: _SQLITE.identifier_preparer}


@dataclass(frozen=True)
class _Statement:
    sql: str
    columns: tuple[str, ...]  # the rows' keys, in the order of the statement's values
    converts: tuple[Convert | None, ...]  # per column; None: written as it is


def _json(none_as_null: bool) -> Convert:
    if none_as_null:
        return lambda value: None if value is None else json_text(value)
    return json_text  # None as JSON null, as SQLAlchemy writes it


def _column(column: sa.Column[Any], postgres: bool) -> tuple[Convert | None, str]:
    """The conversion of ``column``'s values and its placeholder (with the cast it needs)."""
    mark = "%s" if postgres else "?"
    if isinstance(column.type, UTCDateTime):
        return (same_time if postgres else sqlite_time), mark
    if isinstance(column.type, sa.JSON):
        convert = _json(column.type.none_as_null)
        if not postgres:
            return convert, mark
        impl = column.type.dialect_impl(_POSTGRESQL)
        return convert, mark + ("::jsonb" if isinstance(impl, postgresql.JSONB) else "::json")
    return None, mark


@lru_cache(maxsize=256)
def _statement(
    postgres: bool, table: sa.Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]
) -> _Statement:
    """The statement of ``kind`` (insert, upsert, insert_new, update) of ``columns``."""
    made = {name: _column(table.c[name], postgres) for name in columns}
    q = _QUOTE[postgres].quote
    name = q(table.name)
    if kind == "update":  # SET the columns but the keys WHERE the keys are: keys last
        values = [c for c in columns if c not in keys]
        order = (*values, *keys)
        sql = (
            f"UPDATE {name} SET {', '.join(f'{q(c)} = {made[c][1]}' for c in values)}"
            f" WHERE {' AND '.join(f'{q(c)} = {made[c][1]}' for c in keys)}"
        )
    else:
        order = columns
        listed = ", ".join(q(c) for c in columns)
        sql = f"INSERT INTO {name} ({listed}) VALUES ({', '.join(made[c][1] for c in columns)})"
        if kind == "insert_new":
            sql += " ON CONFLICT DO NOTHING"
        elif kind == "upsert":
            updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in keys)
            sql += f" ON CONFLICT ({', '.join(q(c) for c in keys)}) DO UPDATE SET {updates}"
    return _Statement(sql, order, tuple(made[c][0] for c in order))


def _tuples(statement: _Statement, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """``rows`` as the driver takes them, converted a column at a time."""
    values = [
        [row[name] for row in rows] if convert is None else [convert(row[name]) for row in rows]
        for name, convert in zip(statement.columns, statement.converts, strict=True)
    ]
    return list(zip(*values, strict=True))


def _write(
    conn: sa.Connection,
    table: sa.Table,
    kind: str,
    rows: Sequence[dict[str, Any]],
    keys: tuple[str, ...] = (),
) -> None:
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    statement = _statement(postgres, table, kind, tuple(rows[0]), keys)
    tuples = _tuples(statement, rows)
    if postgres and kind == "insert":
        copy_rows(conn, table.name, statement.columns, tuples)
    else:
        conn.exec_driver_sql(statement.sql, tuples)


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``."""
    _write(conn, table, "insert", rows)


def insert_new_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the ``rows`` whose unique keys are not there yet; leave the others alone."""
    _write(conn, table, "insert_new", rows)


def upsert_rows(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows``, updating the other columns of those whose ``keys`` exist."""
    _write(conn, table, "upsert", rows, tuple(keys))


def update_rows(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Set the other columns of each row found by its ``keys``."""
    _write(conn, table, "update", rows, tuple(keys))
