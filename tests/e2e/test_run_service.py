"""``followup run`` as a service: a JSONL file dropped into the watched folder is ingested, its
newsletter signup starts the welcome series, and the welcome email lands in the file outbox;
SIGTERM stops the service cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from engine.cli.run_command import WATCH_LOCK
from engine.identity import customer_id_for
from engine.journeys.context import is_held_out
from tests.durable.harness import make_project
from tests.e2e.cli import FOLLOWUP


def _signup(user: str, at: datetime) -> list[dict[str, object]]:
    stamp = at.isoformat()
    return [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"{user}-identify",
            "timestamp": stamp,
            "traits": {"email": f"{user}@example.com", "firstName": "Dee"},
        },
        {
            "type": "track",
            "event": "Subscribed",
            "userId": user,
            "messageId": f"{user}-subscribed",
            "timestamp": stamp,
            "properties": {"list": "newsletter", "channel": "email"},
        },
    ]


def test_run_ingests_dropped_files_and_sends(tmp_path: Path) -> None:
    project = make_project(tmp_path, ["welcome_series"])
    user = "dee0"  # not in the welcome series' holdout
    assert not is_held_out("welcome-series", customer_id_for(f"user:{user}"), 0.1)
    environment = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    service = subprocess.Popen(
        [FOLLOWUP, "run", "--watch", "drop", "--interval", "0.3"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        drop = project / "drop"
        deadline = time.monotonic() + 30
        while not (drop / WATCH_LOCK).is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = subprocess.run(  # one folder, one watcher: they raced for its files
            [FOLLOWUP, "run", "--watch", "drop", "--interval", "0.3"],
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 2
        assert "another followup run is watching drop" in second.stderr
        lines = _signup(user, datetime.now(UTC) - timedelta(minutes=1))
        staged = drop / ".signup.tmp"
        staged.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        staged.rename(drop / "signup.jsonl")  # appears whole, as a shop's exporter should drop it
        outbox = project / "outbox" / "email"
        while time.monotonic() < deadline and not list(outbox.glob("*.eml")):
            time.sleep(0.2)
        emails = list(outbox.glob("*.eml"))
    finally:
        service.send_signal(signal.SIGTERM)
        stdout, stderr = service.communicate(timeout=30)
    assert service.returncode == 0, stderr
    assert "followup run: stopped" in stdout
    assert (drop / "done" / "signup.jsonl").is_file()
    assert len(emails) == 1
    message = emails[0].read_text()
    assert f"To: Dee <{user}@example.com>" in message
    assert "Subject: Welcome, Dee!" in message


@pytest.mark.external_service
def test_run_outlives_a_dropped_database_connection(tmp_path: Path, empty_postgres: str) -> None:
    """PostgreSQL drops every connection of the service: the pass under way fails and is
    reported, the next one reconnects, and a signup after that is still sent."""
    project = make_project(tmp_path, ["welcome_series"])
    user = "dee0"
    environment = {**os.environ, "FOLLOWUP_DATABASE_URL": empty_postgres}
    service = subprocess.Popen(
        [FOLLOWUP, "run", "--watch", "drop", "--interval", "0.3"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    admin = sa.create_engine(empty_postgres, isolation_level="AUTOCOMMIT")
    try:
        drop = project / "drop"
        # the folder is made before the schema is brought up to date: wait for the first line,
        # printed once the database is open (a connection dropped during the upgrade ends the
        # start, exit 2: not what this test is about)
        assert service.stdout is not None
        assert service.stdout.readline().startswith("followup run: a pass every")
        time.sleep(1)  # a few passes, with their connections pooled
        with admin.connect() as conn:
            dropped = conn.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped
        time.sleep(1)
        lines = _signup(user, datetime.now(UTC) - timedelta(minutes=1))
        staged = drop / ".signup.tmp"
        staged.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        staged.rename(drop / "signup.jsonl")
        outbox = project / "outbox" / "email"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(outbox.glob("*.eml")):
            time.sleep(0.2)
        emails = list(outbox.glob("*.eml"))
    finally:
        admin.dispose()
        service.send_signal(signal.SIGTERM)
        _stdout, stderr = service.communicate(timeout=30)
    assert service.returncode == 0, stderr
    assert "the pass failed (1 in a row)" in stderr
    assert "(5 in a row)" not in stderr
    assert len(emails) == 1
