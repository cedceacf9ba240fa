"""Unified customers in memory: identity resolution and state for a simulation.

The same rules as the database-backed ingest (identity keys, merges with the earliest-seen
profile surviving, state folded by the same reducers in event-time order), without a database:
``simulate`` starts from an empty state and writes nothing.
"""

from __future__ import annotations

from engine.events import Event
from engine.identity import identity_keys
from engine.ingest.resolver import IdentityResolver
from engine.journeys.customers import Resolved
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer


class InMemoryCustomers:
    """Profiles, identity keys and event histories, kept in dictionaries."""

    def __init__(self, reducer: StateReducer, phone_region: str = "US") -> None:
        self.reducer = reducer
        self.phone_region = phone_region
        self._resolver = IdentityResolver({}, {})  # one for the whole run: the same merge rules
        self._history: dict[str, list[Event]] = {}
        self._states: dict[str, CustomerState] = {}

    def ids(self) -> list[str]:
        """Every live customer, sorted."""
        return sorted(self._states)

    def has(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is a live customer."""
        return customer_id in self._states

    def state(self, customer_id: str) -> CustomerState:
        """The state of a live customer."""
        return self._states[customer_id]

    def apply(self, event: Event) -> Resolved:
        """Resolve ``event`` to its customer (merging profiles it links) and fold it in."""
        merges = self._resolver.result.merges
        already = len(merges)
        customer_id = self._resolver.resolve(
            identity_keys(event, self.phone_region), event.timestamp, event.message_id
        )
        if len(merges) == already:  # no merge: most events
            self._fold_in(customer_id, event)
            return Resolved(customer_id, ())
        merged = [record.merged_id for record in merges[already:]]
        history = self._history.setdefault(customer_id, [])
        for merged_id in merged:
            history.extend(self._history.pop(merged_id))
            del self._states[merged_id]
        history.append(event)
        self._states[customer_id] = self.reducer.fold(history)
        return Resolved(customer_id, tuple(merged))

    def append(self, customer_id: str, event: Event) -> None:
        """Fold an event the engine itself made (a campaign's ``update`` step) into a customer."""
        self._fold_in(customer_id, event)

    def _fold_in(self, customer_id: str, event: Event) -> None:
        """Add ``event`` to the history and the state: on top when it is the latest (as
        ``StateReducer.extend`` would, without its sort of one event), else by folding the
        whole history again."""
        history = self._history.get(customer_id)
        if history is None:
            history = self._history[customer_id] = []
        history.append(event)
        state = self._states.get(customer_id)
        if state is None:
            self._states[customer_id] = self.reducer.fold(history)
        elif state.watermark is None or event.order_key > state.watermark:
            self._states[customer_id] = self.reducer.apply(state, event)
        else:
            self._states[customer_id] = self.reducer.fold(history)
