"""Shop activity mirrored into the e-commerce store: the customer's cart as it stands after each
cart event, the order of an ``Order Completed`` (which deletes the cart).

The cart id is the customer's (``followup-<customer id>``: one open cart per customer, as the
engine keeps it); an empty cart is deleted, which cancels Mailchimp's abandoned-cart email. Every
write is a ``PATCH`` tried first and a ``POST`` only on 404 (see :mod:`.commerce`), so a create
whose answer was lost is found by the retry's ``PATCH`` and never made twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.channels import CustomerActivity
from integrations.mailchimp.commerce import Line, MailchimpCommerce

CART_EVENTS = frozenset({"Product Added", "Product Removed", "Cart Viewed", "Checkout Started"})
ORDER_EVENT = "Order Completed"
SYNCED_EVENTS = CART_EVENTS | {ORDER_EVENT}


class NotSyncable(ValueError):
    """The activity cannot be mirrored (no address, an order without products)."""


def cart_id(customer_id: str) -> str:
    """The id of the customer's cart in the store."""
    return f"followup-{customer_id}"


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def lines(items: Sequence[Mapping[str, Any]]) -> list[Line]:
    """Cart items or order products (``product_id``/``id``, ``name``, ``price``, ``quantity``)
    as lines; items without a product id are left out."""
    found: list[Line] = []
    seen: set[str] = set()
    for item in items:
        product = str(item.get("product_id") or item.get("id") or item.get("sku") or "")
        if not product:
            continue
        line_id = product if product not in seen else f"{product}-{len(found)}"
        seen.add(line_id)
        found.append(
            Line(
                line_id,
                product,
                max(1, int(_number(item.get("quantity"), 1))),
                _number(item.get("price")),
                str(item["name"]) if item.get("name") else None,
            )
        )
    return found


def mirror(commerce: MailchimpCommerce, activity: CustomerActivity) -> str:
    """Carry ``activity`` to the store; what was done. Raises :class:`NotSyncable` or
    :class:`~integrations.mailchimp.transport.MailchimpError`."""
    recipient = activity.recipient
    if not recipient.email:
        raise NotSyncable("no_address: the customer has no email, Mailchimp keys customers by it")
    cart = cart_id(recipient.customer_id)
    properties = activity.properties
    if activity.event == ORDER_EVENT:
        products = properties.get("products")
        items = products if isinstance(products, list) and products else activity.cart["items"]
        order_lines = lines([item for item in items if isinstance(item, Mapping)])
        if not order_lines:
            raise NotSyncable("an order without products cannot be synced to Mailchimp")
        order_id = str(properties.get("order_id") or properties.get("checkout_id") or activity.key)
        total = properties.get("revenue", properties.get("total", properties.get("value")))
        commerce.sync_order(
            order_id,
            recipient.customer_id,
            recipient.email,
            order_lines,
            _number(total, sum(line.price * line.quantity for line in order_lines)),
            currency=str(properties.get("currency") or "USD").upper(),
            opt_in=activity.opted_in,
            processed_at=activity.at,
            cart_id=cart,
        )
        return f"order {order_id} synced, cart deleted"
    cart_lines = lines(activity.cart.get("items") or [])
    if not cart_lines:
        commerce.delete_cart(cart)
        return f"cart {cart} empty: deleted"
    commerce.sync_cart(
        cart,
        recipient.customer_id,
        recipient.email,
        cart_lines,
        _number(activity.cart.get("value"), sum(x.price * x.quantity for x in cart_lines)),
        currency=str(properties.get("currency") or "USD").upper(),
        opt_in=activity.opted_in,
        checkout_url=str(properties["checkout_url"]) if properties.get("checkout_url") else None,
    )
    return f"cart {cart} synced ({len(cart_lines)} lines)"
