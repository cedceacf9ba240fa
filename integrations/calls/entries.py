"""The call-list tables (``call_entries``, ``call_dnc``): adding entries, the do-not-call list
and the counts by list and status. One connection per call; the caller owns the transaction."""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from integrations.calls.tables import call_dnc, call_entries


class EntryStatus(enum.StrEnum):
    """Where a call-list entry is: waiting for an export, handed to the dialer, called (its
    outcome recorded), or suppressed (its phone joined the do-not-call list before export)."""

    PENDING = "pending"
    EXPORTED = "exported"
    CALLED = "called"
    SUPPRESSED = "suppressed"


DNC_DETAIL = "suppressed: do-not-call"
"""How a call to a do-not-call phone is refused; ``suppressed`` is the policies' skip reason."""


def entry_id(key: str) -> str:
    """The entry id of a delivery key: stable, short, safe in a CSV cell and a messageId."""
    return "call_" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def add_entry(conn: sa.Connection, values: Mapping[str, Any]) -> bool:
    """Insert an entry unless its key is already there; ``True`` if it was inserted."""
    statement = _insert(conn, call_entries).returning(call_entries.c.id)
    return conn.execute(statement, dict(values)).first() is not None


def dnc_contains(conn: sa.Connection, phone: str) -> bool:
    """Whether the E.164 ``phone`` is on the do-not-call list."""
    found = conn.scalar(sa.select(call_dnc.c.phone).where(call_dnc.c.phone == phone))
    return found is not None


def dnc_add(conn: sa.Connection, phones: Iterable[str], source: str, at: datetime) -> list[str]:
    """Put E.164 ``phones`` on the do-not-call list; the ones that were not on it yet."""
    added = []
    for phone in dict.fromkeys(phones):
        row = {"phone": phone, "source": source, "added_at": at}
        statement = _insert(conn, call_dnc).returning(call_dnc.c.phone)
        if conn.execute(statement, row).first() is not None:
            added.append(phone)
    return added


def dnc_remove(conn: sa.Connection, phones: Iterable[str]) -> list[str]:
    """Take E.164 ``phones`` off the do-not-call list; the ones that were on it."""
    delete = call_dnc.delete()
    return [
        phone
        for phone in dict.fromkeys(phones)
        if conn.execute(delete.where(call_dnc.c.phone == phone)).rowcount
    ]


@dataclass(frozen=True, slots=True)
class DncEntry:
    """A phone on the do-not-call list, who put it there and when."""

    phone: str
    source: str
    added_at: datetime


def dnc_entries(conn: sa.Connection) -> list[DncEntry]:
    """The do-not-call list, by phone."""
    query = sa.select(call_dnc).order_by(call_dnc.c.phone)
    return [DncEntry(row.phone, row.source, row.added_at) for row in conn.execute(query)]


def counts_by_list(conn: sa.Connection) -> dict[str, Counter[str]]:
    """How many entries each list has in each status, lists by name."""
    query = (
        sa.select(call_entries.c.list_name, call_entries.c.status, sa.func.count())
        .group_by(call_entries.c.list_name, call_entries.c.status)
        .order_by(call_entries.c.list_name)
    )
    counts: dict[str, Counter[str]] = {}
    for list_name, status, count in conn.execute(query):
        counts.setdefault(list_name, Counter())[status] = count
    return counts


def missing_tables(conn: sa.Connection) -> list[str]:
    """The call-list tables missing from the database (empty when both are there)."""
    inspector = sa.inspect(conn)
    return [t.name for t in (call_entries, call_dnc) if not inspector.has_table(t.name)]
