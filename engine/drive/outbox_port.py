"""The outbox port: what the dispatcher asks of the place the decided channel actions wait.

The journey store (:mod:`engine.drive.port`) keeps each channel action the engine decided as an
outbox row, unique by its key (journey and step). The dispatcher
(:class:`engine.drive.dispatcher.OutboxDispatcher`) carries the rows to the providers through this
port: it reads a page of due rows, claims each right before its provider is called, and settles
it with the provider's outcome; :meth:`OutboxStore.retake` gives back what a dead dispatch left
claimed. The dispatcher decides; the store keeps. Two stores implement it:
:class:`engine.drive.memory_outbox.MemoryOutbox` and
:class:`engine.durable.sql_outbox.SqlOutboxStore` (SQLite, PostgreSQL); the contract suite
``tests/drive/test_outbox_contract.py`` runs the dispatcher over all three.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.drive.outbox_status import OutboxStatus
from engine.journeys.plan import PlanAction
from engine.rates import Rate
from engine.state.profile import CustomerState


def outbox_key(journey_id: str, step: str, action: str) -> str:
    """The idempotency key of a channel action: journey and step (an audience removal is the
    undoing of its step's add, so it gets a key of its own)."""
    key = f"{journey_id}:{step}"
    return key + ":remove" if action == PlanAction.AUDIENCE_REMOVE.value else key


@dataclass(frozen=True, slots=True)
class NewOutboxRow:
    """A channel action decided, to wait in the outbox (``pending``, due at ``due_at``)."""

    key: str  # journey and step: the outbox keeps one row per key
    journey_id: str
    step: str
    campaign_id: str  # "" for a consent change, which belongs to no campaign
    customer_id: str
    channel: str
    action: str
    decided_at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    due_at: datetime | None = None  # None: at ``decided_at``


class DueRow(Protocol):
    """An outbox row as a page of due rows reads it (not claimed yet)."""

    @property
    def id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def journey_id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, Any]: ...
    @property
    def decided_at(self) -> datetime: ...
    @property
    def attempts(self) -> int:
        """The calls made so far (a claim is the next)."""
        ...

    @property
    def failed_before(self) -> str | None:
        """For a send, the step of an earlier send of its journey that failed for good."""
        ...


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbox row as it stands, for those who read outcomes (``status``, tests)."""

    id: int
    key: str
    customer_id: str
    channel: str
    action: str
    status: OutboxStatus
    detail: str | None
    attempts: int
    next_attempt_at: datetime
    provider_id: str | None
    claimed_by: str | None

    @classmethod
    def of(cls, row: Any) -> OutboxRecord:
        """The record of a row with these attributes (a store's own row)."""
        return cls(
            id=row.id,
            key=row.key,
            customer_id=row.customer_id,
            channel=row.channel,
            action=row.action,
            status=OutboxStatus(row.status),
            detail=row.detail,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            provider_id=row.provider_id,
            claimed_by=row.claimed_by,
        )


class OutboxClaims(Protocol):
    """One dispatch's claims, under one holder that is alive while the dispatch runs.

    Outcomes are kept and written with the next claim (or :meth:`flush`), so a dispatch that
    dies leaves at most the rows of one call ``sending``. Each write names the row as it must
    still be (claimed by this holder at this attempt; or still ``pending`` at the attempt read),
    so it never undoes what another dispatch did since."""

    def claim(self, rows: Sequence[DueRow], now: datetime, *, synced: bool) -> set[int]:
        """Claim ``rows`` (read ``pending``): ``sending``, one attempt more; the ids claimed
        (another dispatch may have taken some meanwhile). ``synced``: the claim must reach the
        disk before the provider is called (its provider does not deduplicate)."""
        ...

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
        """Keep the outcome of a claimed row's call (``pending`` again at ``retry_at``)."""
        ...

    def decide(
        self, row: DueRow, now: datetime, status: OutboxStatus, detail: str, *, synced: bool
    ) -> None:
        """Keep the outcome of a row settled without a call (skipped, failed)."""
        ...

    def postpone(self, row: DueRow, now: datetime, until: datetime, detail: str) -> None:
        """Keep ``row`` pending until ``until`` without a call (its throttle had no turn)."""
        ...

    def flush(self) -> None:
        """Write the outcomes kept so far."""
        ...


class OutboxStore(Protocol):
    """Keeps the outbox rows of some customers (a partition, or all) and their claims."""

    def add(self, rows: Sequence[NewOutboxRow], now: datetime) -> None:
        """Keep ``rows`` as ``pending``, but for a key already kept (the first stays)."""
        ...

    def due(self, now: datetime, campaigns: Collection[str], limit: int) -> list[DueRow]:
        """The first ``limit`` rows due by ``now`` (by due time, then id), of the running
        ``campaigns`` (and consent changes, of none), read, not claimed. A send waits while an
        earlier send of its journey is ``pending`` or ``sending``."""
        ...

    def claiming(self) -> AbstractContextManager[OutboxClaims]:
        """The claims of one dispatch, under a holder alive until the block ends."""
        ...

    def retake(
        self, now: datetime, lease: timedelta, resend: Callable[[str], bool]
    ) -> Counter[str]:
        """Give back the rows left ``sending`` by a dead holder, or past ``lease`` when it
        cannot be told whether theirs is alive: ``pending`` again when ``resend(channel)``,
        else ``unknown``. Counts by ``channel:reclaimed`` and ``channel:unknown``."""
        ...

    def states(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerState]:
        """Each customer found as a delivery at ``now`` checks them (a merged one by its
        survivor): the profile with every event logged, unless it holds events stamped after
        ``now``; then as the journey engine has taken it."""
        ...

    def turn(self, name: str, rate: Rate, max_wait: float) -> float:
        """Take a turn of the throttle ``name``: the seconds to wait before the call; a wait
        over ``max_wait`` is not taken (the caller puts the call off)."""
        ...

    def find(self, key: str) -> OutboxRecord | None:
        """The row kept under ``key``, as it stands."""
        ...
