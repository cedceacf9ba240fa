"""The durable event pass reads its backlog by the inbox's own time index: a batch costs the
same whatever the backlog (it once sorted the whole event log for every batch of 500)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine.durable.runtime import inbox_batch
from engine.storage.database import open_database


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
    assert any(step.startswith("SEARCH events") for step in plan), plan
    assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in plan), plan
