"""Which customers a batch works on, and the inbox events it takes for them.

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

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.storage.customer_store import chunks
from engine.storage.tables import customers, events, journey_inbox, journey_timers, merges

CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of the clock an event's time may be
# The order events are taken from the inbox in, the one place it is written.
INBOX_ORDER = (journey_inbox.c.timestamp, journey_inbox.c.message_id)


def inbox_batch(now: datetime, size: int) -> sa.Select[Any]:
    """The customers of the next ``size`` events waiting in the inbox, in inbox order, up to
    ``now`` (a later one waits for its time); a customer once per event. Read by the inbox's own
    time index and joined to the log by message id, so a batch costs the same whatever the
    backlog. A profile merged away is no one's owner: ingest moved its events to the survivor."""
    return (
        sa.select(customers.c.id)
        .select_from(journey_inbox)
        .join(events, events.c.message_id == journey_inbox.c.message_id)
        .join(customers, customers.c.id == events.c.customer_id)
        .where(journey_inbox.c.timestamp <= now + CLOCK_SKEW, customers.c.merged_into.is_(None))
        .order_by(*INBOX_ORDER)
        .limit(size)
    )


def timer_batch(now: datetime, size: int, running: Sequence[str]) -> sa.Select[Any]:
    """The customers of the next ``size`` timers due by ``now`` (of running campaigns). A merged
    profile's timers wait for the event that merged it: the survivor's batch takes them."""
    return (
        sa.select(customers.c.id)
        .select_from(journey_timers)
        .join(customers, customers.c.id == journey_timers.c.customer_id)
        .where(
            journey_timers.c.due_at <= now,
            journey_timers.c.campaign_id.in_(running),
            customers.c.merged_into.is_(None),
        )
        .order_by(journey_timers.c.due_at, journey_timers.c.id)
        .limit(size)
    )


def after(customer_id: str | None, size: int) -> sa.Select[Any]:
    """The next ``size`` live customers by id after ``customer_id`` (a schedule's progress)."""
    query = sa.select(customers.c.id).where(customers.c.merged_into.is_(None))
    if customer_id is not None:
        query = query.where(customers.c.id > customer_id)
    return query.order_by(customers.c.id).limit(size)


class Claims:
    """Claims customers for a batch: locked and skipped when held on PostgreSQL, as read on
    SQLite."""

    def __init__(self, dialect_name: str) -> None:
        self.lock = dialect_name == "postgresql"

    def claim(self, conn: sa.Connection, query: sa.Select[Any]) -> list[Any]:
        """The rows of ``query`` whose customers no other pass holds, now held by this one."""
        if self.lock:
            query = query.with_for_update(skip_locked=True, of=customers)
        return list(conn.execute(query))

    def ids(self, conn: sa.Connection, query: sa.Select[Any]) -> list[str]:
        """The customers ``query`` names first (its first column), each once, in its order."""
        return list(dict.fromkeys(row[0] for row in self.claim(conn, query)))

    def these(self, conn: sa.Connection, customer_ids: Iterable[str]) -> set[str]:
        """Of ``customer_ids`` (live or merged away), those now held by this pass."""
        wanted = sorted(set(customer_ids))
        if not self.lock:
            return set(wanted)
        held: set[str] = set()
        for part in chunks(wanted):
            query = sa.select(customers.c.id).where(customers.c.id.in_(part))
            held.update(self.ids(conn, query.order_by(customers.c.id)))
        return held


def due_events(conn: sa.Connection, customer_ids: Sequence[str], now: datetime) -> list[Any]:
    """Every event of ``customer_ids`` waiting in the inbox, up to ``now`` and its skew, in
    inbox order. Read by the log's (customer, time) index from the oldest event waiting, so a
    customer's older history is not read."""
    oldest = conn.scalar(sa.select(sa.func.min(journey_inbox.c.timestamp)))
    if oldest is None or not customer_ids:
        return []
    rows: list[Any] = []
    for part in chunks(sorted(customer_ids)):
        query = (
            sa.select(events, *(column.label(f"inbox_{column.name}") for column in INBOX_ORDER))
            .join(journey_inbox, journey_inbox.c.message_id == events.c.message_id)
            .where(
                events.c.customer_id.in_(part),
                events.c.timestamp >= oldest,
                events.c.timestamp <= now + CLOCK_SKEW,
            )
        )
        rows.extend(conn.execute(query))
    keys = [f"inbox_{column.name}" for column in INBOX_ORDER]
    return sorted(rows, key=lambda row: tuple(getattr(row, key) for key in keys))


def merged_by(conn: sa.Connection, message_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The profiles each event merged into its customer, in merge order."""
    merged: dict[str, tuple[str, ...]] = {}
    for part in chunks(message_ids):
        query = sa.select(merges.c.message_id, merges.c.merged_id).where(
            merges.c.message_id.in_(part)
        )
        for message_id, merged_id in conn.execute(query.order_by(merges.c.id)):
            merged[message_id] = (*merged.get(message_id, ()), merged_id)
    return merged
