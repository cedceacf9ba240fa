"""Late goal events in the durable runtime convert what ``simulate`` would have: the journeys
they come after in event order (docs/runtime.md, "Late events"), the latest entry first. So a
journey is not settled just because its goal window is over while nothing of it changes, and
the latest entry is found by entry order, not by where a late trigger's journey was listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def _decided(
    tmp_path: Path,
    database_url: str,
    campaign: str,
    messages: list[dict[str, Any]],
    passes: list[tuple[datetime, list[int]]],
) -> list[list[str]]:
    """The decisions (as split plan-like lines) of ``campaign`` in the durable runtime, each
    pass at its time ingesting the messages listed for it first (the others arrive later)."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "viewer.yaml").write_text(campaign)
    events = write_messages(tmp_path / "events.jsonl", messages)
    records = [record for record in read_jsonl(events) if getattr(record, "events", None)]
    clock = Clock(passes[0][0])
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        for now, taken in passes:
            clock.now = now
            followup.ingestor.ingest([records[n] for n in taken])
            durable.run_once()
        return [line.split() for line in decision_lines(followup.engine)]
    finally:
        followup.close()


def test_a_late_goal_event_converts_a_journey_past_its_window(
    database_url: str, tmp_path: Path
) -> None:
    """The view's journey completes; two days later another event of the customer loads it
    (its window over); then the order stamped three hours after the view arrives: it converts
    the journey at its own time, as ``simulate`` would have."""
    messages = [
        message("v1", "Product Viewed", T),
        message("p1", "Product Added", T + timedelta(days=2), product_id="x", price=1),
        message("o1", "Order Completed", T + timedelta(hours=3), order_id="o1", revenue=5),
    ]
    minutes = timedelta(minutes=5)
    passes = [
        (T + minutes, [0]),
        (T + timedelta(days=2) + minutes, [1]),
        (T + timedelta(days=3), [2]),
    ]
    lines = _decided(tmp_path, database_url, VIEWER, messages, passes)
    assert [(fields[0], fields[5]) for fields in lines] == [
        ("2024-05-06T07:05:00Z", "enter"),
        ("2024-05-06T10:05:00Z", "convert"),
    ]


def test_a_late_trigger_taken_with_a_goal_leaves_the_goal_to_the_latest_entry(
    database_url: str, tmp_path: Path
) -> None:
    """A view at 09:00 arrives late, in the same pass as the 11:00 order, after the 10:00
    view's journey was stored: the late journey joins the customer's list last, yet the order
    converts the latest entry, the 10:00 one, as ``simulate`` does."""
    at = T.replace(hour=9, minute=0)
    messages = [
        message("v2", "Product Viewed", at + timedelta(hours=1)),
        message("v1", "Product Viewed", at),
        message("o1", "Order Completed", at + timedelta(hours=2), order_id="o1", revenue=5),
    ]
    passes = [(at + timedelta(minutes=65), [0]), (at + timedelta(minutes=125), [1, 2])]
    lines = _decided(tmp_path, database_url, VIEWER.replace("1d", "7d"), messages, passes)
    entries = {fields[0]: fields[2] for fields in lines if fields[5] == "enter"}
    converted = [fields[2] for fields in lines if fields[5] == "convert"]
    assert converted == [entries["2024-05-06T10:00:00Z"]]
