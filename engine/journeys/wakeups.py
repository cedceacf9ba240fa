"""When a customer's segment trigger next needs a look: the sweep of ``simulate`` without
visiting every customer every hour.

Segment triggers are re-evaluated on a grid of sweep times (every :data:`SEGMENT_SWEEP`, on the
hours of UTC). Between two changes of a customer's state, only ``now`` moves, so
:func:`first_change` can search the grid for the first sweep at which a condition's value differs,
evaluating it over whole stretches of time at once (:mod:`engine.campaigns.intervals`) and
splitting a stretch only where the value depends on the time. The answer is exact: the same
sweep times as looking every hour, at a logarithmic cost.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

Probe = Callable[[datetime, datetime], bool | datetime | None]
"""The value of a condition at every time from the first to the second if it is the same
throughout; else when it may turn, if known, else ``None`` (a probe of equal ends always
answers)."""

HORIZON = 2**15  # sweeps searched at once (3.7 years of hours); beyond, a look is booked there
# Probes one search may make. A condition on ``now`` the intervals cannot follow (say
# ``now.strftime(...)``) is undecided over every stretch and would be probed at each point of the
# horizon; past this many, the search books a look at the first stretch still undecided: an early
# look decides nothing (the value is checked again then) and books the next.
SEARCH_BUDGET = 512


class SweepGrid:
    """The sweep times ``origin + k * step`` and the customers booked at each."""

    def __init__(self, origin: datetime, step: timedelta, horizon: int = HORIZON) -> None:
        self.origin = origin
        self.step = step
        self.horizon = horizon  # grid points searched at once
        self._heap: list[tuple[int, str]] = []
        self._booked: dict[str, int] = {}  # customer -> the index of their next look

    def time(self, index: int) -> datetime:
        """The sweep time of ``index``."""
        return self.origin + index * self.step

    def index_after(self, at: datetime) -> int:
        """The index of the first sweep strictly after ``at``."""
        return (at - self.origin) // self.step + 1

    def book(self, customer_id: str, index: int) -> None:
        """Look at ``customer_id`` at sweep ``index`` (an earlier booking stands)."""
        current = self._booked.get(customer_id)
        if current is None or index < current:
            self._booked[customer_id] = index
            heapq.heappush(self._heap, (index, customer_id))

    def take_until(self, customer_id: str, at: datetime) -> None:
        """The customer's booking at or before ``at`` ends: they are looked at then."""
        index = self._booked.get(customer_id)
        if index is not None and self.time(index) <= at:
            del self._booked[customer_id]

    def bookings(self) -> dict[str, datetime]:
        """Every customer booked, with the time of their look."""
        return {customer_id: self.time(index) for customer_id, index in self._booked.items()}

    def due(self, at: datetime) -> list[str]:
        """The customers booked at or before the sweep at ``at``, sorted; their bookings end."""
        limit = self.index_after(at) - 1
        found = set()
        while self._heap and self._heap[0][0] <= limit:
            index, customer_id = heapq.heappop(self._heap)
            if self._booked.get(customer_id) == index:
                del self._booked[customer_id]
                found.add(customer_id)
        return sorted(found)

    def booked(self, customer_id: str) -> int | None:
        """The index of the customer's next look, if one is booked."""
        return self._booked.get(customer_id)

    def first_change(self, probe: Probe, value: bool, after: datetime) -> int:
        """The index of the first sweep after ``after`` at which ``probe`` is not ``value``,
        or the end of the horizon searched when it is ``value`` all along (or, when the probe
        cannot tell over :data:`SEARCH_BUDGET` probes, the first sweep it could not tell)."""
        return self.search(probe, value, after)[0]

    def search(self, probe: Probe, value: bool, after: datetime) -> tuple[int, bool]:
        """:meth:`first_change`, and whether the probe told every sweep before it (``False``:
        it ran out of probes, and the index is the first sweep it could not tell)."""
        start = self.index_after(after)
        found, told = self._search(probe, value, start, start + self.horizon - 1)
        return (start + self.horizon if found is None else found), told

    def _search(self, probe: Probe, value: bool, lo: int, hi: int) -> tuple[int | None, bool]:
        stack = [(lo, hi)]
        budget = SEARCH_BUDGET
        while stack:
            lo, hi = stack.pop()
            if budget == 0:
                return lo, False  # every earlier stretch was found ``value``: look here, early
            budget -= 1
            seen = probe(self.time(lo), self.time(hi))
            if isinstance(seen, bool):
                if seen != value:
                    return lo, True
                continue
            # lo < hi (a single sweep always answers): cut where it may turn, else halfway
            turn = -((self.origin - seen) // self.step) if seen is not None else None
            if turn is not None and lo <= turn <= hi:
                # the sweep at or after the turn alone (a strict comparison turns just after)
                parts = [(lo, turn - 1), (turn, turn), (turn + 1, hi)]
            else:
                middle = (lo + hi) // 2
                parts = [(lo, middle), (middle + 1, hi)]
            stack.extend(reversed([(a, b) for a, b in parts if a <= b]))  # earlier parts first
        return None, True
