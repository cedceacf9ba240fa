"""The durable runtime decides what simulate plans: the same engine code, kept in the database.

The story events are ingested, then a pass runs every hour of their time span (as cron would),
and the decisions log must equal simulate's plan line for line, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import outbox
from tests.durable.harness import (
    STORIES,
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    open_followup,
    outbox_rows,
    plan_lines,
    replay,
)


def _simulated(project: Path, events: Path) -> list[str]:
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    accepted = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
    return plan_lines(plan_text(simulate(campaigns, accepted, ProjectConfig())))


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
        assert decision_lines(followup.engine) == _simulated(project, events)
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
