"""Late goal events in the durable runtime convert what ``simulate`` would have: the journeys
they come after in event order (docs/runtime.md, "Late events"), the latest entry first. So a
journey is not settled just because its goal window is over while nothing of it changes, and
the latest entry is found by entry order, not by where a late trigger's journey was listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from tests.durable.harness import (
    Clock,
    decision_lines,
    make_project,
    message,
    open_followup,
    write_messages,
)

VIEWER = """campaign: viewer
trigger: {event: Product Viewed}
goal: {event: Order Completed, within: 1d}
steps:
  - wait: 1m
"""
T = datetime(2024, 5, 6, 7, 5, tzinfo=UTC)


def test_a_late_goal_event_converts_a_journey_past_its_window(
    database_url: str, tmp_path: Path
) -> None:
    """The view's journey completes; two days later another event of the customer loads it
    (its window over); then the order stamped three hours after the view arrives: it converts
    the journey at its own time, as ``simulate`` would have."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "viewer.yaml").write_text(VIEWER)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("v1", "Product Viewed", T),
            message("p1", "Product Added", T + timedelta(days=2), product_id="x", price=1),
            message("o1", "Order Completed", T + timedelta(hours=3), order_id="o1", revenue=5),
        ],
    )
    records = [record for record in read_jsonl(events) if getattr(record, "events", None)]
    clock = Clock(T)
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        arrivals = (T, T + timedelta(days=2), T + timedelta(days=3))
        for record, arrives in zip(records, arrivals, strict=True):
            clock.now = arrives + timedelta(minutes=5)
            followup.ingestor.ingest([record])
            durable.run_once()
        lines = decision_lines(followup.engine)
        assert [(line.split()[0], line.split()[5]) for line in lines] == [
            ("2024-05-06T07:05:00Z", "enter"),
            ("2024-05-06T10:05:00Z", "convert"),
        ]
    finally:
        followup.close()


def test_a_late_trigger_taken_with_a_goal_leaves_the_goal_to_the_latest_entry(
    database_url: str, tmp_path: Path
) -> None:
    """A view at 09:00 arrives late, in the same pass as the 11:00 order, after the 10:00
    view's journey was stored: the late journey joins the customer's list last, yet the order
    converts the latest entry, the 10:00 one, as ``simulate`` does."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "viewer.yaml").write_text(VIEWER.replace("1d", "7d"))
    at = T.replace(hour=9, minute=0)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("v2", "Product Viewed", at + timedelta(hours=1)),
            message("v1", "Product Viewed", at),
            message("o1", "Order Completed", at + timedelta(hours=2), order_id="o1", revenue=5),
        ],
    )
    records = [record for record in read_jsonl(events) if getattr(record, "events", None)]
    clock = Clock(at)
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        for taken, now in (([0], 65), ([1, 2], 125)):
            clock.now = at + timedelta(minutes=now)
            followup.ingestor.ingest([records[n] for n in taken])
            durable.run_once()
        lines = [line.split() for line in decision_lines(followup.engine)]
        entries = {fields[0]: fields[2] for fields in lines if fields[5] == "enter"}
        converted = [fields[2] for fields in lines if fields[5] == "convert"]
        assert converted == [entries["2024-05-06T10:00:00Z"]]
    finally:
        followup.close()
