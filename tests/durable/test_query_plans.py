"""The durable passes read the big tables by index: a batch costs the same whatever the backlog
or the number of customers.

Two quadratic passes were found on a million customers, each invisible on a test's dozen: the
event batch sorted the whole event log for every batch of 500, and loading a batch's customers
by id read them through the index of ``merged_into`` (every live customer is ``NULL`` there).
These tests record SQLite's plan for every query a pass runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.durable.batches import inbox_batch
from engine.durable.project import DurableProject
from engine.storage.database import open_database
from tests.durable.harness import STORIES, Clock, ingest_file, make_project, open_followup

BIG_TABLES = ("events", "customers", "journey_inbox", "journeys", "journey_timers", "outbox")


@contextmanager
def recorded_plans(engine: sa.Engine) -> Iterator[dict[str, list[str]]]:
    """Every SELECT run on ``engine`` inside the block, with SQLite's plan for it."""
    plans: dict[str, list[str]] = {}

    def explain(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if many or not statement.lstrip().upper().startswith("SELECT"):
            return
        rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plans[statement] = [row[-1] for row in rows]

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        yield plans
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)


def _grows(step: str, statement: str) -> bool:
    """Whether a plan step costs in proportion to a big table rather than to what it returns: a
    scan (unless it walks an index in the order asked and stops at the LIMIT), a sort before a
    LIMIT (it sorts everything that matched to return a few), or "every live customer" read from
    the index of merged_into."""
    limited = " LIMIT " in statement
    if any(step.startswith(f"SCAN {table}") for table in BIG_TABLES):
        return not (limited and "USING" in step and "INDEX" in step)
    if "TEMP B-TREE" in step:
        return limited
    return "merged_into=?" in step and "merged_into IS NULL" in statement


def _full_reads(plans: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Each plan step that :func:`_grows`, with its statement."""
    return [
        (step, " ".join(statement.split())[:300])
        for statement, steps in plans.items()
        for step in steps
        if _grows(step, statement)
    ]


def test_a_batch_reads_the_inbox_index_and_sorts_nothing(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'followup.db'}")
    try:
        query = inbox_batch(datetime(2026, 1, 1, tzinfo=UTC), 500)
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        engine.dispose()
    assert any("journey_inbox" in step and "ix_journey_inbox_time" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in plan), plan


def test_ingest_and_the_passes_read_no_big_table_whole(tmp_path: Path) -> None:
    """The story events ingested, then through every example campaign: the event pass, the
    timers it made and the first segment sweep (every customer once), then the hourly passes of
    a month."""
    project = make_project(tmp_path)
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        with recorded_plans(followup.engine) as plans:
            times = ingest_file(followup, STORIES / "events.jsonl")
            clock.now = times[0]
            durable = DurableProject(followup)
            for hour in range(24 * 31):
                clock.now = times[0] + timedelta(hours=hour)
                durable.runtime.tick()
        assert len(plans) > 10  # events, timers, ticks, sweeps and the outbox were all read
        found = _full_reads(plans)
        assert found == [], "\n".join(map(str, found))
    finally:
        followup.close()
