"""The orders part of the state: orders from every channel, reports again, refunds.

``Order Completed`` counts an order once per ``order_id`` (the web store and then the POS may
report the same order: the later report is an update); ``Order Refunded`` takes its amount, or
the order's total when it names none, back. Each order keeps the order key of its first report
(its place) and of its latest (its content), and a refund without an amount that comes before
its order is kept until the order does: so the same events give the same orders whatever
order they arrive in. Orders are matched by id among the :data:`RECENT_ORDERS_KEPT` latest.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from engine.events import Event, OrderKey
from engine.state.profile import Order, Orders
from engine.state.values import number, replace, text

RECENT_ORDERS_KEPT = 20
PENDING_REFUNDS_KEPT = 20
_second = itemgetter(1)  # a pending refund's key


def _amount(properties: Mapping[str, Any]) -> float | None:
    for key in ("total", "revenue", "value"):
        value = properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    products = properties.get("products")
    if isinstance(products, list) and products:
        return sum(number(p.get("price")) * number(p.get("quantity"), 1) for p in products)
    return None


def _place(order: Order) -> OrderKey:
    """Where an order stands among the orders: its first report (an order kept before keys
    were, by its time)."""
    return order.key if order.key is not None else (order.at, 0)


def _index(recent: tuple[Order, ...], order_id: str | None) -> int | None:
    if order_id is None:
        return None
    for index, order in enumerate(recent):
        if order.order_id == order_id:
            return index
    return None


def _with_order(orders: Orders, recent: list[Order], **changes: Any) -> Orders:
    """``orders`` with ``recent`` (in place order, trimmed to the latest kept)."""
    kept = tuple(recent[-RECENT_ORDERS_KEPT:])
    last_at = _place(kept[-1])[0] if kept else orders.last_at
    return replace(orders, recent=kept, last_at=last_at, **changes)


def orders_after(orders: Orders, event: Event) -> Orders:
    """Order Completed counts an order (once per order_id), Order Refunded takes money back."""
    key = (event.timestamp, event.arrival)
    properties = event.properties
    order_id = text(properties.get("order_id"))
    if event.name == "Order Refunded":
        return _refunded(orders, order_id, _amount(properties), key)
    products = properties.get("products")
    report = Order(
        order_id=order_id,
        at=event.timestamp,
        total=_amount(properties) or 0.0,
        channel=event.channel,
        currency=text(properties.get("currency")),
        products=tuple(products) if isinstance(products, list) else (),
        key=key,
        reported=key,
    )
    recent = list(orders.recent)
    index = _index(orders.recent, order_id)
    if index is None:  # a new order
        places = [_place(order) for order in recent]
        recent.insert(bisect_right(places, key), report)
        counted = _with_order(
            orders, recent, count=orders.count + 1, total=round(orders.total + report.total, 2)
        )
        return _settle_refunds(counted, order_id)
    # the same order reported again: the latest report's content, the first report's place
    previous = recent.pop(index)
    first = min(_place(previous), key)
    later = previous.reported is None or key > previous.reported
    content = replace(report, key=first, refunds=previous.refunds) if later else previous
    content = replace(content, key=first)
    change = content.total - previous.total
    places = [_place(order) for order in recent]
    recent.insert(bisect_right(places, first), content)
    updated = _with_order(
        orders,
        recent,
        total=round(orders.total + change * (1 - previous.refunds), 2),
        refunded=round(orders.refunded + change * previous.refunds, 2),
    )
    return _settle_refunds(updated, order_id)


def _refunded(orders: Orders, order_id: str | None, amount: float | None, key: OrderKey) -> Orders:
    if amount is not None:
        return replace(
            orders,
            total=round(orders.total - amount, 2),
            refunded=round(orders.refunded + amount, 2),
        )
    if order_id is None:  # no amount and no order to take it from: nothing to take back
        return orders
    index = _index(orders.recent, order_id)
    if index is not None and _place(orders.recent[index]) < key:
        return _refund_whole(orders, index)
    # the order is not known yet (it may arrive late): kept until it does
    pending = sorted((*orders.pending_refunds, (order_id, key)), key=_second)
    return replace(orders, pending_refunds=tuple(pending[-PENDING_REFUNDS_KEPT:]))


def _refund_whole(orders: Orders, index: int) -> Orders:
    """A refund without an amount: the order's whole total back."""
    order = orders.recent[index]
    recent = list(orders.recent)
    recent[index] = replace(order, refunds=order.refunds + 1)
    return replace(
        orders,
        recent=tuple(recent),
        total=round(orders.total - order.total, 2),
        refunded=round(orders.refunded + order.total, 2),
    )


def _settle_refunds(orders: Orders, order_id: str | None) -> Orders:
    """Take the refunds kept waiting for ``order_id`` that come after its first report."""
    if order_id is None or not orders.pending_refunds:
        return orders
    index = _index(orders.recent, order_id)
    if index is None:
        return orders
    place = _place(orders.recent[index])
    due = [(oid, key) for oid, key in orders.pending_refunds if oid == order_id and key > place]
    if not due:
        return orders
    waiting = tuple(pair for pair in orders.pending_refunds if pair not in due)
    orders = replace(orders, pending_refunds=waiting)
    for _ in due:
        orders = _refund_whole(orders, index)
    return orders
