"""Audience deliveries for the tests, and the rows Meta should receive for them (computed here
with hashlib, apart from the provider's own hashing)."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.channels import Delivery, DeliveryAction, Recipient
from tests.facebook.graph import sha

DUE = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
JANE = Recipient(
    "cust-jane",
    email=" Jane.Doe@Example.com",
    phone="+1 (415) 555-0100",
    first_name="Jane",
    last_name="Doe",
)
JANE_ROW = [
    "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d",
    "5e7ec4c79ccac6e420876e65ad0e6b4b2ccf73ec3dccb50297bf2890a1ec73b9",
    "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2",
    "799ef92a11af918e3fb741df42934f3b568ed2d93ac1df74f1b8d41a27932a6f",
    "",
    "",
    "",
    "",
    "cust-jane",
]


def person(n: int) -> Recipient:
    """Customer ``n``: an email in mixed case and a first name."""
    return Recipient(f"c{n}", email=f"User{n}@Example.com", first_name=f"Ann{n}")


def row(n: int) -> list[str]:
    """Customer ``n``'s payload row (names keep letters only: ``Ann7`` is ``ann``)."""
    return [sha(f"user{n}@example.com"), "", sha("ann"), "", "", "", "", "", f"c{n}"]


def audience_change(
    recipient: Recipient,
    audience: str = "cart-abandoners",
    action: DeliveryAction = DeliveryAction.AUDIENCE_ADD,
    key: str | None = None,
) -> Delivery:
    """An ``ads`` delivery of ``recipient`` to ``audience``."""
    return Delivery(
        key=key or f"j_{recipient.customer_id}:{action.value}:{audience}",
        campaign="abandoned_cart",
        journey=f"j_{recipient.customer_id}",
        step="3",
        channel="ads",
        action=action,
        due_at=DUE,
        recipient=recipient,
        fields={"audience": audience},
    )
