"""An ``update`` step in the durable runtime: the traits it writes are logged as the customer's
event, without identity resolution (the event carries no id of its own), and the decisions
equal simulate's plan, a segment that the new trait turns true included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import format_time, plan_text
from engine.journeys.simulate import simulate
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    open_followup,
    plan_lines,
    replay,
    replay_when_due,
)
from tests.journeys.scenario import within

VIP = """campaign: vip
trigger: {event: Order Completed}
steps:
  - update:
      traits:
        vip: event.properties.revenue >= 100
        email: "'changed@example.com'"
  - send: email
    template: welcome.html
    subject: Thanks
"""

VIP_WELCOME = """campaign: vip-welcome
trigger:
  segment: customer.traits.vip
steps:
  - send: email
    template: welcome.html
    subject: Welcome to the club
"""


def _events(folder: Path) -> Path:
    at = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    lines = [
        {
            "type": "identify",
            "userId": "ann",
            "messageId": "i1",
            "timestamp": at.isoformat(),
            "traits": {"email": "ann@example.com", "consent": {"email": True}},
        },
        {
            "type": "identify",
            "userId": "bob",
            "messageId": "i2",
            "timestamp": at.isoformat(),
            "traits": {"email": "changed@example.com", "consent": {"email": True}},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "ann",
            "messageId": "o1",
            "timestamp": (at + timedelta(minutes=5)).isoformat(),
            "properties": {"order_id": "A1", "revenue": 150},
        },
    ]
    path = folder / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


@contextmanager
def _both_engines(
    tmp_path: Path, database_url: str, vip: str
) -> Iterator[tuple[Followup, list[datetime], list[str]]]:
    """``vip`` and the segment campaign over the events, through the durable runtime (passes
    on the hour) and ``simulate``: the durable engine, the event times, the plan's lines."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "vip.yaml").write_text(vip)
    (project / "campaigns" / "vip_welcome.yaml").write_text(VIP_WELCOME)
    events = _events(tmp_path)
    clock = Clock(datetime(2024, 5, 6, tzinfo=UTC))
    followup = open_followup(project, database_url, clock)
    try:
        times = ingest_file(followup, events)
        clock.now = times[0]
        replay(DurableProject(followup), clock, times[0], times[-1] + timedelta(days=1))
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        yield followup, times, plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
    finally:
        followup.close()


def test_update_steps_are_logged_and_decide_what_simulate_plans(
    database_url: str, tmp_path: Path
) -> None:
    with _both_engines(tmp_path, database_url, VIP) as (followup, _times, expected):
        # the trait the update wrote turns the segment at once, after the order
        entered = sorted(line.split()[1] for line in expected if " enter " in line)
        assert entered == ["vip", "vip-welcome"]
        assert decision_lines(followup.engine) == expected
        ann, bob = followup.profile("ann"), followup.profile("bob")
        assert ann is not None and bob is not None
        assert ann.state.traits["vip"] is True
        assert ann.id != bob.id  # the email an update wrote merges no one


def test_a_segment_an_update_turns_after_a_wait_is_entered_at_the_update(
    database_url: str, tmp_path: Path
) -> None:
    """An update is an identify made by the campaign, and segments are looked at after each of
    a customer's events: a trait written after a wait (from a timer, not an event) turns the
    segment at that instant, not at the next hourly sweep, in both engines."""
    later = VIP.replace("steps:\n", "steps:\n  - wait: 10m\n", 1)
    with _both_engines(tmp_path, database_url, later) as (followup, times, expected):
        entered = [line.split()[:2] for line in expected if " enter " in line]
        assert entered == [
            [format_time(times[-1]), "vip"],
            [format_time(times[-1] + timedelta(minutes=10)), "vip-welcome"],
        ]
        assert decision_lines(followup.engine) == expected


def test_a_ring_of_segment_updates_does_not_loop_in_a_durable_pass(
    database_url: str, tmp_path: Path
) -> None:
    """Segment campaigns whose update steps turn each other's segments in a ring: the durable
    pass looks at the customer a bounded number of times per event or sweep after an update
    and leaves the next turn to a later sweep, so it ends (it looped inside its transaction). Where the ring is at
    the first pass's instant still differs from ``simulate``, as at af34d20: the first pass
    sweeps every customer once for the new segment campaigns."""
    project = make_project(tmp_path, [])
    for name, n in (("a-three", 3), ("b-two", 2), ("c-one", 1), ("d-zero", 0)):
        (project / "campaigns" / f"{name}.yaml").write_text(
            f'campaign: {name}\ntrigger: {{segment: "customer.traits.n == {n}"}}\n'
            f'steps:\n  - update: {{traits: {{n: "{(n + 1) % 4}"}}}}\n'
        )
    at = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    identify = {"type": "identify", "userId": "ann", "messageId": "i1", "traits": {"n": 0}}
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps({**identify, "timestamp": at.isoformat()}) + b"\n")
    clock = Clock(at)
    followup = open_followup(project, database_url, clock)
    try:
        with within(60):
            replay_when_due(DurableProject(followup), clock, events, at + timedelta(hours=5))
        entries = Counter(
            line.split()[0] for line in decision_lines(followup.engine) if " enter " in line
        )
        assert max(entries.values()) <= 4 * (4 + 1) and len(entries) == 6  # bounded, hourly
    finally:
        followup.close()
