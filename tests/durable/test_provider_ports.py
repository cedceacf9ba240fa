"""The dispatcher's optional provider ports, through the durable engine: a provider that keeps
consent gets every consent change exactly once (with the consent as it stands), and a batch
provider gets every due delivery of its channel in one call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.channels import (
    ConsentChange,
    CustomerActivity,
    Delivery,
    DeliveryOutcome,
    DeliveryStatus,
)
from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from tests.durable.harness import Clock, make_project, open_followup, shopper

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


class ConsentKeeper:
    """An email provider that keeps consent on its side, as Mailchimp does (recording)."""

    name = "keeper"
    idempotent = True

    def __init__(self) -> None:
        self.changes: list[ConsentChange] = []
        self.sent: list[str] = []

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        self.sent.append(delivery.key)
        return DeliveryOutcome(DeliveryStatus.DELIVERED)

    def consent_changed(self, change: ConsentChange) -> DeliveryOutcome:
        self.changes.append(change)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, provider_id=change.recipient.email)


class ShopMirror(ConsentKeeper):
    """An email provider that mirrors carts and orders, as Mailchimp's e-commerce API does."""

    synced_events = frozenset({"Product Added", "Order Completed"})

    def __init__(self) -> None:
        super().__init__()
        self.activities: list[CustomerActivity] = []

    def activity(self, activity: CustomerActivity) -> DeliveryOutcome:
        self.activities.append(activity)
        return DeliveryOutcome(DeliveryStatus.DELIVERED)


class AudienceBatcher:
    """An ads provider that takes its deliveries in batches; the first call fails."""

    name = "batcher"
    idempotent = True

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail_next = True

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        return self.deliver_batch([delivery])[0]

    def deliver_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        self.batches.append([d.recipient.email or "" for d in deliveries])
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("reset by peer")
        return [DeliveryOutcome(DeliveryStatus.DELIVERED) for _ in deliveries]


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Followup, Clock]:
    project = make_project(tmp_path, ["abandoned_cart", "welcome_series"])
    clock = Clock(T0)
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    yield followup, clock
    followup.close()


def _rows(followup: Followup, action: str) -> list[tuple[str, str, str]]:
    with followup.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).where(outbox.c.action == action))
        return sorted((r.key, r.status, r.detail or "") for r in rows)


def test_consent_changes_reach_a_provider_that_keeps_consent(
    shop: tuple[Followup, Clock],
) -> None:
    followup, clock = shop
    durable = DurableProject(followup)
    keeper = ConsentKeeper()
    durable.dispatcher.providers = {**durable.dispatcher.providers, "email": keeper}
    durable.runtime.consent_channels = frozenset({"email"})
    followup.identify(
        user_id="ann",
        traits={"email": "ann@example.com", "consent": {"email": True}},
        timestamp=T0,
    )
    followup.track(
        "Unsubscribed",
        user_id="ann",
        properties={"channel": "email"},
        timestamp=T0 + timedelta(minutes=1),
        message_id="unsub-1",
    )
    followup.track("Unsubscribed", user_id="ann", timestamp=T0, message_id="unsub-1")  # again
    clock.now = T0 + timedelta(minutes=1)  # both changes are past: delivered as it stands now
    durable.run_once()
    clock.now = T0 + timedelta(hours=1)
    durable.run_once()

    assert [(c.key, c.granted, c.recipient.email) for c in keeper.changes][-1] == (
        "consent:email:unsub-1",
        False,
        "ann@example.com",
    )
    # one row per change, each delivered once, with the consent as it stands (unsubscribed)
    assert len(keeper.changes) == 2 and not any(c.granted for c in keeper.changes)
    assert [status for _key, status, _ in _rows(followup, "consent")] == ["delivered"] * 2


def test_no_consent_rows_without_a_provider_that_keeps_consent(
    shop: tuple[Followup, Clock],
) -> None:
    followup, _clock = shop
    followup.track("Unsubscribed", user_id="bob", timestamp=T0)
    DurableProject(followup).run_once()
    assert _rows(followup, "consent") == []


def test_a_batch_provider_gets_the_due_deliveries_of_its_channel_together(
    shop: tuple[Followup, Clock],
) -> None:
    followup, clock = shop
    durable = DurableProject(followup)
    batcher = AudienceBatcher()
    durable.dispatcher.providers = {**durable.dispatcher.providers, "ads": batcher}
    for user in ("ann", "bob", "cid"):
        shopper(followup, user, T0)
    durable.run_once()
    clock.now = T0 + timedelta(days=1, hours=2)
    durable.run_once()  # the audience adds are due: one batch, which fails and is retried
    adds = _rows(followup, "audience_add")
    assert len(batcher.batches) == 1 and len(batcher.batches[0]) == len(adds) > 0
    assert {status for _key, status, _ in adds} == {"pending"}
    assert {detail for *_rest, detail in adds} == {"ConnectionResetError: reset by peer"}
    clock.now += timedelta(minutes=2)
    durable.run_once()
    assert len(batcher.batches) == 2 and sorted(batcher.batches[1]) == sorted(batcher.batches[0])
    assert {status for _key, status, _ in _rows(followup, "audience_add")} == {"delivered"}


def test_shop_activity_reaches_a_provider_that_mirrors_it(shop: tuple[Followup, Clock]) -> None:
    followup, clock = shop
    durable = DurableProject(followup)
    mirror = ShopMirror()
    durable.dispatcher.providers = {**durable.dispatcher.providers, "email": mirror}
    durable.runtime.synced_events = {"email": mirror.synced_events}
    followup.identify(
        user_id="ann", traits={"email": "ann@example.com", "consent": {"email": True}}, timestamp=T0
    )
    for n, price in enumerate((30, 12)):
        followup.track(
            "Product Added",
            user_id="ann",
            properties={"product_id": f"p{n}", "price": price},
            timestamp=T0 + timedelta(minutes=n + 1),
            message_id=f"add-{n}",
        )
    followup.track("Page Viewed", user_id="ann", timestamp=T0 + timedelta(minutes=3))
    clock.now = T0 + timedelta(minutes=5)  # a pass takes no event stamped after its time
    durable.run_once()
    followup.track(
        "Order Completed",
        user_id="ann",
        properties={"order_id": "o1", "revenue": 42},
        timestamp=T0 + timedelta(minutes=9),
        message_id="order-1",
    )
    clock.now = T0 + timedelta(hours=1)
    durable.run_once()
    durable.run_once()  # nothing again

    seen = [(a.key, a.event, a.cart["value"], a.opted_in) for a in mirror.activities]
    assert seen == [
        ("activity:email:add-0", "Product Added", 42.0, True),  # the cart as it stands
        ("activity:email:add-1", "Product Added", 42.0, True),
        ("activity:email:order-1", "Order Completed", 0.0, True),  # the order emptied it
    ]
    assert mirror.activities[-1].properties == {"order_id": "o1", "revenue": 42}
    assert [status for _k, status, _d in _rows(followup, "activity")] == ["delivered"] * 3


def test_closing_the_project_closes_the_providers_that_hold_something(
    shop: tuple[Followup, Clock],
) -> None:
    followup, _clock = shop
    durable = DurableProject(followup)
    closed: list[str] = []

    class Holder(ConsentKeeper):
        def close(self) -> None:
            closed.append(self.name)

    durable.dispatcher.providers = {**durable.dispatcher.providers, "email": Holder()}
    durable.close()  # the file providers have nothing to close
    assert closed == ["keeper"]
