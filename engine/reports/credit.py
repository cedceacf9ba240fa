"""Orders, touches and the credit each touch earned (../shared/design/REPORTS.md, "Words" and
"Attribution of orders to touches"): the totals per order source, per channel and per campaign,
and the same per day for the charts over time.

The caller gives the orders and the touches of the period, each under the customer it belongs
to now (a merged profile's under the survivor); :func:`attribute` credits every order to the
touches of its customer with :func:`engine.reports.attribution.credit`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Real
from typing import Any

from engine.campaigns.expressions import Expression
from engine.events import Event
from engine.journeys.context import names
from engine.reports.attribution import Touch, credit
from engine.reports.settings import ReportSettings
from engine.state.profile import CustomerState


@dataclass(frozen=True, slots=True)
class Order:
    """An order: whose, when, what it is worth, and where it was placed (web, pos, call)."""

    customer: str
    at: datetime
    value: float
    source: str


@dataclass
class Figures:
    """Orders (or touches) and the credit they carry. Sums are taken with :func:`math.fsum`,
    correctly rounded once: shares of an order that add up to exactly 1 make whole orders."""

    count: int = 0
    values: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    worth: list[float] = field(default_factory=list)

    def credit(self, share: float, worth: float) -> None:
        """Add the credit of one touch for one order."""
        self.shares.append(share)
        self.worth.append(worth)

    @property
    def revenue(self) -> float:
        """The value of the orders counted."""
        return math.fsum(self.values)

    @property
    def attributed_count(self) -> float:
        """The orders credited, in shares."""
        return math.fsum(self.shares)

    @property
    def attributed_revenue(self) -> float:
        """The value credited."""
        return math.fsum(self.worth)


@dataclass
class Attributed:
    """What the orders and touches of a period add up to."""

    orders: Figures = field(default_factory=Figures)
    by_source: dict[str, Figures] = field(default_factory=dict)
    # channel -> touches (count) and their credit
    channels: dict[str, Figures] = field(default_factory=dict)
    # campaign -> touches by channel, and their credit
    touches: dict[str, Counter[str]] = field(default_factory=dict)
    campaigns: dict[str, Figures] = field(default_factory=dict)
    # (UTC day, channel) -> attributed revenue; (UTC day, source) -> revenue
    daily_attributed: defaultdict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    daily_revenue: defaultdict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )


def order_value(event: Event, expression: Expression | None) -> float:
    """What an order is worth: ``reports.value`` on the event, else ``properties.revenue``,
    else ``total``, else 0; anything but a number counts 0."""
    if expression is not None:
        try:
            value = expression.evaluate(names("", CustomerState(), event, event.timestamp))
        except Exception:  # noqa: BLE001 - one bad order must not stop the report
            value = None
    else:
        properties = event.properties
        value = properties.get("revenue")
        if not _is_number(value):
            value = properties.get("total")
    return float(value) if _is_number(value) else 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def attribute(
    orders: Iterable[Order],
    touch_counts: Iterable[tuple[str, str, int]],
    touches: Mapping[str, list[tuple[str, Touch]]],
    settings: ReportSettings,
) -> Attributed:
    """Credit ``orders`` to ``touches`` (customer -> (campaign, touch) of the period: those of
    the customers who ordered at least), under ``settings``' model and windows.
    ``touch_counts`` are the period's touches as (campaign, channel, count)."""
    found = Attributed()
    windows = settings.channel_windows()
    for campaign, channel, number in touch_counts:
        found.touches.setdefault(campaign, Counter())[channel] += number
        found.channels.setdefault(channel, Figures()).count += number
        found.campaigns.setdefault(campaign, Figures())
    for order in orders:
        _count_order(found, order)
        customer_touches = touches.get(order.customer)
        if not customer_touches:
            continue
        campaign_of = {id(touch): campaign for campaign, touch in customer_touches}
        shares = credit(
            order.at,
            [touch for _, touch in customer_touches],
            settings.model,
            windows,
            settings.half_life,
        )
        for touch, share in shares:
            if not share:
                continue
            worth = share * order.value
            for figures in (
                found.orders,
                found.by_source[order.source],
                found.channels.setdefault(touch.channel, Figures()),
                found.campaigns.setdefault(campaign_of[id(touch)], Figures()),
            ):
                figures.credit(share, worth)
            found.daily_attributed[(_day(order.at), touch.channel)] += worth
    return found


def _count_order(found: Attributed, order: Order) -> None:
    for figures in (found.orders, found.by_source.setdefault(order.source, Figures())):
        figures.count += 1
        figures.values.append(order.value)
    found.daily_revenue[(_day(order.at), order.source)] += order.value


def _day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def by_customer(records: Iterable[tuple[str, str, Touch]]) -> dict[str, list[tuple[str, Touch]]]:
    """``(customer, campaign, touch)`` records grouped by customer."""
    grouped: dict[str, list[tuple[str, Touch]]] = defaultdict(list)
    for customer, campaign, touch in records:
        grouped[customer].append((campaign, touch))
    return dict(grouped)


def survivor_of(merged_into: Mapping[str, str]) -> Callable[[str], str]:
    """The live customer behind an id, following ``merged_into`` (merged id -> the one it
    went into) to its end."""
    memo: dict[str, str] = {}

    def survivor(customer: str) -> str:
        found = memo.get(customer)
        if found is None:
            found, seen = customer, set()
            while found in merged_into and found not in seen:
                seen.add(found)
                found = merged_into[found]
            memo[customer] = found
        return found

    return survivor
