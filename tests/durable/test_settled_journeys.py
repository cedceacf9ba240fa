"""A journey the durable store need not load again is marked settled: once it ended, shows no
ad and its goal window is over, whether or not it converted (a journey converts at every goal
event in its window, so a conversion settles nothing by itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.durable.project import DurableProject
from engine.storage.tables import journeys
from tests.durable.harness import (
    Clock,
    decision_lines,
    make_project,
    message,
    open_followup,
    replay_when_due,
    write_messages,
)

CART = """campaign: cart
trigger: {event: Product Added}
goal: {event: Order Completed, within: 1d}
steps:
  - wait: 1h
"""
T = datetime(2024, 5, 6, 9, tzinfo=UTC)


def test_a_converted_journey_settles_when_its_goal_window_is_over(
    database_url: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path, [])
    (project / "campaigns" / "cart.yaml").write_text(CART)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("a1", "Product Added", T, product_id="p", price=5),
            message("o1", "Order Completed", T + timedelta(hours=3), revenue=5),
            message("v1", "Product Viewed", T + timedelta(days=5)),  # loads the customer again
        ],
    )
    clock = Clock(T)
    followup = open_followup(project, database_url, clock)
    try:
        replay_when_due(DurableProject(followup), clock, events, T + timedelta(days=6))
        actions = [line.split()[5] for line in decision_lines(followup.engine)]
        assert actions == ["enter", "convert"]
        with followup.engine.connect() as conn:
            assert conn.scalars(sa.select(journeys.c.settled)).all() == [True]
    finally:
        followup.close()
