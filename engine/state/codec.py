"""The JSON form of :class:`CustomerState`, as stored in ``customers.state``.

Times are ISO 8601 strings in UTC; the form is stable so that a rebuilt state compares equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from engine.state.profile import Cart, CartItem, Consent, CustomerState, Order, Orders


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode_cart_items(items: Iterable[CartItem]) -> list[dict[str, Any]]:
    """The JSON-ready dicts of cart lines."""
    return [
        {
            "product_id": item.product_id,
            "name": item.name,
            "price": item.price,
            "quantity": item.quantity,
            "url": item.url,
            "image_url": item.image_url,
            "category": item.category,
        }
        for item in items
    ]


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _order_to_json(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "at": order.at.isoformat(),
        "total": order.total,
        "channel": order.channel,
        "currency": order.currency,
        "products": list(order.products),
    }


def _order_from_json(data: dict[str, Any]) -> Order:
    return Order(
        order_id=data["order_id"],
        at=datetime.fromisoformat(data["at"]),
        total=data["total"],
        channel=data["channel"],
        currency=data.get("currency"),
        products=tuple(data.get("products") or ()),
    )


def state_to_json(state: CustomerState) -> dict[str, Any]:
    """The JSON-ready dict of ``state``."""
    consent = state.consent
    return {
        "user_id": state.user_id,
        "traits": dict(state.traits),
        "consent": {
            "email": consent.email,
            "sms": consent.sms,
            "call": consent.call,
            "ads": consent.ads,
        },
        "cart": {
            "items": encode_cart_items(state.cart.items),
            "updated_at": _time(state.cart.updated_at),
        },
        "orders": {
            "count": state.orders.count,
            "total": state.orders.total,
            "refunded": state.orders.refunded,
            "last_at": _time(state.orders.last_at),
            "recent": [_order_to_json(order) for order in state.orders.recent],
        },
        "channels": sorted(state.channels),
        "first_seen_at": _time(state.first_seen_at),
        "last_seen_at": _time(state.last_seen_at),
        "timezone": state.timezone,
        "locale": state.locale,
        "event_count": state.event_count,
        "watermark": (
            [state.watermark[0].isoformat(), state.watermark[1]] if state.watermark else None
        ),
    }


def state_from_json(data: dict[str, Any]) -> CustomerState:
    """The :class:`CustomerState` stored as ``data``."""
    cart = data["cart"]
    orders = data["orders"]
    watermark = data.get("watermark")
    return CustomerState(
        user_id=data.get("user_id"),
        traits=data.get("traits") or {},
        consent=Consent(**data["consent"]),
        cart=Cart(
            items=tuple(CartItem(**item) for item in cart["items"]),
            updated_at=_parse_time(cart.get("updated_at")),
        ),
        orders=Orders(
            count=orders["count"],
            total=orders["total"],
            refunded=orders.get("refunded", 0.0),
            last_at=_parse_time(orders.get("last_at")),
            recent=tuple(_order_from_json(order) for order in orders.get("recent") or ()),
        ),
        channels=frozenset(data.get("channels") or ()),
        first_seen_at=_parse_time(data.get("first_seen_at")),
        last_seen_at=_parse_time(data.get("last_seen_at")),
        timezone=data.get("timezone"),
        locale=data.get("locale"),
        event_count=data.get("event_count", 0),
        watermark=_order_key(watermark) if watermark else None,
    )


def _order_key(data: list[Any]) -> tuple[datetime, int]:
    """An order key as stored. Before arrival order (migration 0009) its second part was a
    messageId: every event logged since arrived later, so it reads as 0."""
    at, arrival = data
    return (datetime.fromisoformat(at), arrival if isinstance(arrival, int) else 0)
