"""Inserts that tolerate a row already there, on SQLite and PostgreSQL alike (two workers may
record the same campaign version, a replay the same outbox key)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """Insert ``rows``, updating the other columns of those whose ``keys`` exist."""
    if rows:
        statement = _insert(conn, table)
        updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert the ``rows`` whose unique keys are not there yet; leave the others alone."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), rows)
