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

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.storage.bulk import copy_rows, json_text, same_time
from engine.storage.sqlite_time import sqlite_time
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


def _utc(convert: Convert) -> Convert:
    """``convert``, refusing a naive time as SQLAlchemy's :class:`UTCDateTime` does."""

    def checked(value: Any) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return convert(value)

    return checked


_SQLITE_UTC, _POSTGRESQL_UTC = _utc(sqlite_time), _utc(same_time)


def _json(none_as_null: bool) -> Convert:
    if none_as_null:
        return lambda value: None if value is None else json_text(value)
    return json_text  # None as JSON null, as SQLAlchemy writes it


def _column(column: sa.Column[Any], postgres: bool) -> tuple[Convert | None, str]:
    """The conversion of ``column``'s values and its placeholder (with the cast it needs)."""
    mark = "%s" if postgres else "?"
    if isinstance(column.type, UTCDateTime):
        return (_POSTGRESQL_UTC if postgres else _SQLITE_UTC), mark
    if isinstance(column.type, sa.JSON):
        convert = _json(column.type.none_as_null)
        if not postgres:
            return convert, mark
        impl = column.type.dialect_impl(_POSTGRESQL)
        return convert, mark + ("::jsonb" if isinstance(impl, postgresql.JSONB) else "::json")
    return None, mark


def _on_conflict(
    kind: str, columns: tuple[str, ...], keys: tuple[str, ...], q: Callable[[str], str]
) -> str:
    """An insert's ``ON CONFLICT`` clause for ``kind``: none (insert), leave the row there
    (insert_new), or set its other columns (upsert)."""
    if kind == "insert_new":
        return " ON CONFLICT DO NOTHING"
    if kind != "upsert":
        return ""
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in keys)
    return f" ON CONFLICT ({', '.join(q(c) for c in keys)}) DO UPDATE SET {updates}"


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
        marks = ", ".join(made[c][1] for c in columns)
        sql = f"INSERT INTO {name} ({listed}) VALUES ({marks})" + _on_conflict(
            kind, columns, keys, q
        )
    return _Statement(sql, order, tuple(made[c][0] for c in order))


@dataclass(frozen=True)
class _Staged:
    """On PostgreSQL, a write of many rows as ``COPY`` into a session's table, then one
    statement from it: an ``INSERT … ON CONFLICT`` or ``UPDATE`` per row, even pipelined, took
    about 40 µs a row."""

    create: str
    table: str
    apply: str


STAGED_FROM = 32  # rows; fewer go by executemany (staging costs four statements)


@lru_cache(maxsize=256)
def _staged(table: sa.Table, kind: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> _Staged:
    """The staging table of ``kind`` (upsert, insert_new, update) of ``columns`` into
    ``table``: the columns' own types, and ``n``, each row's place in the call (rows go in
    that order, as they would one by one: serial ids follow it)."""
    q = _QUOTE[True].quote
    staging = f"staged_{table.name}_{zlib.crc32(repr((kind, columns)).encode()):08x}"
    types = ", ".join(
        f"{q(c)} {table.c[c].type.dialect_impl(_POSTGRESQL).compile(_POSTGRESQL)}" for c in columns
    )
    create = f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (n integer, {types})"
    listed = ", ".join(q(c) for c in columns)
    name = q(table.name)
    if kind == "update":
        sets = ", ".join(f"{q(c)} = w.{q(c)}" for c in columns if c not in keys)
        on = " AND ".join(f"t.{q(c)} = w.{q(c)}" for c in keys)
        apply = f"UPDATE {name} AS t SET {sets} FROM {staging} AS w WHERE {on}"
    else:
        apply = (
            f"INSERT INTO {name} ({listed}) SELECT {listed} FROM {staging} ORDER BY n"
            + _on_conflict(kind, columns, keys, q)
        )
    return _Staged(create, staging, apply)


def _write_staged(
    conn: sa.Connection, staged: _Staged, columns: tuple[str, ...], tuples: list[tuple[Any, ...]]
) -> None:
    conn.exec_driver_sql(staged.create)
    numbered = [(n, *row) for n, row in enumerate(tuples)]
    copy_rows(conn, staged.table, ("n", *columns), numbered)
    conn.exec_driver_sql(staged.apply)
    conn.exec_driver_sql(f"TRUNCATE {staged.table}")


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
    columns = tuple(rows[0])
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"rows of {table.name} with different columns in one write")
    if kind in ("upsert", "update"):  # a key given twice: the last row wins, as row by row
        rows = list({tuple(row[key] for key in keys): row for row in rows}.values())
    if postgres and (kind == "insert" or len(rows) >= STAGED_FROM):
        plain = _statement(True, table, "insert", columns, ())  # the columns in row order
        tuples = _tuples(plain, rows)
        if kind == "insert":
            copy_rows(conn, table.name, columns, tuples)
        else:
            _write_staged(conn, _staged(table, kind, columns, keys), columns, tuples)
        return
    statement = _statement(postgres, table, kind, columns, keys)
    conn.exec_driver_sql(statement.sql, _tuples(statement, rows))


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
