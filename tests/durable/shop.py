"""A small shop's month on the durable engine, for the dashboard's browser tests: shoppers who
add to the cart, subscribe and order on the web or in the store, three campaigns (an abandoned
cart with a holdout, a promo with an A/B split, a thank-you after an order), all run through
``DurableProject`` as the events arrive (as tests/durable/test_report_same_as_backtest.py does)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from tests.durable.harness import Clock, one_campaign_project, replay_when_due, write_messages

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
END = T0 + timedelta(days=12)
CART = """\
campaign: cart
trigger: {event: Product Added}
holdout: 30%
goal: {event: Order Completed, within: 3d, value: event.properties.revenue}
exit: [{event: Order Completed}]
steps:
  - wait: 1h
  - send: email
    template: plain.html
    subject: Your cart
  - wait: 1d
  - send: ads
    audience: carts
"""
PROMO = """\
campaign: promo
trigger: {event: Subscribed}
goal: {event: Order Completed, within: 7d, value: event.properties.revenue}
steps:
  - split:
      - name: a
        weight: 50%
        steps:
          - send: email
            template: plain.html
            subject: Ten percent off
      - name: b
        weight: 50%
        steps:
          - wait: 2h
          - send: email
            template: plain.html
            subject: Free shipping
"""
THANKS = """\
campaign: thanks
trigger: {event: Order Completed}
steps:
  - wait: 2h
  - send: email
    template: plain.html
    subject: Thank you
"""
CONFIG = "reports:\n  windows: {email: 3d, ads: 1d}\n"


def _track(user: str, name: str, at: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{name}-{at}",
        "timestamp": at,
        "properties": properties,
    }


def messages(shoppers: int = 60, seed: int = 11) -> list[dict[str, Any]]:
    """Shoppers over the first days: most add to the cart, some subscribe, many order (a third
    of them in the store), on whole hours; one in ten gave no email consent."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    for n in range(shoppers):
        user = f"u{n:02d}"
        start = T0 + timedelta(hours=rng.randrange(0, 24 * 6))

        def at(hours: int, start: datetime = start) -> str:
            return (start + timedelta(hours=hours)).isoformat()

        consent = {"email": rng.random() < 0.9, "ads": True}
        found.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-id",
                "timestamp": at(0),
                "traits": {
                    "email": f"{user}@example.com",
                    "first_name": f"Shopper {n}",
                    "consent": consent,
                },
            }
        )
        if rng.random() < 0.8:
            found.append(_track(user, "Product Added", at(1), {"product_id": "p", "price": 40}))
        if rng.random() < 0.5:
            found.append(_track(user, "Subscribed", at(2), {"list": "newsletter"}))
        if rng.random() < 0.6:
            revenue = rng.choice((24.5, 39.9, 80.0))
            order = _track(user, "Order Completed", at(rng.randrange(3, 60)), {"revenue": revenue})
            if rng.random() < 0.35:
                order["context"] = {"channel": "pos"}
            found.append(order)
    return found


def run_shop(folder: Path) -> tuple[Followup, Clock]:
    """The shop's project in ``folder`` on SQLite, its events run through the durable engine up
    to :data:`END`; the engine (to close) and its clock, left at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    one_campaign_project(folder, CART, {"plain.html": "<p>Hello {{ customer.first_name }}</p>\n"})
    (folder / "campaigns" / "promo.yaml").write_text(PROMO)
    (folder / "campaigns" / "thanks.yaml").write_text(THANKS)
    (folder / "followup.yaml").write_text(CONFIG)
    events = write_messages(folder / "events.jsonl", messages())
    clock = Clock(T0)
    config = ProjectConfig.model_validate(
        {
            "database_url": f"sqlite:///{folder / 'followup.db'}",
            "reports": {"windows": {"email": "3d", "ads": "1d"}},
        }
    )
    followup = Followup(Project(config, folder), clock)
    replay_when_due(DurableProject(followup), clock, events, END)
    return followup, clock
