"""The outbox port in memory: rows, claims, holders and throttles of one process.

What :class:`~engine.durable.sql_outbox.SqlOutboxStore` keeps in tables, kept in dictionaries,
with the same rules (the contract suite ``tests/drive/test_outbox_contract.py`` holds both to
them): a row per key; a page of due rows by due time, then id, where a send waits for an earlier
unsettled send of its journey; claims whose outcomes are written with the next claim, each
naming the row as it must still be. A holder is alive while its dispatch's :meth:`claiming`
block runs, so a dispatch that died (raised out of it) leaves its row ``sending`` for
:meth:`retake`. For an embedded engine with no database, and for tests of a dispatcher.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from engine.drive.outbox_port import DueRow, NewOutboxRow, OutboxRecord
from engine.drive.outbox_status import UNKNOWN_DETAIL, UNSETTLED, OutboxStatus
from engine.drive.partitions import WHOLE, Partition
from engine.journeys.memory_customers import InMemoryCustomers
from engine.rates import Rate, take_turn
from engine.state.profile import CustomerState


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """An outbox row as it stands (a page of due rows hands out copies)."""

    id: int
    key: str
    journey_id: str
    step: str
    campaign_id: str
    customer_id: str
    channel: str
    action: str
    fields: dict[str, Any]
    decided_at: datetime
    status: OutboxStatus
    next_attempt_at: datetime
    updated_at: datetime
    attempts: int = 0
    detail: str | None = None
    provider_id: str | None = None
    claimed_by: str | None = None
    failed_before: str | None = None  # set on the copies a page hands out


class MemoryOutbox:
    """The outbox rows of ``customers`` (``partition``'s of them), in this process."""

    def __init__(
        self,
        customers: InMemoryCustomers,
        partition: Partition = WHOLE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.customers = customers
        self.partition = partition
        self.wall = wall  # throttles keep to real time, as the SQL store's do
        self._rows: dict[int, MemoryRow] = {}
        self._by_key: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._holders = itertools.count(1)
        self._alive: set[str] = set()
        self._tats: dict[str, float] = {}
        self._mutex = threading.Lock()

    def over(self, partition: Partition) -> MemoryOutbox:
        """A store of the same rows, claims, holders and throttles, handing out
        ``partition``'s rows."""
        view = copy.copy(self)
        view.partition = partition
        return view

    def add(self, rows: Sequence[NewOutboxRow], now: datetime) -> None:
        """Keep ``rows`` as ``pending``, but for a key already kept (the first stays)."""
        with self._mutex:
            for new in rows:
                if new.key in self._by_key:
                    continue
                row_id = next(self._ids)
                self._by_key[new.key] = row_id
                self._rows[row_id] = MemoryRow(
                    id=row_id,
                    key=new.key,
                    journey_id=new.journey_id,
                    step=new.step,
                    campaign_id=new.campaign_id,
                    customer_id=new.customer_id,
                    channel=new.channel,
                    action=new.action,
                    fields=dict(new.fields),
                    decided_at=new.decided_at,
                    status=OutboxStatus.PENDING,
                    next_attempt_at=new.due_at or new.decided_at,
                    updated_at=now,
                )

    def due(self, now: datetime, campaigns: Collection[str], limit: int) -> list[DueRow]:
        """The first ``limit`` rows due by ``now`` of the running ``campaigns`` (and of none),
        by due time, then id; a send waits for an earlier unsettled send of its journey."""
        with self._mutex:
            sends: dict[str, list[MemoryRow]] = {}  # journey -> its sends, in id order
            for row in self._rows.values():
                if row.action == "send":
                    sends.setdefault(row.journey_id, []).append(row)
            page: list[MemoryRow] = []
            for row in self._rows.values():
                if (
                    row.status is not OutboxStatus.PENDING
                    or row.next_attempt_at > now
                    or (row.campaign_id and row.campaign_id not in campaigns)
                    or not self.partition.holds(row.customer_id)
                ):
                    continue
                if row.action != "send":
                    page.append(row)
                    continue
                before = [r for r in sends[row.journey_id] if r.id < row.id]
                if any(r.status in UNSETTLED for r in before):
                    continue
                failed = [r.step for r in before if r.status is OutboxStatus.FAILED]
                page.append(replace(row, failed_before=failed[0] if failed else None))
            page.sort(key=lambda r: (r.next_attempt_at, r.id))
            return list(page[:limit])

    @contextmanager
    def claiming(self) -> Iterator[MemoryClaims]:
        """The claims of one dispatch, under a holder alive until the block ends."""
        holder = f"memory:{next(self._holders)}"
        self._alive.add(holder)
        try:
            yield MemoryClaims(self, holder)
        finally:
            self._alive.discard(holder)

    def retake(
        self, now: datetime, lease: timedelta, resend: Callable[[str], bool]
    ) -> Counter[str]:
        """Rows left ``sending`` by a holder that is gone (in memory, every holder is known:
        the lease is not needed): ``pending`` again when ``resend(channel)``, else
        ``unknown``."""
        found: Counter[str] = Counter()
        with self._mutex:
            for row in list(self._rows.values()):
                if row.status is not OutboxStatus.SENDING or row.claimed_by in self._alive:
                    continue
                if resend(row.channel):
                    self._put(row, status=OutboxStatus.PENDING, claimed_by=None, updated_at=now)
                    found[f"{row.channel}:reclaimed"] += 1
                else:
                    self._put(
                        row, status=OutboxStatus.UNKNOWN, detail=UNKNOWN_DETAIL, updated_at=now
                    )
                    found[f"{row.channel}:unknown"] += 1
        return found

    def states(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerState]:
        """The current state of each customer found (of their survivor, for a merged one): the
        engine's, which has taken no event after ``now``."""
        customers = self.customers
        found = {}
        for customer_id in sorted(set(customer_ids)):
            live = customer_id if customers.has(customer_id) else customers.find([customer_id])
            if live is not None:
                found[customer_id] = customers.state(live)
        return found

    def turn(self, name: str, rate: Rate, max_wait: float) -> float:
        """A turn of the throttle ``name``, shared by this process's dispatches."""
        with self._mutex:
            wait, self._tats[name] = take_turn(self._tats.get(name), self.wall(), rate, max_wait)
            return wait

    def find(self, key: str) -> OutboxRecord | None:
        """The row kept under ``key``, as it stands."""
        row_id = self._by_key.get(key)
        if row_id is None:
            return None
        row = self._rows[row_id]
        return OutboxRecord.of(row)

    def write(self, row_id: int, expect: Callable[[MemoryRow], bool], **values: Any) -> bool:
        """Set ``values`` on row ``row_id`` if it is as ``expect`` says; whether it was."""
        with self._mutex:
            row = self._rows.get(row_id)
            if row is None or not expect(row):
                return False
            self._put(row, **values)
            return True

    def _put(self, row: MemoryRow, **values: Any) -> None:
        self._rows[row.id] = replace(row, **values)


# An outcome kept for the next write: the row, what it must still be, the values to set
_Kept = tuple[int, Callable[[MemoryRow], bool], dict[str, Any]]


def _pending_at(attempts: int) -> Callable[[MemoryRow], bool]:
    return lambda row: row.status is OutboxStatus.PENDING and row.attempts == attempts


class MemoryClaims:
    """One dispatch's claims on a :class:`MemoryOutbox`, under ``holder``."""

    def __init__(self, outbox: MemoryOutbox, holder: str) -> None:
        self.outbox = outbox
        self.holder = holder
        self._kept: list[_Kept] = []

    def claim(self, rows: Sequence[DueRow], now: datetime, *, synced: bool) -> set[int]:
        """Claim ``rows`` still ``pending`` at the attempt read, after the outcomes kept."""
        self.flush()
        return {
            row.id
            for row in rows
            if self.outbox.write(
                row.id,
                _pending_at(row.attempts),
                status=OutboxStatus.SENDING,
                attempts=row.attempts + 1,
                updated_at=now,
                claimed_by=self.holder,
            )
        }

    def settle(
        self,
        row: DueRow,
        now: datetime,
        status: OutboxStatus,
        detail: str,
        *,
        synced: bool,
        provider_id: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Keep the outcome of a claimed row's call, for the next write."""
        holder, attempts = self.holder, row.attempts + 1
        values: dict[str, Any] = {
            "status": status,
            "detail": detail or None,
            "updated_at": now,
            "claimed_by": None,
        }
        if provider_id is not None:
            values["provider_id"] = provider_id
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        self._kept.append(
            (row.id, lambda r: r.claimed_by == holder and r.attempts == attempts, values)
        )

    def decide(
        self, row: DueRow, now: datetime, status: OutboxStatus, detail: str, *, synced: bool
    ) -> None:
        """Keep the outcome of a row settled without a call, for the next write."""
        values = {"status": status, "detail": detail or None, "updated_at": now}
        self._kept.append((row.id, _pending_at(row.attempts), values))

    def postpone(self, row: DueRow, now: datetime, until: datetime, detail: str) -> None:
        """Keep ``row`` pending until ``until`` without a call, for the next write."""
        values = {"detail": detail, "updated_at": now, "next_attempt_at": until}
        self._kept.append((row.id, _pending_at(row.attempts), values))

    def flush(self) -> None:
        """Write the outcomes kept so far."""
        kept, self._kept = self._kept, []
        for row_id, expect, values in kept:
            self.outbox.write(row_id, expect, **values)
