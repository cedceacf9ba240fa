"""``explain``'s reads over the tables (:class:`engine.drive.explanation.ExplainReads`):
decisions, outbox outcomes, journeys and their next timers, events and the inbox, merges.
Only SQLAlchemy Core reads, on the caller's connection; lookups of many ids go a chunk at a time
(``among``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.drive.explanation import MAX_MERGE_DEPTH, Decision, JourneyState, Outcome
from engine.storage.customer_store import among
from engine.storage.tables import (
    customers,
    decisions,
    events,
    journey_inbox,
    journey_timers,
    journeys,
    outbox,
)


class SqlExplainReads:
    """What the tables on ``conn`` tell ``explain``."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def merged_into(self, customer_id: str) -> tuple[str, ...]:
        """Every profile merged into ``customer_id``, following ``merged_into`` chains, sorted."""
        conn = self.conn
        found: set[str] = set()
        frontier = [customer_id]
        for _ in range(MAX_MERGE_DEPTH):  # chains are short; the bound guards against a cycle
            if not frontier:
                break
            following: list[str] = []
            for where in among(conn, customers.c.merged_into, frontier):
                query = sa.select(customers.c.id).where(where)
                following.extend(cid for cid in conn.scalars(query) if cid not in found)
            found.update(following)
            frontier = following
        found.discard(customer_id)
        return tuple(sorted(found))

    def decisions(self, customer_ids: Collection[str], campaign_id: str | None) -> list[Decision]:
        """The ``decisions`` rows of the customers, in time order (then as recorded)."""
        rows = self._of(decisions, customer_ids, campaign_id)
        rows.sort(key=lambda r: (r.at, r.id))
        return [
            Decision(
                at=row.at,
                campaign_id=row.campaign_id,
                journey_id=row.journey_id,
                customer_id=row.customer_id,
                action=row.action,
                step=row.step,
                channel=row.channel,
                status=row.status,
                reason=row.reason,
                fields=dict(row.fields or {}),
                outcome=None,
            )
            for row in rows
        ]

    def outcomes(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """The outbox rows of the given keys, by key."""
        found: dict[str, Outcome] = {}
        for where in among(self.conn, outbox.c.key, keys):
            for row in self.conn.execute(sa.select(outbox).where(where)):
                found[row.key] = Outcome(
                    key=row.key,
                    status=row.status,
                    detail=row.detail,
                    attempts=row.attempts,
                    updated_at=row.updated_at,
                    next_attempt_at=row.next_attempt_at,
                    provider_id=row.provider_id,
                )
        return found

    def journeys(
        self, customer_ids: Collection[str], campaign_id: str | None
    ) -> list[JourneyState]:
        """The customers' journeys with their next timers, in entry order."""
        conn = self.conn
        rows = self._of(journeys, customer_ids, campaign_id)
        next_due: dict[str, datetime] = {}
        for where in among(conn, journey_timers.c.journey_id, [row.id for row in rows]):
            query = sa.select(journey_timers.c.journey_id, journey_timers.c.due_at).where(where)
            for journey_id, due in conn.execute(query):
                if journey_id not in next_due or due < next_due[journey_id]:
                    next_due[journey_id] = due
        return [
            JourneyState(
                id=row.id,
                campaign_id=row.campaign_id,
                version=row.campaign_version,
                status=row.status,
                entered_at=row.entered_at,
                updated_at=row.updated_at,
                next_due_at=next_due.get(row.id),
            )
            for row in sorted(rows, key=lambda r: (r.entered_at, r.id))
        ]

    def _of(
        self, table: sa.Table, customer_ids: Collection[str], campaign_id: str | None
    ) -> list[Any]:
        """The rows of ``table`` of the customers (and of one campaign, if given)."""
        rows: list[Any] = []
        for where in among(self.conn, table.c.customer_id, customer_ids):
            query = sa.select(table).where(where)
            if campaign_id is not None:
                query = query.where(table.c.campaign_id == campaign_id)
            rows.extend(self.conn.execute(query))
        return rows

    def events(self, customer_ids: Collection[str]) -> tuple[dict[str, int], int]:
        """The customers' logged events by name (else by type), and those still in the inbox."""
        conn = self.conn
        by_name: dict[str, int] = {}
        pending = 0
        for where in among(conn, events.c.customer_id, customer_ids):
            query = (
                sa.select(events.c.type, events.c.name, sa.func.count())
                .where(where)
                .group_by(events.c.type, events.c.name)
            )
            for kind, name, count in conn.execute(query):
                label = name or kind  # identify, alias and page events have no name
                by_name[label] = by_name.get(label, 0) + count
            query = (
                sa.select(sa.func.count())
                .select_from(
                    events.join(journey_inbox, journey_inbox.c.message_id == events.c.message_id)
                )
                .where(where)
            )
            pending += conn.scalar(query) or 0
        return by_name, pending
