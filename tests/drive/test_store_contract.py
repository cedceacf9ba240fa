"""The journey store port's contract, on each of its stores: memory (``simulate``'s), SQLite and
PostgreSQL (the durable runtime's). The same driver runs passes over each; what a pass takes and
what it decides must not depend on the store, nor on when the passes run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.drive.driver import Driver, TickSummary
from engine.drive.memory_store import MemoryStore
from engine.durable.project import DurableProject
from engine.events import Event
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import PlanLine, plan_text
from engine.journeys.simulate import journey_engine, received_order
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_arrived,
    make_project,
    open_followup,
    plan_lines,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _messages() -> list[dict[str, Any]]:
    """Ann and Bob leave carts; Ann orders within the hour, Bob does not."""
    out: list[dict[str, Any]] = []
    for number, user in enumerate(("ann", "bob")):
        at = T + timedelta(minutes=10 * number)
        out += [
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-id",
                "timestamp": (at - timedelta(days=1)).isoformat(),
                "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
            },
            {
                "type": "track",
                "event": "Product Added",
                "userId": user,
                "messageId": f"{user}-cart",
                "timestamp": at.isoformat(),
                "properties": {"product_id": "p", "price": 30},
            },
        ]
    out.append(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "ann",
            "messageId": "ann-order",
            "timestamp": (T + timedelta(minutes=30)).isoformat(),
            "properties": {"order_id": "o1", "revenue": 30},
        }
    )
    return out


@dataclass
class Passes:
    """Passes of the driver over one store, at the times a test asks for."""

    run: Any  # (now) -> TickSummary
    decided: Any  # () -> decision lines so far
    closing: list[Any] = field(default_factory=list)

    def at(self, now: datetime) -> TickSummary:
        return self.run(now)  # type: ignore[no-any-return]


def _events(folder: Path) -> tuple[Path, list[Event]]:
    path = write_messages(folder / "events.jsonl", _messages())
    return path, [e for r in read_jsonl(path) for e in getattr(r, "events", [])]


def _memory(project: Path, events: list[Event]) -> Passes:
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    ordered = sorted(received_order(events), key=lambda e: e.order_key)
    engine = journey_engine(campaigns, ProjectConfig(), None)
    driver = Driver(MemoryStore(engine, ordered))
    lines: list[PlanLine] = []

    def run(now: datetime) -> TickSummary:
        summary = TickSummary()
        driver.run_pass(now, summary)
        lines.extend(summary.lines)
        return summary

    return Passes(run, lambda: plan_lines(plan_text(lines)))


def _sql(project: Path, path: Path, url: str) -> Passes:
    records = sorted(
        (r for r in read_jsonl(path) if getattr(r, "events", None)),
        key=lambda r: r.events[0].timestamp,
    )
    clock = Clock(records[0].events[0].timestamp)
    followup: Followup = open_followup(project, url, clock)
    runtime = DurableProject(followup).runtime
    arrived = 0

    def run(now: datetime) -> TickSummary:
        nonlocal arrived
        clock.now = now
        arrived = ingest_arrived(followup, records, arrived, now)  # each when the clock reaches it
        summary = TickSummary()
        runtime.driver.run_pass(now, summary)
        return summary

    return Passes(run, lambda: decision_lines(followup.engine), [followup.close])


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def passes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Passes]:
    """Passes over a fresh store of the kind asked for, the abandoned cart campaign running."""
    project = make_project(tmp_path / "project", ["abandoned_cart"])
    path, events = _events(tmp_path)
    if request.param == "memory":
        found = _memory(project, events)
    elif request.param == "sqlite":
        found = _sql(project, path, f"sqlite:///{tmp_path / 'followup.db'}")
    else:
        found = _sql(project, path, request.getfixturevalue("empty_postgres"))
    yield found
    for close in found.closing:
        close()


def test_a_pass_takes_the_events_due_by_its_time_and_no_later_one(passes: Passes) -> None:
    assert passes.at(T - timedelta(hours=12)).events == 2  # the identifies
    assert passes.at(T + timedelta(minutes=5)).events == 1  # Ann's cart; Bob's is later
    assert passes.at(T + timedelta(minutes=40)).events == 2  # Bob's cart, Ann's order


def test_a_second_pass_at_the_same_time_decides_nothing(passes: Passes) -> None:
    now = T + timedelta(hours=3)
    assert passes.at(now).lines
    again = passes.at(now)
    assert (again.events, again.lines) == (0, [])


def test_a_timer_fires_at_its_time_once_a_pass_reaches_it(passes: Passes) -> None:
    passes.at(T + timedelta(minutes=40))  # Bob's wait of 1h ends at 10:10
    assert not [line for line in passes.decided() if " send " in line]
    passes.at(T + timedelta(hours=1, minutes=9))
    assert not [line for line in passes.decided() if " send " in line]
    later = passes.at(T + timedelta(hours=5))
    sends = [line for line in passes.decided() if " send " in line]
    assert [line.split()[0] for line in sends] == ["2024-05-06T10:10:00Z"]
    assert later.timer_customers >= 1


def test_the_decisions_are_the_same_whenever_the_passes_run(passes: Passes, tmp_path: Path) -> None:
    """Passes every 7 minutes decide what one pass at the end decides, and what simulate
    plans: the plan of the memory store with one pass."""
    now = T - timedelta(days=1)
    while now < T + timedelta(days=3):
        passes.at(now)
        now += timedelta(minutes=7)
    passes.at(T + timedelta(days=3))
    project = make_project(tmp_path / "once", ["abandoned_cart"])
    _, events = _events(tmp_path)
    once = _memory(project, events)
    once.at(T + timedelta(days=3))
    assert passes.decided() == once.decided()
    assert any(" convert " in line for line in once.decided())  # Ann's order
    assert any(" send " in line for line in once.decided())  # Bob's email
