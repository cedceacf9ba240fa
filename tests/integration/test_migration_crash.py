"""A process killed during a new database's first migration leaves nothing half made: the next
start brings the schema up to date and the project works (on SQLite, each CREATE TABLE used to
commit on its own, and every later start failed with "table events already exists")."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from engine.durable.project import DurableProject
from engine.storage.database import current_revisions, head_revisions, open_database
from engine.storage.tables import outbox
from tests.durable.harness import ROOT, STORIES, Clock, ingest_file, make_project, open_followup

NOW = datetime(2024, 5, 20, tzinfo=UTC)


def test_a_kill_in_the_first_migration_leaves_a_database_that_opens_and_works(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.integration.migration_crash_worker", url, "journeys"],
        cwd=ROOT,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "followup.db").exists()  # it got as far as making the file

    engine = open_database(url)
    try:
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()
    project = make_project(tmp_path / "project")
    followup = open_followup(project, url, Clock(NOW))
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        DurableProject(followup).run_once()
        with followup.engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(outbox)) > 0
    finally:
        followup.close()
