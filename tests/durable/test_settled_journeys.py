"""A journey the durable store stops loading is settled; a late goal event must still find the
journeys it comes after in event order (docs/runtime.md, "Late events"), so a journey is not
settled just because its goal window is over while nothing of it changes."""

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
