"""Ingest: accepted events into the log, resolved to customers, folded into their state.

Events come in batches; each batch is one transaction (events, identity keys, merges and the new
profile states), so an event counts as accepted only once it is durable, and a failure half-way
leaves nothing half-written. ``messageId`` makes a resend harmless: a duplicate is counted and
skipped, in the batch and against the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.clock import Clock, utc_now
from engine.events import Event, Rejection, RejectReason
from engine.identity import identity_keys
from engine.ingest.resolver import IdentityResolver
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer
from engine.storage.customer_store import CustomerStore, StateCache, VersionedState, event_row
from engine.values import quick_init

MAX_ATTEMPTS = 5


@quick_init
@dataclass(frozen=True, slots=True)
class Accepted:
    """Events parsed from one input record (a line, a row or an API call)."""

    events: list[Event]
    source: str


@dataclass
class IngestSummary:
    """What one ingest did: counts by outcome, and the rejections in input order."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[RejectReason] = field(default_factory=Counter)
    customers_created: int = 0
    merges: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    logged: set[str] = field(default_factory=set)  # messageIds found in the log already

    @property
    def rejected_total(self) -> int:
        """Every rejected record, whatever the reason."""
        return sum(self.rejected.values())

    def add(self, other: IngestSummary) -> None:
        """Fold ``other`` into this summary."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)
        self.customers_created += other.customers_created
        self.merges += other.merges
        self.rejections.extend(other.rejections)
        self.logged |= other.logged


class Ingestor:
    """Writes events into the database with identity resolution and profile state."""

    def __init__(
        self,
        engine: sa.Engine,
        reducer: StateReducer,
        phone_region: str = "US",
        clock: Clock = utc_now,
        batch_size: int = 5000,
    ) -> None:
        self.engine = engine
        self.reducer = reducer
        self.phone_region = phone_region
        self.clock = clock
        self.batch_size = batch_size
        self.store = CustomerStore(engine.dialect.name)
        self.cache = StateCache()

    def ingest(
        self,
        records: Iterable[Accepted | Rejection],
        on_batch: Callable[[IngestSummary], None] | None = None,
    ) -> IngestSummary:
        """Ingest every accepted record, batch by batch; rejections are only counted here."""
        total = IngestSummary()
        for batch, rejections in self._batches(records):
            summary = self.write_batch(batch)
            for rejection in rejections:
                summary.rejected[rejection.reason] += 1
            summary.rejections.extend(rejections)
            total.add(summary)
            if on_batch is not None:
                on_batch(summary)
        return total

    def _batches(
        self, records: Iterable[Accepted | Rejection]
    ) -> Iterator[tuple[list[tuple[Event, str]], list[Rejection]]]:
        batch: list[tuple[Event, str]] = []
        rejections: list[Rejection] = []
        for record in records:
            if isinstance(record, Rejection):
                rejections.append(record)
                continue
            batch.extend((event, record.source) for event in record.events)
            if len(batch) >= self.batch_size:
                yield batch, rejections
                batch, rejections = [], []
        if batch or rejections:
            yield batch, rejections

    def write_batch(self, batch: list[tuple[Event, str]]) -> IngestSummary:
        """Write one batch in one transaction, retrying when a concurrent writer got in first."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    summary, written = self.write_in(conn, batch)
                self.cache.update(written)
                return summary
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def write_in(
        self,
        conn: sa.Connection,
        batch: list[tuple[Event, str]],
        known: Mapping[str, str] | None = None,
    ) -> tuple[IngestSummary, dict[str, VersionedState]]:
        """Write ``batch`` in the caller's transaction (the campaign engine logs the events its
        ``update`` steps make together with the journey that made them). ``known`` gives the
        customer of an event by messageId: such an event is theirs, without identity resolution
        (an ``update`` step's event carries no id of its own, and a trait it writes, even an
        email, links nothing); a customer ingest has merged away since is its survivor."""
        made_for = known or {}  # the profile each was made for: received as theirs
        known = made_for
        if made_for:  # a profile merged away since: the log is the live profile's
            moved = self.store.survivors(conn, made_for.values())
            known = {message_id: moved.get(cid, cid) for message_id, cid in made_for.items()}
        summary = IngestSummary()
        fresh: list[tuple[Event, str]] = []
        seen: set[str] = set()
        for event, source in batch:
            if event.message_id in seen:
                summary.duplicates += 1
            else:
                seen.add(event.message_id)
                fresh.append((event, source))
        logged = self.store.existing_message_ids(conn, [e.message_id for e, _ in fresh])
        summary.logged = logged
        if logged:
            summary.duplicates += sum(1 for e, _ in fresh if e.message_id in logged)
            fresh = [(e, s) for e, s in fresh if e.message_id not in logged]
        if not fresh:
            return summary, {}
        # each event's place in the log: the order received, the tie-break of equal times
        arrived = self.store.arrived(conn, [event for event, _ in fresh])
        fresh = [(event, source) for event, (_, source) in zip(arrived, fresh, strict=True)]

        keys_of_event = [
            [] if event.message_id in known else identity_keys(event, self.phone_region)
            for event, _ in fresh
        ]
        all_keys = sorted({key for keys in keys_of_event for key in keys})
        owners = self.store.owners(conn, all_keys)
        wanted = set(owners.values()) | {
            known[e.message_id] for e, _ in fresh if e.message_id in known
        }
        loaded = self.store.versioned_states(conn, sorted(wanted), self.cache)
        stored = {cid: versioned.state for cid, versioned in loaded.items()}
        first_seen = {cid: s.first_seen_at for cid, s in stored.items() if s.first_seen_at}
        resolver = IdentityResolver(owners, first_seen)
        customer_of_event = [
            known[event.message_id]
            if event.message_id in known
            else resolver.resolve(keys, event.timestamp, event.message_id)
            for (event, _), keys in zip(fresh, keys_of_event, strict=True)
        ]
        resolution = resolver.result

        new_events: dict[str, list[Event]] = {}
        now = self.clock()
        rows = []
        for (event, source), customer_id in zip(fresh, customer_of_event, strict=True):
            final_id = resolution.final(customer_id)
            new_events.setdefault(final_id, []).append(event)
            rows.append(event_row(event, final_id, source, now))

        # profiles already in the database that this batch merged away, by their survivor
        absorbed: dict[str, list[str]] = {}
        for record in resolution.merges:
            if record.merged_id in stored:
                survivor_id = resolution.final(record.survivor_id)
                absorbed.setdefault(survivor_id, []).append(record.merged_id)
        states: dict[str, CustomerState] = {}
        for customer_id, events in new_events.items():
            state = stored.get(customer_id)
            merged_ids = absorbed.get(customer_id, [])
            if state is not None and not merged_ids:
                extended = self.reducer.extend(state, events)
                if extended is not None:
                    states[customer_id] = extended
                    continue
            history = (
                self.store.history(conn, [customer_id, *merged_ids])
                if (state is not None or merged_ids)
                else []
            )
            states[customer_id] = self.reducer.fold([*history, *events])

        for survivor_id, merged_ids in absorbed.items():
            self.store.reassign(conn, merged_ids, survivor_id)
        # the engine's own events (``known``) it has seen: no inbox row, no view kept apart
        # whose each event was as received: a merge later in the batch (or in a later one)
        # moves it, but the engine takes it as theirs until it takes the merge
        received_as = {
            event.message_id: made_for.get(event.message_id, customer_id)
            for (event, _), customer_id in zip(fresh, customer_of_event, strict=True)
        }
        self.store.insert_events(conn, rows, taken=known.keys(), owners=received_as)
        self.store.insert_identities(
            conn,
            ((key, resolution.final(cid), at) for key, (cid, at) in resolution.new_keys.items()),
        )
        versions = {cid: versioned.version for cid, versioned in loaded.items()}
        ahead = {
            resolution.final(customer_id)
            for (event, _), customer_id in zip(fresh, customer_of_event, strict=True)
            if event.message_id not in known
        }
        written = self.store.save_states(conn, states, versions, now, ahead)
        merged_from_db = {m for merged_ids in absorbed.values() for m in merged_ids}
        self.store.record_merges(conn, resolution.merges, merged_from_db, now)

        summary.accepted = len(fresh)
        summary.customers_created = len(resolution.created)
        summary.merges = len(resolution.merges)
        return summary, written


def is_retryable(exc: sa.exc.DBAPIError) -> bool:
    """A unique-key race with a concurrent writer, a deadlock or a busy database."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    text = str(exc.orig).lower()
    return "deadlock" in text or "locked" in text or "could not serialize" in text
