"""A customer's logged events with the profile each was received as, and the merges between.

Ingest files a merged profile's events under its survivor at once; the journey engine keeps
the profiles apart until it takes the merging event. When it takes one, it folds the survivor's
view from the events of the profiles it has merged into them by then, as ``simulate`` does:
not a profile merged by an event still waiting (``events.received_as``, migration 0021).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sqlalchemy as sa

from engine.events import Event
from engine.storage.customer_store import among, event_from_row
from engine.storage.tables import events, journey_inbox, merges

MAX_CHAIN = 64  # merges chain profiles a few deep; the bound guards against a cycle


@dataclass(frozen=True)
class Lineage:
    """The logged events of one customer, each with the profile it was received as, and how
    those profiles were merged: ``merged_into`` gives a merged profile's survivor and the
    merging event, ``waiting`` the merging events the engine has yet to take."""

    events: list[tuple[Event, str]]
    merged_into: dict[str, tuple[str, str]]
    waiting: frozenset[str]

    @cached_property
    def received_as(self) -> frozenset[str]:
        """Every profile the events were received as."""
        return frozenset(profile for _event, profile in self.events)

    @cached_property
    def message_ids(self) -> frozenset[str]:
        """The messageId of every event."""
        return frozenset(event.message_id for event, _profile in self.events)

    def profile(self, received_as: str, merged_now: dict[str, str]) -> str:
        """The profile the engine sees ``received_as`` as: followed through the merges it has
        taken (those not waiting, and ``merged_now``: merged id -> survivor, taken in the
        batch)."""
        for _ in range(MAX_CHAIN):
            if received_as in merged_now:
                received_as = merged_now[received_as]
            elif (link := self.merged_into.get(received_as)) and link[1] not in self.waiting:
                received_as = link[0]
            else:
                break
        return received_as


class BatchLineages:
    """The lineage of the customer each event is now logged under, read once per customer in a
    batch: the log and the inbox change only when the batch is saved."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._by_owner: dict[str, Lineage] = {}

    def __call__(self, message_id: str) -> Lineage:
        conn = self._conn
        query = sa.select(events.c.customer_id).where(events.c.message_id == message_id)
        owner: str = conn.execute(query).scalar_one()  # an event the batch took: logged
        if owner not in self._by_owner:
            self._by_owner[owner] = lineage_of(conn, owner)
        return self._by_owner[owner]


def lineage_of(conn: sa.Connection, owner: str) -> Lineage:
    """The lineage of the customer ``owner``."""
    logged = [
        (event_from_row(row), row.received_as or row.customer_id)
        for row in conn.execute(sa.select(events).where(events.c.customer_id == owner))
    ]
    merged_into: dict[str, tuple[str, str]] = {}
    frontier = {profile for _event, profile in logged} - {owner}
    for _ in range(MAX_CHAIN):
        if not frontier:
            break
        found: set[str] = set()
        query = sa.select(merges.c.merged_id, merges.c.survivor_id, merges.c.message_id)
        for where in among(conn, merges.c.merged_id, sorted(frontier)):
            for merged_id, survivor_id, merging in conn.execute(query.where(where)):
                merged_into[merged_id] = (survivor_id, merging)
                found.add(survivor_id)
        frontier = found - merged_into.keys() - {owner}
    waiting: set[str] = set()
    merging_events = sorted({merging for _survivor, merging in merged_into.values()})
    for where in among(conn, journey_inbox.c.message_id, merging_events):
        waiting.update(conn.scalars(sa.select(journey_inbox.c.message_id).where(where)))
    return Lineage(logged, merged_into, frozenset(waiting))
