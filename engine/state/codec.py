"""The JSON form of :class:`CustomerState`, as stored in ``customers.state``.

Times are ISO 8601 strings in UTC; the form is stable so that a rebuilt state compares equal.
Order keys (event time, arrival) are kept as ``[microseconds since 1970, arrival]``: each state
keeps one per trait, consent channel, cart change and order, and integers are the cheapest to
write and read. A state written before those keys were (migration 0009) reads as ``legacy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.events import OrderKey
from engine.state.profile import (
    Cart,
    CartChange,
    CartItem,
    Consent,
    CustomerState,
    Order,
    Orders,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def key_to_json(key: OrderKey) -> list[int]:
    """An order key as ``[microseconds since 1970, arrival]``."""
    return [(key[0] - EPOCH) // _MICROSECOND, key[1]]


def key_from_json(data: list[Any]) -> OrderKey:
    """The order key :func:`key_to_json` wrote. Before arrival order (migration 0009) a key was
    ``[ISO time, messageId]``: every event logged since arrived later, so it reads as 0."""
    at, arrival = data
    when = EPOCH + timedelta(microseconds=at) if isinstance(at, int) else datetime.fromisoformat(at)
    return (when, arrival if isinstance(arrival, int) else 0)


def _optional_key(data: list[Any] | None) -> OrderKey | None:
    return key_from_json(data) if data is not None else None


def _keys_to_json(keys: Mapping[str, OrderKey]) -> dict[str, list[int]]:
    return {name: key_to_json(key) for name, key in keys.items()}


def _keys_from_json(data: Mapping[str, list[Any]] | None) -> dict[str, OrderKey]:
    """Order keys by name, in the order of the names (as the reducers keep them)."""
    return {name: key_from_json(key) for name, key in sorted((data or {}).items())}


def encode_cart_items(items: Iterable[CartItem]) -> list[dict[str, Any]]:
    """The JSON-ready dicts of cart lines."""
    return [_item_to_json(item) for item in items]


def _item_to_json(item: CartItem) -> dict[str, Any]:
    return {
        "product_id": item.product_id,
        "name": item.name,
        "price": item.price,
        "quantity": item.quantity,
        "url": item.url,
        "image_url": item.image_url,
        "category": item.category,
    }


def _change_to_json(change: CartChange) -> dict[str, Any]:
    data: dict[str, Any] = {"key": key_to_json(change.key), "added": change.added}
    if change.item is not None:
        data["item"] = _item_to_json(change.item)
    else:
        data["product_id"] = change.product_id
        data["quantity"] = change.quantity
    return data


def _change_from_json(data: dict[str, Any]) -> CartChange:
    item = CartItem(**data["item"]) if "item" in data else None
    return CartChange(
        key=key_from_json(data["key"]),
        added=data["added"],
        product_id=item.product_id if item is not None else data["product_id"],
        item=item,
        quantity=data.get("quantity"),
    )


def _order_to_json(order: Order) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": order.order_id,
        "at": order.at.isoformat(),
        "total": order.total,
        "channel": order.channel,
        "currency": order.currency,
        "products": list(order.products),
    }
    if order.key is not None:
        data["key"] = key_to_json(order.key)
    if order.reported is not None:
        data["reported"] = key_to_json(order.reported)
    if order.refunds:
        data["refunds"] = order.refunds
    return data


def _order_from_json(data: dict[str, Any]) -> Order:
    return Order(
        order_id=data["order_id"],
        at=datetime.fromisoformat(data["at"]),
        total=data["total"],
        channel=data["channel"],
        currency=data.get("currency"),
        products=tuple(data.get("products") or ()),
        key=_optional_key(data.get("key")),
        reported=_optional_key(data.get("reported")),
        refunds=data.get("refunds", 0),
    )


def state_to_json(state: CustomerState) -> dict[str, Any]:
    """The JSON-ready dict of ``state``."""
    consent = state.consent
    cart = state.cart
    orders = state.orders
    data: dict[str, Any] = {
        "user_id": state.user_id,
        "traits": dict(state.traits),
        "consent": {
            "email": consent.email,
            "sms": consent.sms,
            "call": consent.call,
            "ads": consent.ads,
            "changed_at": _keys_to_json(consent.changed_at),
        },
        "cart": {
            "items": encode_cart_items(cart.items),
            "updated_at": _time(cart.updated_at),
            "since": key_to_json(cart.since) if cart.since is not None else None,
            "base": encode_cart_items(cart.base),
            "changes": [_change_to_json(change) for change in cart.changes],
            "compacted": cart.compacted,
        },
        "orders": {
            "count": orders.count,
            "total": orders.total,
            "refunded": orders.refunded,
            "last_at": _time(orders.last_at),
            "recent": [_order_to_json(order) for order in orders.recent],
            "pending_refunds": [
                [order_id, key_to_json(key)] for order_id, key in orders.pending_refunds
            ],
        },
        "channels": sorted(state.channels),
        "first_seen_at": _time(state.first_seen_at),
        "last_seen_at": _time(state.last_seen_at),
        "timezone": state.timezone,
        "locale": state.locale,
        "event_count": state.event_count,
        "watermark": key_to_json(state.watermark) if state.watermark else None,
        "user_id_at": key_to_json(state.user_id_at) if state.user_id_at else None,
        "traits_at": _keys_to_json(state.traits_at),
        "context_timezone": state.context_timezone,
        "context_locale": state.context_locale,
        "context_at": _keys_to_json(state.context_at),
    }
    if state.legacy:
        data["legacy"] = True
    return data


def state_from_json(data: dict[str, Any]) -> CustomerState:
    """The :class:`CustomerState` stored as ``data``."""
    cart = data["cart"]
    orders = data["orders"]
    consent = data["consent"]
    watermark = _optional_key(data.get("watermark"))
    legacy = data.get("legacy", False) or "traits_at" not in data
    items = tuple(CartItem(**item) for item in cart["items"])
    if "base" in cart:
        since = _optional_key(cart.get("since"))
        base = tuple(CartItem(**item) for item in cart["base"])
        changes = tuple(_change_from_json(change) for change in cart["changes"])
        compacted = cart.get("compacted", False)
    else:  # kept without its changes: what it holds stands from the watermark on
        since, base, changes, compacted = watermark, items, (), watermark is not None
    return CustomerState(
        user_id=data.get("user_id"),
        traits=dict(sorted((data.get("traits") or {}).items())),  # as the reducer keeps them
        consent=Consent(
            email=consent["email"],
            sms=consent["sms"],
            call=consent["call"],
            ads=consent["ads"],
            changed_at=_keys_from_json(consent.get("changed_at")),
        ),
        cart=Cart(
            items=items,
            updated_at=_parse_time(cart.get("updated_at")),
            since=since,
            base=base,
            changes=changes,
            compacted=compacted,
        ),
        orders=Orders(
            count=orders["count"],
            total=orders["total"],
            refunded=orders.get("refunded", 0.0),
            last_at=_parse_time(orders.get("last_at")),
            recent=tuple(_order_from_json(order) for order in orders.get("recent") or ()),
            pending_refunds=tuple(
                (order_id, key_from_json(key))
                for order_id, key in orders.get("pending_refunds", ())
            ),
        ),
        channels=frozenset(data.get("channels") or ()),
        first_seen_at=_parse_time(data.get("first_seen_at")),
        last_seen_at=_parse_time(data.get("last_seen_at")),
        timezone=data.get("timezone"),
        locale=data.get("locale"),
        event_count=data.get("event_count", 0),
        watermark=watermark,
        user_id_at=_optional_key(data.get("user_id_at")),
        traits_at=_keys_from_json(data.get("traits_at")),
        context_timezone=data.get("context_timezone"),
        context_locale=data.get("context_locale"),
        context_at=_keys_from_json(data.get("context_at")),
        legacy=legacy,
    )


_BOOKKEEPING = ("user_id_at", "traits_at", "context_timezone", "context_locale", "context_at")


def profile_to_json(state: CustomerState) -> dict[str, Any]:
    """``state`` as a person reads it (``followup customers show --json``): its JSON form
    without what it keeps only to place late events (the order key of each part)."""
    data = state_to_json(state)
    for name in (*_BOOKKEEPING, "legacy"):
        data.pop(name, None)
    data["consent"].pop("changed_at")
    for name in ("since", "base", "changes", "compacted"):
        data["cart"].pop(name)
    data["orders"].pop("pending_refunds")
    for order in data["orders"]["recent"]:
        for name in ("key", "reported"):
            order.pop(name, None)
    return data
