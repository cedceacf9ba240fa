"""The journey engine's customers port over profiles that ingest already wrote."""

from __future__ import annotations

from collections.abc import Mapping

from engine.events import Event
from engine.journeys.customers import Resolved
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer


class StoredCustomers:
    """A few customers' stored states, with who each event belongs to and what it merged.

    The engine sees a profile as it is stored when it runs (in a live shop, moments after the
    event); ``simulate`` sees it as of each event. Events a campaign makes (``update`` steps) are
    folded in here and kept in :attr:`appended` for the runtime to log.
    """

    def __init__(
        self,
        states: Mapping[str, CustomerState],
        owner_of_event: Mapping[str, str],
        merged_by_event: Mapping[str, tuple[str, ...]],
        reducer: StateReducer,
    ) -> None:
        self._states = dict(states)
        self._owner = owner_of_event
        self._merged = merged_by_event
        self._reducer = reducer
        self._survivor: dict[str, str] = {}
        self.appended: list[tuple[str, Event]] = []

    def ids(self) -> list[str]:
        """The loaded live customers, sorted."""
        return sorted(cid for cid in self._states if cid not in self._survivor)

    def has(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is loaded and live."""
        return customer_id in self._states and customer_id not in self._survivor

    def state(self, customer_id: str) -> CustomerState:
        """The state of ``customer_id`` (a merged one's is its survivor's)."""
        return self._states[self._survivor.get(customer_id, customer_id)]

    def apply(self, event: Event) -> Resolved:
        """The stored owner of ``event`` and the profiles it merged into them."""
        customer_id = self._owner[event.message_id]
        merged = self._merged.get(event.message_id, ())
        for merged_id in merged:
            self._survivor[merged_id] = customer_id
        return Resolved(customer_id, merged)

    def survivors(self) -> dict[str, str]:
        """``merged id -> survivor id`` for the merges the engine was told of."""
        return dict(self._survivor)

    def append(self, customer_id: str, event: Event) -> None:
        """Fold a campaign's own event into the customer and keep it to be logged."""
        self.appended.append((customer_id, event))
        state = self.state(customer_id)
        extended = self._reducer.extend(state, [event])
        if extended is not None:
            self._states[customer_id] = extended
