"""The customers port of the journey engine: who an event belongs to, and their state.

``simulate`` implements it in memory (:mod:`engine.journeys.memory_customers`); the durable
runtime over the profiles that ingest already wrote (:mod:`engine.durable.customers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.events import Event
from engine.state.profile import CustomerState
from engine.values import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Resolved:
    """The customer an event belongs to, and the profiles it merged into that customer."""

    customer_id: str
    merged: tuple[str, ...]


class Customers(Protocol):
    """What the journey engine needs to know of customers."""

    def ids(self) -> list[str]:
        """Every live customer the engine may enter into a campaign, sorted."""
        ...

    def has(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is a live customer (not merged away)."""
        ...

    def state(self, customer_id: str) -> CustomerState:
        """The unified state of a live customer."""
        ...

    def state_reading(self, customer_id: str, fields: frozenset[str]) -> CustomerState:
        """A state of a live customer whose ``fields`` (of :class:`CustomerState`) hold what
        they hold now; the others may lag behind (the segment check reads a few fields at
        every event, and need not fold the rest)."""
        ...

    def apply(self, event: Event) -> Resolved:
        """The customer of ``event``, with the event folded into their state."""
        ...

    def append(self, customer_id: str, event: Event) -> None:
        """Fold an event the engine made itself (an ``update`` step) into a customer."""
        ...
