"""The cart part of the state: adds and removals since the cart's last reset, in event order.

A cart depends on the order of its events, so it keeps what it needs to put a late one in its
place without the history: the items at its last reset (``Order Completed`` empties it; a
``Cart Viewed`` or ``Checkout Started`` that lists products shows it whole) and the changes
since, in event order. A late change is inserted where it belongs and the items are worked out
again from the reset; a change older than the reset is undone by it and changes nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from engine.events import Event, OrderKey
from engine.state.profile import Cart, CartChange, CartItem
from engine.state.values import number, replace, text

# The changes since a reset kept to place a late one. Past this the older half is folded into
# the base: a change older than that then needs the history (it almost never comes).
CHANGES_KEPT = 100


class NeedsHistory(Exception):
    """A late event older than what a part of the state still keeps: the customer's history
    has to be folded again."""


def cart_item(product: Mapping[str, Any], fallback_quantity: float = 1) -> CartItem | None:
    """The cart line of a product as the Segment e-commerce spec sends it."""
    product_id = text(product.get("product_id")) or text(product.get("sku"))
    if product_id is None:
        return None
    return CartItem(
        product_id=product_id,
        name=text(product.get("name")),
        price=number(product.get("price")),
        quantity=number(product.get("quantity"), fallback_quantity),
        url=text(product.get("url")),
        image_url=text(product.get("image_url")),
        category=text(product.get("category")),
    )


def cart_after(cart: Cart, event: Event) -> Cart:
    """Product Added and Removed change the cart, Cart Viewed and Checkout Started with products
    replace it with what the shop shows, Order Completed clears it: in event order, wherever
    the event falls. Raises :class:`NeedsHistory` for a change older than the changes kept."""
    name = event.name
    key = (event.timestamp, event.arrival)
    if name == "Order Completed":
        return _reset(cart, key, ())
    properties = event.properties
    if name == "Product Added":
        added = cart_item(properties)
        if added is None:
            return cart
        return _change(cart, CartChange(key, True, added.product_id, added))
    if name == "Product Removed":
        product_id = text(properties.get("product_id")) or text(properties.get("sku"))
        amount = properties.get("quantity")
        quantity = float(amount) if isinstance(amount, int | float) else None
        return _change(cart, CartChange(key, False, product_id or "", None, quantity))
    products = properties.get("products")  # Cart Viewed, Checkout Started
    if not isinstance(products, list):
        return cart
    return _reset(cart, key, tuple(item for item in map(cart_item, products) if item is not None))


def _apply(items: tuple[CartItem, ...], change: CartChange) -> tuple[CartItem, ...]:
    """``items`` after one add or removal."""
    if change.added:
        added = change.item
        assert added is not None
        lines = list(items)
        for index, item in enumerate(lines):
            if item.product_id == added.product_id:
                lines[index] = replace(added, quantity=item.quantity + added.quantity)
                return tuple(lines)
        return (*items, added)
    removed = change.quantity
    kept = []
    for item in items:
        if item.product_id != change.product_id:
            kept.append(item)
        elif removed is not None and removed < item.quantity:
            kept.append(replace(item, quantity=item.quantity - removed))
    return tuple(kept)


def _applied(base: tuple[CartItem, ...], changes: Iterable[CartChange]) -> tuple[CartItem, ...]:
    items = base
    for change in changes:
        items = _apply(items, change)
    return items


def _older_than_kept(cart: Cart, key: OrderKey) -> bool:
    """Whether an event at ``key`` falls before what the cart keeps: before its reset it
    changes nothing (the reset undid it); before a compaction the history must be read."""
    since = cart.since
    if since is None or key > since:
        return False
    if cart.compacted:
        raise NeedsHistory
    return True


def _change(cart: Cart, change: CartChange) -> Cart:
    key = change.key
    if _older_than_kept(cart, key):
        return cart
    changes = cart.changes
    if not changes or key > changes[-1].key:  # in event order: most events
        items = _apply(cart.items, change)
        changes = (*changes, change)
    else:
        at = bisect_left([c.key for c in changes], key)
        changes = (*changes[:at], change, *changes[at:])
        items = _applied(cart.base, changes)
    updated = Cart(items, changes[-1].key[0], cart.since, cart.base, changes, cart.compacted)
    return _compact(updated) if len(changes) > CHANGES_KEPT else updated


def _reset(cart: Cart, key: OrderKey, base: tuple[CartItem, ...]) -> Cart:
    if _older_than_kept(cart, key):
        return cart
    kept = tuple(change for change in cart.changes if change.key > key)
    updated_at = kept[-1].key[0] if kept else key[0]
    return Cart(_applied(base, kept), updated_at, key, base, kept, False)


def _compact(cart: Cart) -> Cart:
    """Fold the older half of the changes into the base."""
    folded = len(cart.changes) // 2
    older, newer = cart.changes[:folded], cart.changes[folded:]
    base = _applied(cart.base, older)
    return Cart(cart.items, cart.updated_at, older[-1].key, base, newer, True)
