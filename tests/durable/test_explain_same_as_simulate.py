"""``explain`` reads the same model from both stores: the live engine's tables after passes as the
events arrive, and a simulation of the same events. For every customer, the decisions (refused
entries included), the profiles merged in, the journeys with their next timers and the events
seen are the same; only the outcomes differ (a simulation delivers nothing), and when a journey
was last written (a pass's time, against its last decision)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig, load_project
from engine.drive.explanation import Explanation, explain_customer
from engine.durable.project import DurableProject
from engine.durable.sql_reads import SqlExplainReads
from engine.events import Event
from engine.ingest.jsonl import read_jsonl
from engine.journeys.simulate_explain import explain_simulated
from engine.storage.tables import customers
from tests.durable import shop
from tests.durable.harness import (
    STORIES,
    Clock,
    make_project,
    replay_when_due,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _comparable(explanation: Explanation) -> dict[str, Any]:
    """What both stores must agree on."""
    return {
        "merged": explanation.merged_ids,
        "decisions": [
            (
                d.at,
                d.campaign_id,
                d.journey_id,
                d.customer_id,
                d.action,
                d.step,
                d.channel,
                d.status,
                d.reason,
                dict(d.fields),
            )
            for d in explanation.decisions
        ],
        "journeys": [
            (j.id, j.campaign_id, j.version, j.status, j.entered_at, j.next_due_at)
            for j in explanation.journeys
        ],
        "events": dict(explanation.events),
        "pending": explanation.pending_events,
    }


def _stories(folder: Path) -> tuple[Followup, Path, datetime]:
    """The example campaigns over the customer stories, replayed live a week past the last."""
    make_project(folder)
    events = STORIES / "events.jsonl"
    end = max(e.timestamp for e in _events(events)) + timedelta(days=7)
    clock = Clock(end)
    config = ProjectConfig(database_url=f"sqlite:///{folder / 'followup.db'}")
    followup = Followup(Project(config, folder), clock)
    replay_when_due(DurableProject(followup), clock, events, end)
    return followup, events, end


def message(message_id: str, kind: str, at: str, **fields: Any) -> dict[str, Any]:
    """A Segment message of type ``kind`` at ``at``."""
    return {"type": kind, "messageId": message_id, "timestamp": at, **fields}


def _merges(folder: Path) -> tuple[Followup, Path, datetime]:
    """Profiles merged (an anonymous shopper who signs in), entries refused (an audience without
    an email, a cooldown, a welcome only once), and a customer nothing happens to."""

    def at(minutes: int) -> str:
        return (T + timedelta(minutes=minutes)).isoformat()

    def cart(minutes: int, **who: str) -> dict[str, Any]:
        return message(
            f"cart-{minutes}",
            "track",
            at(minutes),
            event="Product Added",
            properties={"product_id": "p", "price": 30},
            **who,
        )

    messages = [
        message(
            "m1",
            "identify",
            at(0),
            anonymousId="a1",
            traits={"email": "mia@example.com", "consent": {"email": True, "ads": True}},
        ),
        cart(5, anonymousId="a1"),
        message(
            "m2",
            "identify",
            at(10),
            userId="mia",
            traits={"phone": "+14155550111", "consent": {"email": True}},
        ),
        cart(20, userId="mia"),  # this profile has no email: not in the audience
        message(
            "m3",
            "track",
            at(25),
            event="Subscribed",
            userId="mia",
            properties={"list": "newsletter"},
        ),
        message("m4", "identify", at(30), userId="mia", anonymousId="a1"),  # one person: merged
        cart(24 * 60, userId="mia"),  # within the cart's cooldown
        message(
            "m5",
            "track",
            at(26 * 60),
            event="Subscribed",
            userId="mia",
            properties={"list": "newsletter"},
        ),  # welcomed once already
        message(
            "n1",
            "track",
            at(40),
            event="Product Viewed",
            userId="noa",
            properties={"product_id": "p"},
        ),
    ]
    make_project(folder)
    events = write_messages(folder / "events.jsonl", messages)
    end = T + timedelta(days=9)
    clock = Clock(T)
    config = ProjectConfig(database_url=f"sqlite:///{folder / 'followup.db'}")
    followup = Followup(Project(config, folder), clock)
    replay_when_due(DurableProject(followup), clock, events, end)
    return followup, events, end


def _shop(folder: Path) -> tuple[Followup, Path, datetime]:
    """The shop's month (holdouts, an A/B split, orders on the web and in the store)."""
    followup, _clock = shop.run_shop(folder)
    return followup, folder / "events.jsonl", shop.END


def _events(path: Path) -> list[Event]:
    return [e for record in read_jsonl(path) for e in getattr(record, "events", [])]


@pytest.mark.parametrize("world", [_stories, _merges, _shop], ids=["stories", "merges", "shop"])
def test_every_customer_is_explained_alike_live_and_simulated(tmp_path: Path, world: Any) -> None:
    folder = tmp_path / "project"
    followup, events_path, end = world(folder)
    try:
        project = followup.project
        campaigns = list(
            load_campaigns([project.path(project.config.campaigns)]).require().values()
        )
        config = (
            load_project(folder / "followup.yaml").config
            if (folder / "followup.yaml").exists()
            else project.config
        )
        events = _events(events_path)
        with followup.engine.connect() as conn:
            live_ids = sorted(
                conn.scalars(sa.select(customers.c.id).where(customers.c.merged_into.is_(None)))
            )
            assert len(live_ids) >= 2
            compared = 0
            seen: set[str] = set()
            for customer_id in live_ids:
                live = explain_customer(SqlExplainReads(conn), customer_id)
                profile = followup.profile(customer_id, recent=0)
                assert profile is not None
                reference = profile.state.user_id or profile.state.email or customer_id
                simulated = explain_simulated(
                    campaigns, events, config, reference, None, end, project.path("templates")
                )
                assert simulated is not None, reference
                assert simulated.customer_id == customer_id
                assert _comparable(simulated.explanation) == _comparable(live), reference
                assert all(d.outcome is None for d in simulated.explanation.decisions)
                compared += bool(live.decisions)
                seen.update(d.action for d in live.decisions)
                seen.update("merged" for _ in live.merged_ids)
            assert compared >= 1
            assert world is not _merges or {"not_entered", "merged", "send"} <= seen
    finally:
        followup.close()
