"""The journey engine's customers port over profiles that ingest already wrote."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.durable.lineage import Lineage
from engine.events import CAMPAIGN_CHANNEL, Event, OrderKey
from engine.journeys.customers import Resolved
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer

# The lineage of the customer an event (by messageId) is logged under now
Lineages = Callable[[str], Lineage]


class StoredCustomers:
    """A few customers as the journey engine has seen them, with who each event belongs to and
    what it merged.

    Ingest folds an event into the stored profile as soon as it arrives; the engine may take it
    later (a pass runs every so often, a backlog takes several). So each customer is held here as
    the engine's *view*: the profile of the events the engine has taken (``customers.
    engine_state``, kept while ingest is ahead of the engine), and each event the engine takes is
    folded into it, in the order taken. Conditions, templates and policies then see the profile
    as of the moment decided, as ``simulate`` does, not the events ingest has logged since.
    Events a campaign makes (``update`` steps) are folded in too and kept in :attr:`appended`
    for the runtime to log.
    """

    def __init__(
        self,
        views: Mapping[str, CustomerState],
        owner_of_event: Mapping[str, str],
        merged_by_event: Mapping[str, tuple[str, ...]],
        reducer: StateReducer,
        lineage_of: Lineages,
    ) -> None:
        self._states = dict(views)
        self._owner = owner_of_event
        self._merged = merged_by_event
        self._reducer = reducer
        self._lineage_of = lineage_of
        self._survivor: dict[str, str] = {}
        self.changed: set[str] = set()  # customers whose view this batch changed
        self.appended: list[tuple[str, Event]] = []

    def ids(self) -> list[str]:
        """The loaded live and known customers (see :meth:`has`), sorted."""
        return [cid for cid in sorted(self._states) if self.has(cid)]

    def has(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is loaded, live and known: the engine has taken an event of
        theirs (ingest may have made the profile for an event the engine has yet to take: a
        tick before it does not know them, as in ``simulate``)."""
        state = self._states.get(customer_id)
        return (
            state is not None
            and state.first_seen_at is not None
            and customer_id not in self._survivor
        )

    def state(self, customer_id: str) -> CustomerState:
        """The view of ``customer_id`` (a merged one's is its survivor's)."""
        return self._states[self._live(customer_id)]

    def state_reading(self, customer_id: str, fields: frozenset[str]) -> CustomerState:
        """The state now: a loaded state is always whole."""
        return self.state(customer_id)

    def _live(self, customer_id: str) -> str:
        """The profile ``customer_id`` is now, after the merges the engine was told of."""
        while customer_id in self._survivor:
            customer_id = self._survivor[customer_id]
        return customer_id

    def apply(self, event: Event) -> Resolved:
        """Take ``event`` into its stored owner's view; the profiles it merged into them."""
        customer_id = self._live(self._owner[event.message_id])  # received as one merged since
        merged = self._merged.get(event.message_id, ())
        for merged_id in merged:
            self._survivor[merged_id] = customer_id
        if customer_id in self._states:
            view = None if merged else self._reducer.extend(self._states[customer_id], [event])
            # a merge joins two histories (one log now): the survivor's view is their events up
            # to this one, as simulate folds them
            self._states[customer_id] = view or self._taken_so_far(customer_id, event)
            self.changed.add(customer_id)
        return Resolved(customer_id, merged)

    def _taken_so_far(self, customer_id: str, event: Event) -> CustomerState:
        """The survivor's view at ``event``: the logged events up to it of the profiles the
        engine has merged into them by then (not those ingest merged by an event the engine
        has yet to take), with the events the campaigns made for them or the profiles merged
        in during this batch (logged only when the batch is saved)."""
        key = event.order_key
        lineage = self._lineage_of(event.message_id)
        merged_now = self.survivors()
        theirs = {p for p in lineage.received_as if lineage.profile(p, merged_now) == customer_id}
        history = [e for e, received_as in lineage.events if received_as in theirs]
        made = [
            e
            for cid, e in self.appended
            if self._live(cid) == customer_id and e.message_id not in lineage.message_ids
        ]
        return self._reducer.fold(e for e in [*history, *made] if _taken_by(e, key))

    def survivors(self) -> dict[str, str]:
        """``merged id -> live survivor id`` for the merges the engine was told of."""
        return {merged_id: self._live(merged_id) for merged_id in self._survivor}

    def views(self) -> dict[str, CustomerState]:
        """The view of each loaded live customer."""
        return {cid: state for cid, state in self._states.items() if cid not in self._survivor}

    def append(self, customer_id: str, event: Event) -> None:
        """Fold a campaign's own event into the customer and keep it to be logged."""
        self.appended.append((customer_id, event))
        survivor = self._live(customer_id)
        extended = self._reducer.extend(self.state(survivor), [event])
        if extended is not None:
            self._states[survivor] = extended
            self.changed.add(survivor)


def _taken_by(event: Event, key: OrderKey) -> bool:
    """Whether the engine had taken ``event`` when it took the event at ``key``: one received
    before it, or one a campaign made by then (an ``update`` step's event sorts after every
    event received at its instant, yet one made at the merge's instant came before it)."""
    return event.order_key <= key or (
        event.channel == CAMPAIGN_CHANNEL and event.timestamp <= key[0]
    )
