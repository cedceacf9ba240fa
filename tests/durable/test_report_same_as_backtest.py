"""The report of a backtest (``simulate --report``) is the report of the durable engine
(``followup report``) after it ran the same events: the same journeys, holdout groups, variants,
funnel, touches and credited orders, on SQLite and PostgreSQL. Passes run on the hour and every
event is on the hour, so each send is delivered at the time it was decided."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from tests.durable.harness import Clock, one_campaign_project, replay_when_due, write_messages
from tests.e2e.cli import run_followup

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
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
CONFIG = """\
reports:
  model: {model}
  windows: {{email: 3d, ads: 1d}}
"""


def _messages(seed: int = 7) -> list[dict[str, Any]]:
    """40 shoppers: most add to the cart, some subscribe, many order, online or in the store,
    at whole hours."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    for n in range(40):
        user = f"u{n:02d}"
        start = T0 + timedelta(hours=rng.randrange(0, 48))

        def at(hours: int, start: datetime = start) -> str:
            return (start + timedelta(hours=hours)).isoformat()

        found.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-id",
                "timestamp": at(0),
                "traits": {"email": f"{user}@example.com", "consent": {"email": True, "ads": True}},
            }
        )
        if rng.random() < 0.8:
            found.append(_track(user, "Product Added", at(1), {"product_id": "p", "price": 40}))
        if rng.random() < 0.5:
            found.append(_track(user, "Subscribed", at(2), {"list": "newsletter"}))
        if rng.random() < 0.6:
            source = "pos" if rng.random() < 0.3 else "web"
            order = _track(user, "Order Completed", at(rng.randrange(3, 60)), {"revenue": 24.5})
            order["context"] = {"channel": source} if source == "pos" else {}
            found.append(order)
    return found


def _track(user: str, name: str, at: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{name}-{at}",
        "timestamp": at,
        "properties": properties,
    }


def _project(folder: Path, model: str) -> Path:
    folder.mkdir(parents=True)
    one_campaign_project(folder, CART, {"plain.html": "<p>Hello</p>\n"})
    (folder / "campaigns" / "promo.yaml").write_text(PROMO)
    (folder / "followup.yaml").write_text(CONFIG.format(model=model))
    return folder


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_the_backtest_report_is_the_live_report(database_url: str, tmp_path: Path) -> None:
    for model in ("last_touch", "linear"):
        folder = _project(tmp_path / model, model)
        events = write_messages(folder / "events.jsonl", _messages())
        end = T0 + timedelta(days=10)
        backtest = run_followup(
            folder,
            "simulate",
            "--events",
            str(events),
            "--until",
            end.isoformat(),
            "--report",
            "backtest.json",
        )
        assert backtest.returncode == 0, backtest.stderr
        expected = orjson.loads((folder / "backtest.json").read_bytes())

        clock = Clock(T0)
        url = database_url if model == "last_touch" else f"sqlite:///{folder / 'f.db'}"
        config = ProjectConfig.model_validate(
            {
                "database_url": url,
                "reports": {"model": model, "windows": {"email": "3d", "ads": "1d"}},
            }
        )
        followup = Followup(Project(config, folder), clock)
        try:
            durable = DurableProject(followup)
            replay_when_due(durable, clock, events, end)
            live = run_followup(
                folder, "report", "--format", "json", env={"FOLLOWUP_DATABASE_URL": url}
            )
        finally:
            followup.close()
        assert live.returncode == 0, live.stderr
        found = orjson.loads(live.stdout)

        assert _rounded(found) == _rounded(expected)
        cart = next(c for c in found["campaigns"] if c["campaign"] == "cart")
        assert cart["held_out"] > 0 and cart["holdout"] is not None
        assert found["orders"]["by_source"]["pos"]["count"] > 0
        assert 0 < found["orders"]["attributed_count"] < found["orders"]["count"]
        promo = next(c for c in found["campaigns"] if c["campaign"] == "promo")
        assert {row["variant"] for row in promo["variants"]["0"]} == {"a", "b"}
