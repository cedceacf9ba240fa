"""Unified customers in memory: identity resolution and state for a simulation.

The same rules as the database-backed ingest (identity keys, merges with the earliest-seen
profile surviving, state folded by the same reducers in event-time order), without a database:
``simulate`` starts from an empty state and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.events import Event
from engine.identity import identity_keys, ids_only
from engine.ingest.resolver import IdentityResolver
from engine.journeys.customers import Resolved
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer

_NOTHING: frozenset[str] = frozenset()


class InMemoryCustomers:
    """Profiles, identity keys and event histories, kept in dictionaries.

    A state is folded when it is read, not when an event arrives: most events come from
    customers that nothing reads at the time (no journey, no trigger), and the reducers fold
    a run of such events into one state (:meth:`StateReducer.fold`). The state read is the one
    folding each event as it arrived would have made: the whole history in event-time order.
    """

    def __init__(self, reducer: StateReducer, phone_region: str = "US") -> None:
        self.reducer = reducer
        self.phone_region = phone_region
        self._resolver = IdentityResolver({}, {})  # one for the whole run: the same merge rules
        self._history: dict[str, list[Event]] = {}  # every live customer's events, as applied
        self._states: dict[str, CustomerState] = {}  # the state last folded, maybe behind
        # customer -> where in their history the events not yet in their state start
        # (0: none of them is, fold the whole history)
        self._unfolded: dict[str, int] = {}
        # customer -> the fields of the state those events may change, and how far in their
        # history that was worked out (see ``state_reading``; only what the segment check asks)
        self._touched: dict[str, tuple[frozenset[str], int]] = {}
        self._unmerged: dict[str, Resolved] = {}  # a customer's Resolved of no merge, made once
        # (userId, anonymousId) -> the customer an event carrying only those resolved to last
        self._owner_of_ids: dict[tuple[str | None, str | None], str] = {}

    def ids(self) -> list[str]:
        """Every live customer, sorted."""
        return sorted(self._history)

    def history(self, customer_id: str) -> Sequence[Event]:
        """The events of a live customer (those of the profiles merged into them too), as
        applied; none for an unknown or merged-away id."""
        return self._history.get(customer_id, ())

    def find(self, keys: Iterable[str]) -> str | None:
        """The live customer that owns the first of ``keys`` anyone owns (a customer id, an
        identity key; a merged-away profile's gives its survivor)."""
        for key in keys:
            if key in self._history:
                return key
            owner = self._resolver.owner(key)
            if owner is not None:
                return owner
        return None

    def has(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is a live customer."""
        return customer_id in self._history

    def state(self, customer_id: str) -> CustomerState:
        """The state of a live customer."""
        start = self._unfolded.pop(customer_id, None)
        if start is None:
            return self._states[customer_id]
        self._touched.pop(customer_id, None)
        history = self._history[customer_id]
        state = self._states.get(customer_id) if start else None
        if state is not None:  # on top, unless an event is older than the state's watermark
            state = self.reducer.extend(state, history[start:])
        if state is None:
            state = self.reducer.fold(history)
        self._states[customer_id] = state
        return state

    def state_reading(self, customer_id: str, fields: frozenset[str]) -> CustomerState:
        """A state of a live customer whose ``fields`` hold what they hold now: the state last
        folded when the events not in it yet change none of them (most events change a few:
        a product view the times and channels seen), else the state now. Leaving those events
        for later folds them in one run with the next (:meth:`StateReducer.fold`)."""
        start = self._unfolded.get(customer_id)
        if start:  # some events are not in the state last folded (0: none are, fold it all)
            touched, upto = self._touched.get(customer_id, (_NOTHING, start))
            history = self._history[customer_id]
            if upto < len(history):
                changed_by = self.reducer.fields_changed
                for event in history[upto:]:
                    changed = changed_by(event)
                    if changed is not touched and not changed <= touched:
                        touched = touched | changed
                self._touched[customer_id] = (touched, len(history))
            if touched.isdisjoint(fields):
                return self._states[customer_id]
        return self.state(customer_id)

    def apply(self, event: Event) -> Resolved:
        """Resolve ``event`` to its customer (merging profiles it links) and take it in."""
        ids = ids_only(event)
        if ids is not None:
            known = self._owner_of_ids.get(ids)
            if known is not None and known in self._history:
                # the same ids as an earlier event of this customer, still live: its keys are
                # all known to be theirs, nothing to link or merge
                customer_id = self._resolver.seen_again(known, event.timestamp)
                return self._unmerged_event(customer_id, event)
        merges = self._resolver.result.merges
        already = len(merges)
        customer_id = self._resolver.resolve(
            identity_keys(event, self.phone_region), event.timestamp, event.message_id
        )
        if ids is not None:
            self._owner_of_ids[ids] = customer_id
        if len(merges) == already:  # no merge: most events
            return self._unmerged_event(customer_id, event)
        merged = [record.merged_id for record in merges[already:]]
        history = self._history.setdefault(customer_id, [])
        for merged_id in merged:
            history.extend(self._history.pop(merged_id))
            self._states.pop(merged_id, None)
            self._unfolded.pop(merged_id, None)
            self._touched.pop(merged_id, None)
            self._unmerged.pop(merged_id, None)
        history.append(event)
        self._unfolded[customer_id] = 0  # the histories interleave: fold them all again
        self._touched.pop(customer_id, None)
        return Resolved(customer_id, tuple(merged))

    def _unmerged_event(self, customer_id: str, event: Event) -> Resolved:
        """Take in an event that merged nothing."""
        self._take_in(customer_id, event)
        resolved = self._unmerged.get(customer_id)
        if resolved is None:
            resolved = self._unmerged[customer_id] = Resolved(customer_id, ())
        return resolved

    def append(self, customer_id: str, event: Event) -> None:
        """Take in an event the engine itself made (a campaign's ``update`` step)."""
        self._take_in(customer_id, event)

    def _take_in(self, customer_id: str, event: Event) -> None:
        """Add ``event`` to the customer's history, for the next read of their state."""
        history = self._history.get(customer_id)
        if history is None:
            history = self._history[customer_id] = []
        self._unfolded.setdefault(customer_id, len(history))
        history.append(event)
