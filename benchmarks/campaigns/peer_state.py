"""What the peers keep per customer besides their journeys: identities and the cart.

Both follow followup's rules, so the peers decide on the same customers and the same cart values:

- **Identities**: the userId, anonymousId, email and phone seen in one event belong to one
  customer; when an event links customers they merge and the one seen first (by event time)
  survives. (Shoppers of the synthetic stream who drew the same phone number are one customer,
  as in followup.)
- **Cart**: ``Product Added`` adds the product (the quantities of one product add up, at the
  latest price), ``Checkout Started`` replaces the cart with the products it lists,
  ``Order Completed`` empties it; the value is the sum of price times quantity, to the cent.
  The cart is kept as a log from its last reset, so two merged customers' carts fold together in
  event-time order, as followup refolds a merged history.
"""

from __future__ import annotations

from typing import Any

from benchmarks.campaigns.records import Record

CartEntry = tuple[int, str, str, Any]  # (time ms, messageId, "add" | "set" | "clear", data)
CART_RESETS = {"Checkout Started": "set", "Order Completed": "clear"}


class Identities:
    """Customers (ints) by identity key, with followup's merge rule."""

    __slots__ = ("_first_seen", "_owner", "_survivor")

    def __init__(self) -> None:
        self._owner: dict[str, int] = {}
        self._survivor: dict[int, int] = {}
        self._first_seen: list[int] = []  # by customer number

    def final(self, customer: int) -> int:
        """The live customer that ``customer`` is now (itself unless merged)."""
        survivor = self._survivor
        while customer in survivor:
            customer = survivor[customer]
        return customer

    def resolve(self, record: Record) -> tuple[int, tuple[int, ...]]:
        """The customer of ``record``, and the customers it merged into that one."""
        keys = [
            prefix + value
            for prefix, value in (
                ("u:", record["user"]),
                ("e:", record["email"]),
                ("p:", record["phone"]),
                ("a:", record["anon"]),
            )
            if value is not None
        ]
        owner = self._owner
        found = {self.final(owner[key]) for key in keys if key in owner}
        merged: tuple[int, ...] = ()
        if not found:
            customer = len(self._first_seen)
            self._first_seen.append(record["ts"])
        elif len(found) == 1:
            customer = found.pop()
        else:  # the event links customers: the one seen first survives
            first_seen = self._first_seen
            customer, *others = sorted(found, key=lambda c: (first_seen[c], c))
            for other in others:
                self._survivor[other] = customer
            first_seen[customer] = min(first_seen[c] for c in found)
            merged = tuple(others)
        for key in keys:
            owner.setdefault(key, customer)
        return customer, merged


def cart_entry(record: Record) -> CartEntry | None:
    """The record's change to the cart, or ``None`` when it does not touch the cart."""
    if record["type"] != "track":
        return None
    name = record["name"]
    props = record["props"]
    if name == "Product Added":
        item = _item(props)
        return None if item is None else (record["ts"], record["id"], "add", item)
    reset = CART_RESETS.get(name)
    if reset == "clear":
        return (record["ts"], record["id"], "clear", None)
    if reset == "set":
        products = props.get("products")
        if not isinstance(products, list):
            return None
        items = [item for item in map(_item, products) if item is not None]
        return (record["ts"], record["id"], "set", items)
    return None


def _item(product: dict[str, Any]) -> tuple[str, float, float] | None:
    product_id = product.get("product_id") or product.get("sku")
    if product_id is None:
        return None
    return (str(product_id), float(product.get("price") or 0.0), float(product.get("quantity", 1)))


def add_to_log(log: list[CartEntry], entry: CartEntry) -> list[CartEntry]:
    """The cart log with ``entry``: a reset starts it again."""
    if entry[2] == "add":
        log.append(entry)
        return log
    return [entry]


def merge_logs(first: list[CartEntry], second: list[CartEntry]) -> list[CartEntry]:
    """Two customers' cart logs as one, in event-time order."""
    return sorted(first + second, key=lambda entry: (entry[0], entry[1]))


def cart_value(log: list[CartEntry]) -> float:
    """The cart's value after the log, to the cent."""
    items: dict[str, tuple[float, float]] = {}
    for _, _, op, data in log:
        if op == "add":
            product_id, price, quantity = data
            before = items.get(product_id)
            items[product_id] = (price, quantity + before[1] if before else quantity)
        elif op == "set":
            items = {}
            for product_id, price, quantity in data:
                items[product_id] = (price, quantity)
        else:
            items = {}
    return round(sum(price * quantity for price, quantity in items.values()), 2)
