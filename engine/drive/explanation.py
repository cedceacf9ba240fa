"""The read model of ``explain``: why a customer did or did not get a message, from any store.

:func:`explain_customer` gives a customer's decisions in time order, those of every profile
merged into them included, each channel action joined with the outcome of its outbox row (by its
``journey:step`` key), their journeys and the events seen. It reads through
:class:`ExplainReads`, which a store implements: :class:`engine.durable.sql_reads.SqlExplainReads`
over the tables (``followup explain``, the dashboard), and
:class:`engine.drive.memory_reads.MemoryExplainReads` over a simulation's engine
(``followup simulate --explain``). The results are small frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from engine.drive.outbox_port import outbox_key

CHANNEL_ACTIONS = frozenset({"send", "audience_add", "audience_remove"})
MAX_MERGE_DEPTH = 64  # merge chains are short; the bound guards against a cycle


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a channel action: its outbox row."""

    key: str
    status: str  # pending | sending | delivered | skipped | failed | unknown
    detail: str | None
    attempts: int
    updated_at: datetime
    next_attempt_at: datetime
    provider_id: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision about the customer, with its reason, and for a channel action that was
    decided ``sent`` the outcome of its delivery (``None`` when no outbox row holds it)."""

    at: datetime
    campaign_id: str
    journey_id: str | None
    customer_id: str  # the profile it was decided for (an id merged since keeps its own)
    action: str  # enter | exit | convert | send | audience_add | audience_remove | not_entered
    step: str | None
    channel: str | None
    status: str | None  # sent | skipped, on channel actions
    reason: str | None
    fields: Mapping[str, Any]
    outcome: Outcome | None

    @property
    def outbox_key(self) -> str | None:
        """The key of the outbox row of a channel action decided ``sent``."""
        if (
            self.action not in CHANNEL_ACTIONS
            or self.status != "sent"
            or self.journey_id is None
            or self.step is None
        ):
            return None
        return outbox_key(self.journey_id, self.step, self.action)


@dataclass(frozen=True, slots=True)
class JourneyState:
    """One of the customer's journeys, with its next timer."""

    id: str
    campaign_id: str
    version: str
    status: str
    entered_at: datetime
    updated_at: datetime
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a customer did or did not get a campaign's messages."""

    customer_id: str
    merged_ids: tuple[str, ...]  # every profile merged into this one (directly or not)
    campaign_id: str | None
    decisions: tuple[Decision, ...]  # in time order
    journeys: tuple[JourneyState, ...]  # entry order
    events: Mapping[str, int]  # the customer's logged events, by name (else by type)
    pending_events: int  # of which the journey engine has not taken yet

    @property
    def customer_ids(self) -> tuple[str, ...]:
        """The customer and every profile merged into them."""
        return (self.customer_id, *self.merged_ids)


class ExplainReads(Protocol):
    """What a store tells ``explain`` about some customers."""

    def merged_into(self, customer_id: str) -> tuple[str, ...]:
        """Every profile merged into ``customer_id``, directly or not, sorted."""
        ...

    def decisions(self, customer_ids: Collection[str], campaign_id: str | None) -> list[Decision]:
        """The decisions about the customers (of one campaign, if given), in time order, their
        outcomes not joined yet."""
        ...

    def outcomes(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """The outbox rows of the given keys, by key."""
        ...

    def journeys(
        self, customer_ids: Collection[str], campaign_id: str | None
    ) -> list[JourneyState]:
        """The customers' journeys (of one campaign, if given), in entry order."""
        ...

    def events(self, customer_ids: Collection[str]) -> tuple[dict[str, int], int]:
        """The customers' events by name (else by type), and how many the engine has not taken."""
        ...


def explain_customer(
    reads: ExplainReads, customer_id: str, campaign_id: str | None = None
) -> Explanation:
    """The decisions about a live customer (and every profile merged into them), optionally
    for one campaign, each channel action joined with its delivery outcome."""
    merged = reads.merged_into(customer_id)
    ids = (customer_id, *merged)
    partial = reads.decisions(ids, campaign_id)
    found = reads.outcomes([key for d in partial if (key := d.outbox_key) is not None])
    joined = tuple(
        d if d.outbox_key is None else replace(d, outcome=found.get(d.outbox_key)) for d in partial
    )
    by_name, pending = reads.events(ids)
    return Explanation(
        customer_id=customer_id,
        merged_ids=merged,
        campaign_id=campaign_id,
        decisions=joined,
        journeys=tuple(reads.journeys(ids, campaign_id)),
        events=dict(sorted(by_name.items())),
        pending_events=pending,
    )
