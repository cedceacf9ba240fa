"""Scheduled newsletters and shop activity against the stateful stand-in (every request checked
against the official spec): one regular campaign per issue, sent once whatever is retried, and
carts and orders mirrored into the store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from engine.channels import CustomerActivity, Delivery, DeliveryStatus, Recipient
from integrations.mailchimp.audience import subscriber_hash
from integrations.mailchimp.email import MailchimpEmail, MailchimpNewsletters
from tests.durable.harness import Clock
from tests.mailchimp.conftest import make_provider
from tests.mailchimp.samples import ANN, delivery
from tests.mailchimp.standin import StandIn

T0 = delivery().due_at
BOB = Recipient("c2", email="bob@example.com", first_name="Bob")
CID = Recipient("c3", email="cid@example.com")
NEWSLETTERS = {"weekly-newsletter": {"tag": "weekly"}}
CART = {
    "items": [
        {"product_id": "p1", "name": "Mug", "price": 12.0, "quantity": 2},
        {"product_id": "p2", "name": "Tea", "price": 5.5, "quantity": 1},
    ],
    "value": 29.5,
    "updated_at": T0,
}


def issue(recipient: Recipient) -> Delivery:
    """A delivery of the weekly newsletter's issue due at T0 (the same html for everyone)."""
    base = delivery("weekly-newsletter", recipient)
    fields = {**base.fields, "subject": "This week", "html": "<p>News</p>", "text": "News"}
    fields["html"] += f'<a href="{fields["unsubscribe_url"]}">Unsubscribe</a>'
    return replace(base, key=f"weekly-{recipient.customer_id}:1", fields=fields)


@pytest.fixture
def clock(stand_in: StandIn) -> Clock:
    found = Clock(T0)
    stand_in.clock = found
    return found


def newsletters(stand_in: StandIn, clock: Clock, **settings: Any) -> MailchimpNewsletters:
    provider = make_provider(
        stand_in.url, f"{stand_in.url}/api/1.3", clock, timeout=0.5, newsletters=NEWSLETTERS
    )
    assert isinstance(provider, MailchimpNewsletters)
    return provider


def test_an_issue_is_one_campaign_sent_once_however_often_it_is_delivered(
    stand_in: StandIn, clock: Clock
) -> None:
    provider = newsletters(stand_in, clock)
    world = stand_in.world
    first = provider.deliver_batch([issue(ANN), delivery(), issue(BOB)])
    # the abandoned-cart email goes through Transactional; the issue waits for every tag
    assert [o.status for o in first] == [
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
    ]
    assert first[0].retry_at == first[2].retry_at == T0 + timedelta(minutes=1)
    assert world.sent == {"ann@example.com": 1} and world.campaign_sends == {}
    issue_tag = f"weekly-{T0:%Y%m%d%H%M}"
    for person in (ANN, BOB):
        assert issue_tag in world.tags[subscriber_hash(person.email or "")]

    clock.now = T0 + timedelta(minutes=2)
    again = provider.deliver_batch([issue(ANN), issue(BOB)])
    assert [o.status for o in again] == [DeliveryStatus.DELIVERED] * 2, again
    (campaign,) = world.campaigns.values()
    assert campaign["settings"]["title"] == f"followup weekly-newsletter {T0:%Y%m%d%H%M}"
    assert campaign["settings"]["subject_line"] == "This week"
    assert world.campaign_sends == {campaign["id"]: ["ann@example.com", "bob@example.com"]}
    # the first recipient's own unsubscribe link is not sent to everyone: Mailchimp's instead
    assert "*|UNSUB|*" in campaign["content"]["html"]
    assert "t0k3n" not in campaign["content"]["html"]

    # after a crash the same deliveries come again: recognised as sent, nothing sent twice
    clock.now = T0 + timedelta(minutes=10)
    repeat = provider.deliver_batch([issue(ANN), issue(BOB)])
    assert [o.status for o in repeat] == [DeliveryStatus.DELIVERED] * 2
    assert all(o.provider_id == campaign["id"] for o in repeat)
    # a member tagged only now did not get it, and no second campaign is made for them
    (late,) = provider.deliver_batch([issue(CID)])
    assert late.status is DeliveryStatus.FAILED and late.retry_at is None
    assert "already sent" in late.detail
    assert len(world.campaigns) == 1 and len(world.campaign_sends) == 1


def test_a_campaign_create_that_timed_out_is_found_and_reused(
    stand_in: StandIn, clock: Clock
) -> None:
    provider = newsletters(stand_in, clock)
    stand_in.world.faults[("post /campaigns", "")] = ["hang"]  # created, then no answer
    (first,) = provider.deliver_batch([issue(ANN)])
    assert first.status is DeliveryStatus.FAILED and first.retry_at is not None
    assert len(stand_in.world.campaigns) == 1
    clock.now = max(first.retry_at, T0 + timedelta(minutes=1))
    (second,) = provider.deliver_batch([issue(ANN)])
    assert second.status is DeliveryStatus.DELIVERED, second.detail
    assert len(stand_in.world.campaigns) == 1
    assert list(stand_in.world.campaign_sends.values()) == [["ann@example.com"]]


def test_a_cart_then_an_order_then_the_cart_is_deleted(stand_in: StandIn, clock: Clock) -> None:
    provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock, timeout=0.5)
    assert not isinstance(provider, MailchimpNewsletters)
    assert "Order Completed" in provider.synced_events
    added = CustomerActivity("activity:email:a1", ANN, "Product Added", {}, T0, CART, True)
    outcome = provider.activity(added)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome.detail
    cart = stand_in.world.store["carts/followup-c1"]
    assert cart["customer"] == {"id": "c1", "email_address": ANN.email, "opt_in_status": True}
    assert [(x["product_id"], x["quantity"]) for x in cart["lines"]] == [("p1", 2), ("p2", 1)]
    assert cart["order_total"] == 29.5
    assert provider.activity(added).status is DeliveryStatus.DELIVERED  # again: an update

    order = CustomerActivity(
        "activity:email:o1",
        ANN,
        "Order Completed",
        {"order_id": "o-1", "revenue": 29.5, "currency": "eur", "products": CART["items"]},
        T0,
        {"items": [], "value": 0, "updated_at": T0},
    )
    outcome = provider.activity(order)
    assert outcome.status is DeliveryStatus.DELIVERED, outcome.detail
    world = stand_in.world
    assert world.store["orders/o-1"]["currency_code"] == "EUR"
    assert "carts/followup-c1" not in world.store
    assert [w for w in world.store_writes if "carts" in w or "orders" in w] == [
        "PATCH carts/followup-c1",
        "POST carts/followup-c1",
        "PATCH carts/followup-c1",
        "PATCH orders/o-1",
        "POST orders/o-1",
        "DELETE carts/followup-c1",
    ]


def test_activity_without_an_address_or_a_store(stand_in: StandIn, clock: Clock) -> None:
    provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock, timeout=0.5)
    nobody = CustomerActivity("k", Recipient("c9"), "Cart Viewed", {}, T0, CART)
    outcome = provider.activity(nobody)
    assert outcome.status is DeliveryStatus.FAILED and outcome.retry_at is None
    assert outcome.detail.startswith("no_address:")
    emptied = CustomerActivity("k2", ANN, "Product Removed", {}, T0, {"items": [], "value": 0})
    assert provider.activity(emptied).detail == "cart followup-c1 empty: deleted"
    plain = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock, store_id=None)
    assert isinstance(plain, MailchimpEmail) and plain.synced_events == frozenset()
    assert stand_in.world.store == {}


def test_a_transient_store_failure_is_retried(stand_in: StandIn, clock: Clock) -> None:
    provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock, timeout=0.5)
    stand_in.world.faults[("patch /ecommerce/stores/{store_id}/carts/{cart_id}", "")] = ["500"]
    added = CustomerActivity("activity:email:a1", ANN, "Product Added", {}, T0, CART)
    outcome = provider.activity(added)
    assert outcome.status is DeliveryStatus.FAILED and outcome.retry_at is not None
    assert provider.activity(added).status is DeliveryStatus.DELIVERED


def test_a_cart_create_that_timed_out_is_found_not_made_twice(
    stand_in: StandIn, clock: Clock
) -> None:
    provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock, timeout=0.5)
    stand_in.world.faults[("post /ecommerce/stores/{store_id}/carts", "")] = ["hang"]
    added = CustomerActivity("activity:email:a1", ANN, "Checkout Started", {}, T0, CART)
    first = provider.activity(added)
    assert first.status is DeliveryStatus.FAILED and first.retry_at is not None
    assert provider.activity(added).status is DeliveryStatus.DELIVERED
    carts = [w for w in stand_in.world.store_writes if "carts" in w]
    assert carts == ["PATCH carts/followup-c1", "POST carts/followup-c1", "PATCH carts/followup-c1"]
