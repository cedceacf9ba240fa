"""Frequency caps count the sends before the time being decided, whatever the pass's clock: a
replay run long after its events (``followup tick --now`` a year on) decides what simulate plans.
The cap history used to be read 400 days back from the pass's clock, so a replay a year after
its events forgot every send of the earlier batches and sent each one again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    plan_lines,
    simulated_plan,
    write_messages,
)

T0 = datetime(2022, 3, 7, 9, 0, tzinfo=UTC)
POLICIES = {"frequency_caps": {"email": [{"max": 1, "per": "30d"}]}}
CAMPAIGN = """\
campaign: viewed
trigger: {event: Product Viewed}
audience: customer.email and customer.consent.email
steps:
  - send: email
    template: welcome.html
    subject: Still looking?
"""


def _events(path: Path) -> Path:
    """Two customers viewing a product every week for ten weeks."""
    lines: list[dict[str, Any]] = []
    for user in ("ann", "bob"):
        traits = {"email": f"{user}@example.com", "consent": {"email": True}}
        lines.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-i",
                "traits": traits,
                "timestamp": T0.isoformat(),
            }
        )
        for week in range(10):
            at = T0 + timedelta(weeks=week, hours=1)
            lines.append(
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "userId": user,
                    "messageId": f"{user}-{week}",
                    "timestamp": at.isoformat(),
                    "properties": {"product_id": "boots"},
                }
            )
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def test_a_replay_long_after_its_events_keeps_the_caps_simulate_keeps(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "viewed.yaml").write_text(CAMPAIGN)
    events = _events(tmp_path / "events.jsonl")
    config = ProjectConfig(database_url=f"sqlite:///{tmp_path / 'f.db'}", policies=POLICIES)
    clock = Clock(T0 + timedelta(days=800))  # the replay runs two years after its events
    followup = Followup(Project(config, project), clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        durable.runtime.batch_size = 4  # the history spans batches, as in any long replay
        durable.run_once()
        decided = decision_lines(followup.engine)
    finally:
        followup.close()

    campaigns = load_campaigns([project / "campaigns"]).require().values()
    accepted = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
    planned = plan_lines(plan_text(simulate(campaigns, accepted, config)))
    assert sum(" sent " in line for line in planned) == 4  # weeks 0 and 5 of each customer
    assert decided == planned


CART_THEN_WELCOME = {
    "cart.yaml": """\
campaign: cart
trigger: {event: Product Added}
steps:
  - wait: 1h
  - send: email
    template: welcome.html
    subject: Your cart
""",
    "welcome.yaml": """\
campaign: welcome
trigger: {event: Subscribed}
steps:
  - send: email
    template: welcome.html
    subject: Welcome
""",
}


def test_a_send_skipped_at_delivery_still_counts_for_the_caps(
    database_url: str, tmp_path: Path
) -> None:
    """A pass run late decides the 10:00 cart email ``sent``; at delivery the unsubscribe of
    10:30 skips it. Ann subscribes again at 13:00: the welcome is over the daily cap, as in
    simulate, where the cart email was decided (the cap history left out every row skipped at
    delivery, and the welcome went out)."""
    project = make_project(tmp_path / "project", [])
    for name, text in CART_THEN_WELCOME.items():
        (project / "campaigns" / name).write_text(text)
    policies = {"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}}
    config = ProjectConfig(database_url=database_url, policies=policies)
    at = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    traits = {"email": "ann@example.com", "consent": {"email": True}}
    email = {"channel": "email"}
    batches = [
        [message("i", "identify", at, **traits)],
        [
            message("p", "Product Added", at + timedelta(hours=1), price=10),
            message("u", "Unsubscribed", at + timedelta(hours=2, minutes=30), **email),
        ],
        [message("s", "Subscribed", at + timedelta(hours=5), **email)],
    ]
    passes = [at, at + timedelta(hours=4), at + timedelta(hours=5, minutes=5)]
    clock = Clock(at)
    followup = Followup(Project(config, project), clock)
    try:
        durable = DurableProject(followup)
        for number, (batch, now) in enumerate(zip(batches, passes, strict=True)):
            ingest_file(followup, write_messages(tmp_path / f"b{number}.jsonl", batch))
            clock.now = now
            durable.run_once()
        durable.close()
        decided = decision_lines(followup.engine)
    finally:
        followup.close()
    everything = write_messages(tmp_path / "all.jsonl", [m for b in batches for m in b])
    planned = simulated_plan(project, everything, config)
    assert [line.split()[5:] for line in planned if " send " in line] == [
        ["send", "sent", "None"],
        ["send", "skipped", "frequency_cap"],
    ]
    assert decided == planned
