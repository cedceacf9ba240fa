"""Unified customers in memory: identity resolution and state for a simulation.

The same rules as the database-backed ingest (identity keys, merges with the earliest-seen
profile surviving, state folded by the same reducers in event-time order), without a database:
``simulate`` starts from an empty state and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.events import Event
from engine.identity import customer_id_for, identity_keys
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer


@dataclass(frozen=True, slots=True)
class Resolved:
    """The customer an event belongs to, and the profiles it merged into that customer."""

    customer_id: str
    merged: tuple[str, ...]


class InMemoryCustomers:
    """Profiles, identity keys and event histories, kept in dictionaries."""

    def __init__(self, reducer: StateReducer, phone_region: str = "US") -> None:
        self.reducer = reducer
        self.phone_region = phone_region
        self._owners: dict[str, str] = {}
        self._merged_into: dict[str, str] = {}
        self._history: dict[str, list[Event]] = {}
        self._states: dict[str, CustomerState] = {}
        self._first_seen: dict[str, datetime] = {}

    def live(self, customer_id: str) -> str:
        """The live customer a (possibly merged) id stands for."""
        while customer_id in self._merged_into:
            customer_id = self._merged_into[customer_id]
        return customer_id

    def ids(self) -> list[str]:
        """Every live customer, sorted."""
        return sorted(self._states)

    def state(self, customer_id: str) -> CustomerState:
        """The state of a live customer."""
        return self._states[customer_id]

    def apply(self, event: Event) -> Resolved:
        """Resolve ``event`` to its customer (merging profiles it links) and fold it in."""
        keys = identity_keys(event, self.phone_region)
        found = sorted({self.live(self._owners[k]) for k in keys if k in self._owners})
        at = event.timestamp
        if not found:
            customer_id = customer_id_for(keys[0])
            self._first_seen[customer_id] = at
            self._history[customer_id] = []
            merged: list[str] = []
        else:
            customer_id = min(found, key=lambda c: (self._first_seen[c], c))
            merged = [c for c in found if c != customer_id]
        for merged_id in merged:
            self._merged_into[merged_id] = customer_id
            self._history[customer_id].extend(self._history.pop(merged_id))
            self._first_seen[customer_id] = min(
                self._first_seen[customer_id], self._first_seen.pop(merged_id)
            )
            del self._states[merged_id]
        for key in keys:
            self._owners.setdefault(key, customer_id)
        self._first_seen[customer_id] = min(self._first_seen[customer_id], at)
        history = self._history[customer_id]
        history.append(event)
        state = self._states.get(customer_id)
        extended = None if merged or state is None else self.reducer.extend(state, [event])
        self._states[customer_id] = extended if extended is not None else self.reducer.fold(history)
        return Resolved(customer_id, tuple(merged))

    def append(self, customer_id: str, event: Event) -> None:
        """Fold an event the engine itself made (a campaign's ``update`` step) into a customer."""
        self._history[customer_id].append(event)
        state = self._states[customer_id]
        extended = self.reducer.extend(state, [event])
        self._states[customer_id] = (
            extended if extended is not None else self.reducer.fold(self._history[customer_id])
        )
