"""Who a scheduled campaign's tick needs to look at, in ``simulate``.

A weekly newsletter over twenty years ticks a thousand times; most customers are outside its
audience at every tick. A customer whose audience condition was found false over the year ahead
(evaluated over the whole stretch at once, see :mod:`engine.campaigns.intervals`) is left out of
the ticks until that year is over or their state changes (any event, any ``update`` step), when
they are looked at again. Leaving them out changes nothing: they would not have entered.
"""

from __future__ import annotations

import heapq
from datetime import datetime


class TickAudience:
    """The customers a scheduled campaign's next tick must look at."""

    def __init__(self) -> None:
        self._look: set[str] = set()  # changed, new, or inside the audience at the last look
        self._out: dict[str, datetime] = {}  # known outside the audience until then
        self._expiries: list[tuple[datetime, str]] = []

    def changed(self, customer_id: str) -> None:
        """The customer's state changed: look at them at the next tick."""
        self._look.add(customer_id)

    def due(self, at: datetime) -> list[str]:
        """The customers to look at in the tick at ``at``, sorted; they leave the list until
        :meth:`inside` or :meth:`changed` puts them back."""
        while self._expiries and self._expiries[0][0] < at:
            until, customer_id = heapq.heappop(self._expiries)
            if self._out.get(customer_id) == until:
                self._look.add(customer_id)
        due = sorted(self._look)
        self._look = set()
        return due

    def outside(self, customer_id: str, until: datetime) -> None:
        """Found outside the audience as long as their state stands, up to ``until``."""
        self._out[customer_id] = until
        heapq.heappush(self._expiries, (until, customer_id))

    def inside(self, customer_id: str) -> None:
        """Possibly inside the audience: look at them again at the next tick."""
        self._out.pop(customer_id, None)
        self._look.add(customer_id)
