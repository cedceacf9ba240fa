"""The abandoned cart in plain Python: a dict of per-customer state and a heap of timers.

The same meaning as the benchmark's campaign in followup: a customer enters on ``Product Added``
(a new add while in the journey restarts it: the debounce), leaves on ``Order Completed``; 1h
after entry an email is "sent", 1d later a call when the cart is worth 200 or more, else an ad
audience (``one_rule``: the journey ends at the email). Time is event time: events are applied
in (time, messageId) order and every timer due
at or before an event fires first; after the last event the clock runs one more week, as
``followup simulate`` does. When two customers merge, one journey survives: the earlier entry.

The conditions are pluggable (:class:`Conditions`), so the rule-engine peer runs this very state
machine with its conditions evaluated by rule-engine. Nothing is rendered, checked against
policies or recorded beyond counters: it is the floor of what the campaign costs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Protocol

from benchmarks.campaigns.campaign_files import CART_THRESHOLD
from benchmarks.campaigns.peer_state import (
    CartEntry,
    Identities,
    add_to_log,
    cart_entry,
    cart_value,
    merge_logs,
)
from benchmarks.campaigns.records import Record

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HORIZON_MS = 7 * DAY_MS
CAMPAIGN = "abandoned-cart"


class Conditions(Protocol):
    """The campaign's conditions: trigger, exit and the cart-value branch."""

    def triggered(self, record: Record) -> list[str]:
        """The campaigns whose trigger ``record`` matches."""
        ...

    def exits(self, record: Record) -> bool:
        """Whether ``record`` ends the abandoned-cart journey."""
        ...

    def high_value(self, value: float) -> bool:
        """Whether a cart worth ``value`` gets the call."""
        ...


class PlainConditions:
    """The conditions as Python comparisons."""

    def triggered(self, record: Record) -> list[str]:
        """``Product Added`` triggers the abandoned cart."""
        if record["type"] == "track" and record["name"] == "Product Added":
            return [CAMPAIGN]
        return []

    def exits(self, record: Record) -> bool:
        """``Order Completed`` ends it."""
        return bool(record["name"] == "Order Completed")

    def high_value(self, value: float) -> bool:
        """A cart of 200 or more gets the call."""
        return value >= CART_THRESHOLD


class _Journey:
    __slots__ = ("active", "customer", "entered")

    def __init__(self, customer: int, entered: tuple[int, str]) -> None:
        self.customer = customer
        self.entered = entered
        self.active = True


class AbandonedCart:
    """The campaign over a list of records; :meth:`run` returns what it did, counted."""

    def __init__(self, conditions: Conditions | None = None, one_rule: bool = False) -> None:
        self.conditions = conditions or PlainConditions()
        self.one_rule = one_rule  # the journey ends at the email
        self.counts: Counter[str] = Counter()
        self._identities = Identities()
        self._carts: dict[int, list[CartEntry]] = {}
        self._journeys: dict[int, _Journey] = {}  # the running journey of each customer
        self._timers: list[tuple[int, int, _Journey, int]] = []  # (due, sequence, journey, step)
        self._sequence = 0

    def run(self, records: list[Record]) -> Counter[str]:
        """Apply ``records`` (duplicates by messageId count once) and run the clock out."""
        unique = {record["id"]: record for record in reversed(records)}  # the first one wins
        ordered = sorted(unique.values(), key=lambda r: (r["ts"], r["id"]))
        for record in ordered:
            self._advance(record["ts"])
            self._on_record(record)
        if ordered:
            self._advance(ordered[-1]["ts"] + HORIZON_MS)
        return self.counts

    def _advance(self, until: int) -> None:
        timers = self._timers
        while timers and timers[0][0] <= until:
            due, _, journey, step = heapq.heappop(timers)
            if journey.active:
                self._step(journey, step, due)

    def _push(self, due: int, journey: _Journey, step: int) -> None:
        self._sequence += 1
        heapq.heappush(self._timers, (due, self._sequence, journey, step))

    def _on_record(self, record: Record) -> None:
        customer, merged = self._identities.resolve(record)
        for other in merged:
            self._merge(other, customer)
        entry = cart_entry(record)
        if entry is not None:
            self._carts[customer] = add_to_log(self._carts.get(customer, []), entry)
        conditions = self.conditions
        running = self._journeys.get(customer)
        if running is not None and conditions.exits(record):
            self._end(running, "exit_event")
        if CAMPAIGN in conditions.triggered(record):
            running = self._journeys.get(customer)
            if running is not None:
                self._end(running, "exit_restarted")
            journey = _Journey(customer, (record["ts"], record["id"]))
            self._journeys[customer] = journey
            self.counts["entered"] += 1
            self._push(record["ts"] + HOUR_MS, journey, 1)

    def _step(self, journey: _Journey, step: int, now: int) -> None:
        if step == 1:
            self.counts["email"] += 1
            if self.one_rule:
                journey.active = False
                del self._journeys[journey.customer]
                return
            self._push(now + DAY_MS, journey, 2)
            return
        value = cart_value(self._carts.get(journey.customer, []))
        self.counts["call" if self.conditions.high_value(value) else "ads"] += 1
        journey.active = False
        del self._journeys[journey.customer]

    def _end(self, journey: _Journey, reason: str) -> None:
        journey.active = False
        del self._journeys[journey.customer]
        self.counts[reason] += 1

    def _merge(self, merged: int, survivor: int) -> None:
        self.counts["merges"] += 1
        carts = self._carts
        moved = carts.pop(merged, None)
        if moved is not None:
            carts[survivor] = merge_logs(carts.get(survivor, []), moved)
        journey = self._journeys.pop(merged, None)
        if journey is None:
            return
        twin = self._journeys.get(survivor)
        keep = journey
        if twin is not None:  # one journey survives a merge: the earlier entry
            later, keep = (journey, twin) if journey.entered > twin.entered else (twin, journey)
            later.active = False
            self.counts["exit_merged"] += 1
        keep.customer = survivor
        self._journeys[survivor] = keep
