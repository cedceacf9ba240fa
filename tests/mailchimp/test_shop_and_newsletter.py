"""End to end through the real ``DurableProject`` and ``OutboxDispatcher``, with the example
campaigns ``weekly_newsletter`` (a schedule) and ``abandoned_cart``: the Monday tick becomes one
regular campaign sent to the tagged members, and the shop events become cart and order calls at
the stand-in, each exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from tests.durable.harness import Clock, make_project, open_followup
from tests.mailchimp.conftest import make_provider
from tests.mailchimp.standin import StandIn

START = datetime(2024, 5, 6, 6, 30, tzinfo=UTC)  # a Monday; the newsletter is due 09:00 Paris
TICK = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)
PEOPLE = ("ann", "bob", "cid")


@pytest.fixture
def shop(tmp_path: Path, stand_in: StandIn) -> Iterator[tuple[Followup, DurableProject, Clock]]:
    clock = Clock(START)
    stand_in.clock = clock
    project = make_project(tmp_path, ["weekly_newsletter", "abandoned_cart"])
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    durable = DurableProject(followup)
    provider = make_provider(
        stand_in.url,
        f"{stand_in.url}/api/1.3",
        clock=clock,
        timeout=0.5,
        newsletters={"weekly-newsletter": {"tag": "weekly"}},
    )
    durable.dispatcher.providers = {**durable.dispatcher.providers, "email": provider}
    durable.runtime.synced_events = {"email": provider.synced_events}
    yield followup, durable, clock
    followup.close()


def _statuses(followup: Followup, **where: str) -> Counter[str]:
    query = sa.select(outbox.c.status).where(
        *(getattr(outbox.c, key) == value for key, value in where.items())
    )
    with followup.engine.connect() as conn:
        return Counter(conn.scalars(query))


def test_a_newsletter_issue_and_shop_activity_reach_mailchimp_once(
    shop: tuple[Followup, DurableProject, Clock], stand_in: StandIn
) -> None:
    followup, durable, clock = shop
    world = stand_in.world
    for name in PEOPLE:
        followup.identify(
            user_id=name,
            traits={"email": f"{name}@example.com", "first_name": name, "consent": {"email": True}},
            timestamp=START,
        )
    for name, product in (("ann", "p1"), ("bob", "p2")):
        followup.track(
            "Product Added",
            user_id=name,
            properties={"product_id": product, "name": "Mug", "price": 30, "quantity": 1},
            timestamp=START + timedelta(minutes=1),
        )
    clock.now = START + timedelta(minutes=1)
    durable.run_once()  # both carts synced; the newsletter's first tick recorded: 07:00 UTC
    followup.track(
        "Product Removed",
        user_id="bob",
        properties={"product_id": "p2"},
        timestamp=START + timedelta(minutes=2),
    )
    followup.track(
        "Order Completed",
        user_id="ann",
        properties={"order_id": "o-1", "revenue": 30, "products": [{"product_id": "p1"}]},
        timestamp=START + timedelta(minutes=5),
    )
    clock.now = TICK + timedelta(seconds=30)
    durable.run_once()  # the issue's members are tagged; its campaign waits a minute
    assert world.campaign_sends == {}
    for minutes in (3, 10):
        clock.now = TICK + timedelta(minutes=minutes)
        durable.run_once()

    # one regular campaign, sent once, to the three tagged members
    (campaign,) = world.campaigns.values()
    assert campaign["settings"]["title"] == "followup weekly-newsletter 202405060700"
    assert world.campaign_sends == {campaign["id"]: [f"{name}@example.com" for name in PEOPLE]}
    newsletter = _statuses(followup, campaign_id="weekly-newsletter")
    assert newsletter == Counter({"delivered": 3})
    assert world.sent == Counter()  # nothing of it through Transactional

    # each shop event once: ann's cart, then her order (which deletes it); bob's emptied cart
    assert _statuses(followup, action="activity") == Counter({"delivered": 4})
    ann, bob = (f"carts/followup-{followup.customer_id(name)}" for name in ("ann", "bob"))
    writes = [w for w in world.store_writes if "carts" in w or "orders" in w]
    assert writes[:4] == [f"PATCH {ann}", f"POST {ann}", f"PATCH {bob}", f"POST {bob}"]
    assert sorted(writes[4:]) == sorted(
        [f"DELETE {bob}", "PATCH orders/o-1", "POST orders/o-1", f"DELETE {ann}"]
    )
    assert writes.index("POST orders/o-1") < writes.index(f"DELETE {ann}")
    assert world.store.keys() >= {"orders/o-1"}
    assert not any(key.startswith("carts/") for key in world.store)


def test_the_impersonal_newsletter_template_is_the_issue_every_member_gets(
    tmp_path: Path, stand_in: StandIn
) -> None:
    clock = Clock(START)
    stand_in.clock = clock
    project = make_project(tmp_path, ["weekly_newsletter"])
    campaign_file = project / "campaigns" / "weekly_newsletter.yaml"
    text = campaign_file.read_text()
    campaign_file.write_text(text.replace("newsletter.html", "newsletter_list.html"))
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        durable = DurableProject(followup)
        provider = make_provider(
            stand_in.url,
            f"{stand_in.url}/api/1.3",
            clock=clock,
            timeout=0.5,
            newsletters={"weekly-newsletter": {"tag": "weekly"}},
        )
        durable.dispatcher.providers = {**durable.dispatcher.providers, "email": provider}
        for name in PEOPLE:
            followup.identify(
                user_id=name,
                traits={
                    "email": f"{name}@example.com",
                    "first_name": name.title(),
                    "consent": {"email": True},
                },
                timestamp=START,
            )
        for now in (START, TICK + timedelta(seconds=30), TICK + timedelta(minutes=3)):
            clock.now = now
            durable.run_once()
    finally:
        followup.close()
    (campaign,) = stand_in.world.campaigns.values()
    assert stand_in.world.campaign_sends == {
        campaign["id"]: [f"{name}@example.com" for name in PEOPLE]
    }
    html = campaign["content"]["html"]
    assert "<p>Hello,</p>" in html
    assert "(06 May 2024)" in html  # the issue's date, the same for everyone
    assert '<a href="*|UNSUB|*"' in html  # Mailchimp's own unsubscribe link
    assert "/unsubscribe/" not in html  # no member's personal link
    assert not any(name.title() in html for name in PEOPLE)
    assert "*|UNSUB|*" in campaign["content"]["plain_text"]
