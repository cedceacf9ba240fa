"""A sample customer and email delivery, as the dispatcher hands them to a provider."""

from __future__ import annotations

from engine.channels import Delivery, DeliveryAction, Recipient
from tests.conftest import FIXED_NOW

ANN = Recipient("c1", email="ann@example.com", first_name="Ann", last_name="Lee")


def delivery(campaign: str = "abandoned-cart", recipient: Recipient = ANN) -> Delivery:
    return Delivery(
        key=f"{campaign}-j1:1",
        campaign=campaign,
        journey=f"{campaign}-j1",
        step="1",
        channel="email",
        action=DeliveryAction.SEND,
        due_at=FIXED_NOW,
        recipient=recipient,
        fields={
            "subject": "You left something behind",
            "html": "<p>Your cart</p>",
            "text": "Your cart",
            "from": "Shop <shop@example.com>",
            "reply_to": "help@example.com",
            "tags": ["cart", "reminder"],
            "unsubscribe_url": "https://shop.example.com/unsubscribe/t0k3n",
        },
    )
