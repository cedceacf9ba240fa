"""The report of a backtest (``simulate --report``) is the report of the durable engine
(``followup report``) after it ran the same events: the same journeys, holdout groups, variants,
funnel, touches and credited orders, on SQLite and PostgreSQL. Passes run on the hour and every
event is on the hour, so each send is delivered at the time it was decided."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from tests.durable.harness import (
    HELLO_CAMPAIGN,
    Clock,
    one_campaign_project,
    replay_when_due,
    write_messages,
)
from tests.durable.shop import CART, PROMO, T0, messages
from tests.e2e.cli import run_followup

CONFIG = """\
reports:
  model: {model}
  windows: {{email: 3d, ads: 1d}}
"""


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
        events = write_messages(folder / "events.jsonl", messages(40, seed=7))
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


def test_a_send_skipped_at_delivery_counts_as_skipped(database_url: str, tmp_path: Path) -> None:
    """REPORTS.md: ``skipped`` counts the sends skipped, by reason. A welcome decided ``sent``
    for a month ago and settled ``skipped`` at delivery (``policies.max_delay``) is no touch
    and was in no count: the funnel called it sent."""
    folder = one_campaign_project(tmp_path, HELLO_CAMPAIGN, {"hello.html": "<p>Hello</p>\n"})
    clock = Clock(T0 + timedelta(days=30))
    config = ProjectConfig.model_validate(
        {"database_url": database_url, "policies": {"max_delay": {"email": "2d"}}}
    )
    followup = Followup(Project(config, folder), clock)
    try:
        traits = {"email": "ann@example.com", "consent": {"email": True}}
        followup.identify(user_id="ann", traits=traits, timestamp=T0)
        followup.track("Subscribed", user_id="ann", properties={"list": "n"}, timestamp=T0)
        durable = DurableProject(followup)
        durable.run_once()
        durable.close()
        live = run_followup(
            folder, "report", "--format", "json", env={"FOLLOWUP_DATABASE_URL": database_url}
        )
    finally:
        followup.close()
    assert live.returncode == 0, live.stderr
    [hello] = orjson.loads(live.stdout)["campaigns"]
    assert (hello["touches"], hello["skipped"]) == ({}, {"stale": 1})
    assert hello["steps"] == [
        {"step": "0", "reached": 1, "sent": 0, "skipped": {"stale": 1}, "exited": 0}
    ]
