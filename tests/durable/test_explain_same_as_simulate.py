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
from engine.journeys.simulate_explain import explain_simulated
from engine.storage.tables import customers
from tests.durable import shop
from tests.durable.harness import (
    STORIES,
    Clock,
    accepted_events,
    make_project,
    replay_when_due,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
PHONE = "+14155550111"


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


def _replayed(folder: Path, events: Path, start: datetime, end: datetime) -> Followup:
    """The engine of the project in ``folder`` on SQLite, ``events`` replayed live to ``end``."""
    clock = Clock(start)
    config = ProjectConfig(database_url=f"sqlite:///{folder / 'followup.db'}")
    followup = Followup(Project(config, folder), clock)
    replay_when_due(DurableProject(followup), clock, events, end)
    return followup


def _stories(folder: Path) -> tuple[Followup, Path, datetime]:
    """The example campaigns over the customer stories, replayed live a week past the last."""
    make_project(folder)
    events = STORIES / "events.jsonl"
    times = [e.timestamp for e in accepted_events(events)]
    end = max(times) + timedelta(days=7)
    return _replayed(folder, events, min(times), end), events, end


def message(message_id: str, kind: str, minutes: int, **fields: Any) -> dict[str, Any]:
    """A Segment message of type ``kind``, ``minutes`` after :data:`T`."""
    at = (T + timedelta(minutes=minutes)).isoformat()
    return {"type": kind, "messageId": message_id, "timestamp": at, **fields}


def track(
    message_id: str, event: str, minutes: int, user: str, **properties: Any
) -> dict[str, Any]:
    """``user``'s ``event``: a userId, or ``anon:`` and an anonymousId."""
    who = {"anonymousId": user[5:]} if user.startswith("anon:") else {"userId": user}
    return message(message_id, "track", minutes, event=event, properties=properties, **who)


def _merges(folder: Path) -> tuple[Followup, Path, datetime]:
    """Profiles merged (an anonymous shopper who signs in), entries refused (an audience without
    an email, a welcome only once), and a customer nothing happens to."""
    consent = {"email": True, "ads": True}
    mia = {"email": "mia@example.com", "consent": consent}
    messages = [
        message("m1", "identify", 0, anonymousId="a1", traits=mia),
        track("c1", "Product Added", 5, "anon:a1", product_id="p", price=30),
        message("m2", "identify", 10, userId="mia", traits={"phone": PHONE, "consent": consent}),
        track("c2", "Product Added", 20, "mia", product_id="p", price=30),  # no email: no entry
        track("s1", "Subscribed", 25, "mia", list="newsletter"),
        message("m3", "identify", 30, userId="mia", anonymousId="a1"),  # one person: merged
        track("n1", "Product Viewed", 40, "noa", product_id="p"),
        track("c3", "Product Added", 24 * 60, "mia", product_id="p", price=30),  # a restart
        track("s2", "Subscribed", 26 * 60, "mia", list="newsletter"),  # welcomed once already
    ]  # fmt: skip
    make_project(folder)
    events = write_messages(folder / "events.jsonl", messages)
    end = T + timedelta(days=9)
    return _replayed(folder, events, T, end), events, end


def _shop(folder: Path) -> tuple[Followup, Path, datetime]:
    """The shop's month (holdouts, an A/B split, orders on the web and in the store)."""
    followup, _clock = shop.run_shop(folder)
    return followup, folder / "events.jsonl", shop.END


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
        events = accepted_events(events_path)
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
