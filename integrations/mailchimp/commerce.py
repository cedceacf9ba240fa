"""Feeding a Mailchimp e-commerce store (``store_id``) with carts and orders, so Mailchimp's own
abandoned-cart and order automations can run on them.

Each sync is an upsert: ``PATCH`` the cart, order or product, and ``POST`` it when Mailchimp
answers 404. Products come first (a line may only name a product Mailchimp knows); an order
deletes the cart it came from, which cancels the pending abandoned-cart email. The store itself is
created once in Mailchimp (or with ``POST /ecommerce/stores``) and tied to the audience for good.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.mailchimp.transport import MailchimpError, Transport


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a cart or order: ``quantity`` of a product's variant at ``price`` each."""

    id: str
    product_id: str
    quantity: int
    price: float
    title: str | None = None
    variant_id: str | None = None  # the product itself when the shop has no variants

    @property
    def variant(self) -> str:
        """The variant id, the product id when there is none."""
        return self.variant_id or self.product_id

    def as_body(self) -> dict[str, Any]:
        """The line as Mailchimp's cart/order line."""
        return {
            "id": self.id,
            "product_id": self.product_id,
            "product_variant_id": self.variant,
            "quantity": self.quantity,
            "price": self.price,
        }


class MailchimpCommerce:
    """Cart and order sync for one store."""

    def __init__(self, transport: Transport, store_id: str) -> None:
        self.transport = transport
        self.store_id = store_id

    def sync_products(self, lines: Sequence[Line]) -> None:
        """Make sure every product (and variant) of ``lines`` exists in the store."""
        done: set[str] = set()
        for line in lines:
            if line.product_id in done:
                continue
            done.add(line.product_id)
            title = line.title or line.product_id
            variants = [
                {"id": each.variant, "title": each.title or title}
                for each in lines
                if each.product_id == line.product_id
            ]
            variants = list({variant["id"]: variant for variant in variants}.values())
            self._upsert_product(line.product_id, title, variants)

    def _upsert_product(self, product_id: str, title: str, variants: list[dict[str, str]]) -> None:
        body = {"title": title, "variants": variants}
        self._upsert(
            lambda c: c.ecommerce.update_store_product(self.store_id, product_id, body),
            lambda c: c.ecommerce.add_store_product(self.store_id, {"id": product_id, **body}),
        )

    def sync_cart(
        self,
        cart_id: str,
        customer_id: str,
        email: str,
        lines: Sequence[Line],
        total: float,
        *,
        currency: str = "USD",
        opt_in: bool = False,
        checkout_url: str | None = None,
    ) -> dict[str, Any]:
        """Create or update the cart (with its products and customer); Mailchimp's cart."""
        self.sync_products(lines)
        body: dict[str, Any] = {
            "customer": _customer(customer_id, email, opt_in),
            "currency_code": currency,
            "order_total": total,
            "lines": [line.as_body() for line in lines],
        }
        if checkout_url:
            body["checkout_url"] = checkout_url
        cart: dict[str, Any] = self._upsert(
            lambda c: c.ecommerce.update_store_cart(self.store_id, cart_id, body),
            lambda c: c.ecommerce.add_store_cart(self.store_id, {"id": cart_id, **body}),
        )
        return cart

    def sync_order(
        self,
        order_id: str,
        customer_id: str,
        email: str,
        lines: Sequence[Line],
        total: float,
        *,
        currency: str = "USD",
        opt_in: bool = False,
        financial_status: str = "paid",
        processed_at: datetime | None = None,
        cart_id: str | None = None,
    ) -> dict[str, Any]:
        """Create or update the order; then delete ``cart_id``, the cart it converted."""
        self.sync_products(lines)
        body: dict[str, Any] = {
            "customer": _customer(customer_id, email, opt_in),
            "currency_code": currency,
            "order_total": total,
            "financial_status": financial_status,
            "lines": [line.as_body() for line in lines],
        }
        if processed_at is not None:
            body["processed_at_foreign"] = processed_at.isoformat()
        order: dict[str, Any] = self._upsert(
            lambda c: c.ecommerce.update_order(self.store_id, order_id, body),
            lambda c: c.ecommerce.add_store_order(self.store_id, {"id": order_id, **body}),
        )
        if cart_id:
            self.delete_cart(cart_id)
        return order

    def delete_cart(self, cart_id: str) -> None:
        """Remove the cart (cancels its abandoned-cart email); a missing cart is fine."""
        try:
            self.transport.marketing(
                lambda c: c.ecommerce.delete_store_cart(self.store_id, cart_id)
            )
        except MailchimpError as error:
            if error.status != 404:
                raise

    def _upsert(self, update: Callable[[Any], Any], create: Callable[[Any], Any]) -> Any:
        try:
            return self.transport.marketing(update)
        except MailchimpError as error:
            if error.status != 404:
                raise
        return self.transport.marketing(create)


def _customer(customer_id: str, email: str, opt_in: bool) -> dict[str, Any]:
    return {"id": customer_id, "email_address": email, "opt_in_status": opt_in}
