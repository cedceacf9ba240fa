"""The durable runtime decides what simulate plans: the same engine code, kept in the database.

The story events are ingested, then a pass runs every hour of their time span (as cron would),
and the decisions log must equal simulate's plan line for line, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from tests.durable.harness import (
    STORIES,
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    open_followup,
    outbox_rows,
    replay,
    replay_when_due,
    simulated_plan,
)


def test_hourly_passes_decide_what_simulate_plans(database_url: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    events = STORIES / "events.jsonl"
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    followup = open_followup(project, database_url, clock)
    try:
        times = ingest_file(followup, events)
        clock.now = times[0]
        durable = DurableProject(followup)  # first seen at the first event, as simulate starts
        replay(durable, clock, times[0], times[-1] + timedelta(days=7))
        assert decision_lines(followup.engine) == simulated_plan(project, events)
        rows = outbox_rows(followup.engine)
        assert rows and all(status == "delivered" for _key, status in rows)
        with followup.engine.connect() as conn:
            emails = conn.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.channel == "email")
            )
        assert len(list((project / "outbox" / "email").glob("*.eml"))) == emails
    finally:
        followup.close()


def test_passes_and_duplicate_events_decide_nothing_twice(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    clock = Clock(datetime(2024, 5, 20, tzinfo=UTC))
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        first = durable.run_once()
        assert first.engine.events > 0 and sum(first.outbox.values()) > 0
        before = (decision_lines(followup.engine), outbox_rows(followup.engine))
        again = durable.run_once()
        assert again.engine.events == 0 and not again.outbox
        ingest_file(followup, STORIES / "events.jsonl")  # the same events again: duplicates
        durable.run_once()
        assert (decision_lines(followup.engine), outbox_rows(followup.engine)) == before
    finally:
        followup.close()


MERGING = [
    # a visitor's cart, and a newsletter signup under a user id (no email of its own yet)
    {"type": "identify", "anonymousId": "a1", "messageId": "m1", "timestamp": "09:00",
     "traits": {"email": "x@example.com", "consent": {"email": True, "ads": True}}},
    {"type": "track", "event": "Product Added", "anonymousId": "a1", "messageId": "m2",
     "timestamp": "09:01", "properties": {"product_id": "p", "price": 30}},
    {"type": "identify", "userId": "u1", "messageId": "m3", "timestamp": "09:02",
     "traits": {"consent": {"email": True}}},
    {"type": "track", "event": "Subscribed", "userId": "u1", "messageId": "m4",
     "timestamp": "09:03", "properties": {"list": "newsletter"}},
    # hours later the visitor logs in: the two profiles merge, each with a journey running
    {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m5",
     "timestamp": "12:30", "traits": {}},
]  # fmt: skip


def test_a_journey_of_a_merged_profile_goes_on_under_the_survivor(
    database_url: str, tmp_path: Path
) -> None:
    """The welcome series of the profile merged away waits 3 days for an order: its timer and
    journey move to the survivor and the discount goes out on time (the journey kept the merged
    id: the survivor's next batch re-saved the timer under it, and its firing failed)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(
            orjson.dumps({**m, "timestamp": f"2024-05-06T{m['timestamp']}:00Z"}) + b"\n"
            for m in MERGING
        )
    )
    project = make_project(tmp_path, ["abandoned_cart", "welcome_series"])
    clock = Clock(datetime(2024, 5, 6, 9, tzinfo=UTC))
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        replay_when_due(durable, clock, events, datetime(2024, 5, 14, tzinfo=UTC))
        assert decision_lines(followup.engine) == simulated_plan(project, events)
        assert any("1.else.0 email send sent" in line for line in simulated_plan(project, events))
    finally:
        followup.close()
