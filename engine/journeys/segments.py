"""The segment-triggered campaigns of a journey engine: who enters when a condition turns true,
and when each customer next needs a look.

A customer enters a segment campaign when its condition is found true and was not at the last
look (a customer kept out by the audience, a cooldown or a running journey tries again at the
next look). Looks come at every event of theirs and on a grid of sweep times; between two
changes of their state only ``now`` moves, so the next sweep at which anything could differ is
searched for (:mod:`engine.journeys.wakeups`) and booked, and the other sweeps skip them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.campaigns.expressions import Expression
from engine.campaigns.intervals import holds_throughout
from engine.campaigns.schema import Campaign, SegmentTrigger
from engine.journeys.context import CustomerView, names
from engine.journeys.wakeups import Probe, SweepGrid

if TYPE_CHECKING:
    from engine.journeys.runtime import JourneyEngine


class SegmentTriggers:
    """The segment campaigns among ``engine``'s, and their members' last values."""

    def __init__(self, engine: JourneyEngine, campaigns: Iterable[Campaign]) -> None:
        # a weak reference: held strongly, the engine and this made a cycle, and a durable
        # batch's whole engine (journeys, states, plan) was left to the cyclic collector,
        # whose full collections then walked the heap (a fifth of a pass)
        self.engine: JourneyEngine = weakref.proxy(engine)
        self.campaigns = [c for c in campaigns if isinstance(c.trigger, SegmentTrigger)]
        # (campaign, customer) -> the condition held at the last look and the customer entered
        self.was: dict[tuple[str, str], bool] = {}
        self._grid: SweepGrid | None = None  # the looks booked: who, at which sweep
        # the last check per customer, to search from when saved (the durable runtime)
        self._turns_later: dict[str, tuple[datetime, dict[str, bool]]] | None = None

    def book_looks(self, grid: SweepGrid, search_when_saved: bool) -> None:
        """Book on ``grid`` each customer's next look whenever they are checked (see
        :meth:`JourneyEngine.book_segment_looks`)."""
        if self.campaigns:
            self._grid = grid
            self._turns_later = {} if search_when_saved else None

    def looks(self) -> dict[str, datetime]:
        """The next look booked for each customer checked (nothing when no grid is kept)."""
        if self._grid is None:
            return {}
        for customer_id, (at, inside) in (self._turns_later or {}).items():
            if self.engine.customers.has(customer_id):  # not merged away since
                self._grid.book(customer_id, self._turn_look(customer_id, at, inside))
        self._turns_later = {}
        return self._grid.bookings()

    def look_soon(self, customer_id: str, at: datetime) -> None:
        """The customer's state changed at ``at`` without an event (an ``update`` step): look
        at them at the next sweep."""
        if self._grid is not None:
            self._grid.book(customer_id, self._grid.index_after(at))

    def merge(self, merged_id: str, survivor_id: str) -> None:
        """A merged profile's segment values go to the survivor (true if either was)."""
        for campaign in self.campaigns:
            if self.was.pop((campaign.id, merged_id), False):
                self.was[(campaign.id, survivor_id)] = True

    def check(self, customer_id: str, at: datetime) -> None:
        """Look at the customer's segment conditions at ``at``: enter those turned true."""
        inside: dict[str, bool] = {}
        customers = self.engine.customers
        for campaign in self.campaigns:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            state = customers.state(customer_id)
            now_true = inside[campaign.id] = trigger.segment.holds(
                names(customer_id, state, None, at)
            )
            key = (campaign.id, customer_id)
            if not now_true:
                self.was[key] = False
            elif not self.was.get(key, False):
                # true only once entered: a customer kept out (audience, cooldown) tries again
                self.was[key] = self.engine.try_enter(campaign, customer_id, at, None)
        if self._grid is not None:
            self._book_next_look(customer_id, at, inside)

    def _book_next_look(self, customer_id: str, at: datetime, inside: dict[str, bool]) -> None:
        """Book the first sweep after ``at`` at which a segment campaign could decide something
        else for the customer: its condition turns (``inside``: its value at ``at``, by
        campaign), or what keeps them out ends. A state an entry's ``update`` step changed
        only brings the look forward (the condition differs at once), and the update books
        the next sweep anyway."""
        grid = self._grid
        assert grid is not None
        looks = self._kept_out_looks(customer_id, at, inside)
        if self._turns_later is not None:  # the durable runtime: the search waits for the save
            self._turns_later[customer_id] = (at, inside)
            if looks:
                grid.book(customer_id, min(looks))
            return
        grid.book(customer_id, min([self._turn_look(customer_id, at, inside), *looks]))

    def _turn_look(self, customer_id: str, at: datetime, inside: dict[str, bool]) -> int:
        """The first sweep after ``at`` at which a segment condition is no longer as
        ``inside`` says, the customer's state standing as it is."""
        grid = self._grid
        assert grid is not None
        scope = self._scope(customer_id)
        looks = []
        for campaign in self.campaigns:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            looks.append(grid.first_change(_probe(trigger.segment, scope), inside[campaign.id], at))
        return min(looks)

    def _kept_out_looks(self, customer_id: str, at: datetime, inside: dict[str, bool]) -> list[int]:
        """For each segment campaign whose condition holds at ``at`` but that kept the customer
        out, the sweeps at which what keeps them out may end."""
        grid = self._grid
        assert grid is not None
        looks: list[int] = []
        for campaign in self.campaigns:
            key = (campaign.id, customer_id)
            if not inside[campaign.id] or self.was.get(key, False):
                continue
            audience = campaign.audience
            if audience is not None:
                scope = self._scope(customer_id)
                if not audience.holds({**scope, "now": at}):
                    looks.append(grid.first_change(_probe(audience, scope), False, at))
            last, cooldown = (
                self.engine.last_entry(campaign.id, customer_id),
                campaign.entry.cooldown,
            )
            if last is not None and cooldown and not campaign.entry.once and at - last < cooldown:
                looks.append(grid.index_after(last + cooldown - timedelta(microseconds=1)))
            if self.engine.running(customer_id, campaign.id):
                looks.append(grid.index_after(at))
        return looks

    def _scope(self, customer_id: str) -> dict[str, Any]:
        state = self.engine.customers.state(customer_id)
        return {"customer": CustomerView(customer_id, state), "event": None}


def _probe(condition: Expression, scope: Mapping[str, Any]) -> Probe:
    """``condition`` over stretches of time, for a customer whose state stands still."""
    return lambda start, end: holds_throughout(condition, scope, start, end)
