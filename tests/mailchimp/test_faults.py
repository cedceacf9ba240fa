"""The provider against the stateful stand-in (every request validated against the official
specs): what reaches "Mailchimp", and how each fault ends: delivered once, failed with its reason
(retried at Retry-After or a backoff), or unknown where the message may have gone. Never lost,
never doubled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from engine.channels import ConsentChange, Delivery, DeliveryOutcome, DeliveryStatus, Recipient
from integrations.mailchimp import Line, mailchimp_commerce, subscriber_hash
from integrations.mailchimp.email import MailchimpEmail
from tests.conftest import FIXED_NOW
from tests.mailchimp.conftest import MARKETING_KEY, TRANSACTIONAL_KEY, make_provider
from tests.mailchimp.prism import free_port
from tests.mailchimp.samples import ANN, delivery
from tests.mailchimp.standin import RETRY_AFTER_SECONDS, StandIn


def provider_for(stand_in: StandIn, **settings: object) -> MailchimpEmail:
    url = stand_in.url
    return make_provider(url, f"{url}/api/1.3", timeout=0.5, **settings)


def no_secret(outcome: DeliveryOutcome) -> None:
    assert MARKETING_KEY not in outcome.detail and TRANSACTIONAL_KEY not in outcome.detail


def test_a_send_upserts_the_member_and_sends_the_rendered_message(stand_in: StandIn) -> None:
    provider = provider_for(stand_in, marketing_permission_id="perm-1")
    outcome = provider.deliver(delivery())
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.provider_id == "m1"
    member = stand_in.world.members[subscriber_hash("ann@example.com")]
    assert member["status"] == "subscribed" and member["status_if_new"] == "subscribed"
    assert "status" not in member or member["status"] == member["status_if_new"]
    assert member["merge_fields"] == {"FNAME": "Ann", "LNAME": "Lee"}
    assert member["marketing_permissions"] == [
        {"marketing_permission_id": "perm-1", "enabled": True}
    ]
    assert stand_in.world.tags[subscriber_hash("ann@example.com")] == {"cart", "reminder"}
    [message] = stand_in.world.messages
    assert message["to"] == [{"email": "ann@example.com", "type": "to", "name": "Ann Lee"}]
    assert (message["from_email"], message["from_name"]) == ("shop@example.com", "Shop")
    assert message["subject"] == "You left something behind"
    assert (message["html"], message["text"]) == ("<p>Your cart</p>", "Your cart")
    assert message["headers"] == {
        "X-Followup-Key": "abandoned-cart-j1:1",
        "Reply-To": "help@example.com",
        "List-Unsubscribe": "<https://shop.example.com/unsubscribe/t0k3n>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert message["tags"] == ["cart", "reminder"]
    assert message["metadata"] == {
        "followup_key": "abandoned-cart-j1:1",
        "campaign": "abandoned-cart",
    }


def test_a_mapped_campaign_triggers_the_journey_instead_of_sending(stand_in: StandIn) -> None:
    outcome = provider_for(stand_in).deliver(delivery("win-back"))
    assert outcome.status is DeliveryStatus.DELIVERED
    assert stand_in.world.triggers == {"ann@example.com": 1} and not stand_in.world.sent
    assert subscriber_hash("ann@example.com") in stand_in.world.members  # upserted first


# (operation, fault, expected status, retry delay or None, sent, detail start)
FAULTS = [
    ("send", "429", DeliveryStatus.FAILED, RETRY_AFTER_SECONDS, 0, "429 RequestLimitExceeded"),
    ("member", "429", DeliveryStatus.FAILED, RETRY_AFTER_SECONDS, 0, "429 Too Many Requests"),
    ("member", "429-bare", DeliveryStatus.FAILED, RETRY_AFTER_SECONDS, 0, "429 Too Many"),
    ("send", "500", DeliveryStatus.FAILED, 30, 0, "500 GeneralError: refused"),
    ("member", "500", DeliveryStatus.FAILED, 30, 0, "500 Internal Server Error"),
    ("member", "hang", DeliveryStatus.FAILED, 30, 0, "no answer"),
    ("member", "reset", DeliveryStatus.FAILED, 30, 0, "no answer"),
    ("send", "hang", DeliveryStatus.UNKNOWN, None, 1, "no answer after the request was sent"),
    ("send", "reset", DeliveryStatus.UNKNOWN, None, 0, "no answer after the request was sent"),
    ("trigger", "hang", DeliveryStatus.UNKNOWN, None, 0, "no answer after the request was sent"),
    ("member", "400", DeliveryStatus.FAILED, None, 0, "400 Invalid Resource: Your merge fields"),
    ("send", "400", DeliveryStatus.FAILED, None, 0, "400 ValidationError: refused"),
]


@pytest.mark.parametrize(("operation", "fault", "status", "delay", "sent", "detail"), FAULTS)
def test_each_fault_ends_retried_failed_or_unknown_never_doubled(
    stand_in: StandIn,
    operation: str,
    fault: str,
    status: DeliveryStatus,
    delay: int | None,
    sent: int,
    detail: str,
) -> None:
    provider = provider_for(stand_in)
    stand_in.world.faults[(operation, "ann@example.com")] = [fault]
    campaign = "win-back" if operation == "trigger" else "abandoned-cart"
    outcome = provider.deliver(delivery(campaign))
    assert outcome.status is status, outcome.detail
    assert outcome.detail.startswith(detail), outcome.detail
    no_secret(outcome)
    assert outcome.retry_at == (None if delay is None else FIXED_NOW + timedelta(seconds=delay))
    assert stand_in.world.sent["ann@example.com"] == sent
    if outcome.retry_at is not None:  # the dispatcher's retry, once the fault has passed
        again = provider.deliver(delivery(campaign))
        assert again.status is DeliveryStatus.DELIVERED, again.detail
        assert stand_in.world.sent["ann@example.com"] == 1


def test_repeated_server_errors_back_off_further_each_time(stand_in: StandIn) -> None:
    provider = provider_for(stand_in)
    stand_in.world.faults[("send", "ann@example.com")] = ["500", "500", "500"]
    delays = [provider.deliver(delivery()).retry_at for _ in range(3)]
    assert delays == [FIXED_NOW + timedelta(seconds=s) for s in (30, 60, 120)]
    assert provider.deliver(delivery()).status is DeliveryStatus.DELIVERED
    assert stand_in.world.sent["ann@example.com"] == 1


def test_a_recipient_on_the_rejection_list_is_skipped_as_suppressed(stand_in: StandIn) -> None:
    stand_in.world.bounced.add("ann@example.com")
    outcome = provider_for(stand_in).deliver(delivery())
    assert (outcome.status, outcome.detail, outcome.retry_at) == (
        DeliveryStatus.SKIPPED,
        "suppressed: rejected: hard-bounce",
        None,
    )


def test_connection_refused_is_retried_as_nothing_was_sent() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    provider = make_provider(closed, f"{closed}/api/1.3", timeout=0.5)
    outcome = provider.deliver(delivery())
    assert outcome.status is DeliveryStatus.FAILED and outcome.detail.startswith("cannot connect")
    assert outcome.retry_at == FIXED_NOW + timedelta(seconds=30)
    check = provider.check()
    assert not check.ok and "cannot connect" in check.detail
    assert MARKETING_KEY not in check.detail and TRANSACTIONAL_KEY not in check.detail


def test_no_more_than_ten_connections_at_once(stand_in: StandIn) -> None:
    provider = provider_for(stand_in)
    stand_in.world.delay = 0.05
    people = [Recipient(f"c{i}", email=f"p{i}@example.com") for i in range(30)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        outcomes = list(pool.map(lambda r: provider.deliver(delivery(recipient=r)), people))
    assert {o.status for o in outcomes} == {DeliveryStatus.DELIVERED}, {o.detail for o in outcomes}
    assert stand_in.world.sent == {p.email: 1 for p in people}
    assert 1 < stand_in.world.most_in_flight <= 10


def test_consent_changes_set_the_member_status_idempotently(stand_in: StandIn) -> None:
    provider = provider_for(stand_in, marketing_permission_id="perm-1")
    member_id = subscriber_hash("ann@example.com")
    for granted, status in ((False, "unsubscribed"), (False, "unsubscribed"), (True, "subscribed")):
        change = ConsentChange(f"consent:{granted}", ANN, "email", granted, FIXED_NOW)
        outcome = provider.consent_changed(change)
        assert (outcome.status, outcome.detail) == (DeliveryStatus.DELIVERED, f"member {status}")
        member = stand_in.world.members[member_id]
        assert member["status"] == status
        assert member["marketing_permissions"][0]["enabled"] is granted
    assert list(stand_in.world.members) == [member_id] and not stand_in.world.sent
    stand_in.world.faults[("member", "ann@example.com")] = ["hang"]
    change = ConsentChange("consent:late", ANN, "email", False, FIXED_NOW)
    assert provider.consent_changed(change).retry_at is not None  # a PUT is safe to repeat


def test_a_double_opt_in_audience_gets_pending(stand_in: StandIn) -> None:
    provider = provider_for(stand_in, status_if_new="pending")
    provider.consent_changed(ConsentChange("k", ANN, "email", True, FIXED_NOW))
    assert stand_in.world.members[subscriber_hash("ann@example.com")]["status"] == "pending"


def test_carts_and_orders_are_upserted_and_an_order_removes_its_cart(stand_in: StandIn) -> None:
    commerce = mailchimp_commerce(provider_for(stand_in))
    lines = [Line("l1", "p1", 2, 19.5, "Mug")]
    commerce.sync_cart(
        "cart-1", "c1", "ann@example.com", lines, 39.0, checkout_url="https://x.io/c"
    )
    commerce.sync_cart("cart-1", "c1", "ann@example.com", lines, 42.0)
    assert stand_in.world.store["carts/cart-1"]["order_total"] == 42.0
    commerce.sync_order("order-1", "c1", "ann@example.com", lines, 42.0, cart_id="cart-1")
    assert stand_in.world.store_writes == [
        "PATCH products/p1",
        "POST products/p1",
        "PATCH carts/cart-1",
        "POST carts/cart-1",
        "PATCH products/p1",
        "PATCH carts/cart-1",
        "PATCH products/p1",
        "PATCH orders/order-1",
        "POST orders/order-1",
        "DELETE carts/cart-1",
    ]
    assert "carts/cart-1" not in stand_in.world.store
    order = stand_in.world.store["orders/order-1"]
    assert order["customer"] == {
        "id": "c1",
        "email_address": "ann@example.com",
        "opt_in_status": False,
    }
    assert order["lines"] == [
        {"id": "l1", "product_id": "p1", "product_variant_id": "p1", "quantity": 2, "price": 19.5}
    ]


def test_a_delivery_without_address_or_body_fails_without_a_call(stand_in: StandIn) -> None:
    provider = provider_for(stand_in)
    nobody = delivery(recipient=Recipient("c9"))
    assert provider.deliver(nobody).detail.startswith("no_address")
    bodiless = Delivery(**{**_fields(delivery()), "fields": {"subject": "x"}})
    assert provider.deliver(bodiless).detail == "no body: neither text nor html"
    assert not stand_in.world.members


def _fields(d: Delivery) -> dict[str, object]:
    return {name: getattr(d, name) for name in Delivery.__slots__}
