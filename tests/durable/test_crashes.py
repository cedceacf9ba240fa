"""A crash at any point loses no trigger and sends nothing twice.

Each test kills a real process (``os._exit``, no cleanup) at one point of a pass over the story
events, runs the pass again in a new process a minute later (within the outbox lease of 5 minutes:
the dead process's claim is retaken at once), and compares the result with an uninterrupted run: the same decisions, one file per email, one line per audience
change and call. A provider that cannot deduplicate gets ``unknown``, never a blind resend.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.channels import Delivery, DeliveryOutcome, DeliveryStatus
from engine.drive.dispatcher import OutboxDispatcher
from engine.drive.outbox_status import UNKNOWN_DETAIL
from engine.durable.book import CampaignBook
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.database import create_engine
from engine.storage.tables import outbox
from tests.durable.crash_worker import KILLED
from tests.durable.harness import (
    ROOT,
    STORIES,
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    open_followup,
    outbox_rows,
)

NOW = datetime(2024, 5, 20, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)  # within the outbox lease of 5 minutes


def _pass(project: Path, url: str, now: datetime, point: str | None = None) -> int:
    args = [sys.executable, "-m", "tests.durable.crash_worker", str(project), url, now.isoformat()]
    done = subprocess.run([*args, *([point] if point else [])], cwd=ROOT, check=False)
    return done.returncode


def _prepared(folder: Path) -> tuple[Path, str]:
    project = make_project(folder)
    url = f"sqlite:///{folder / 'followup.db'}"
    followup = open_followup(project, url, Clock(NOW))
    try:
        ingest_file(followup, STORIES / "events.jsonl")
    finally:
        followup.close()
    return project, url


def _files(project: Path) -> Counter[str]:
    """Every email file, audience line and call line in the outbox."""
    found: Counter[str] = Counter()
    for file in (project / "outbox").rglob("*"):
        if file.suffix == ".eml":
            found[file.name] += 1
        elif file.suffix in (".jsonl", ".csv"):
            lines = file.read_text().splitlines()
            body = lines[1:] if file.suffix == ".csv" else lines
            found.update(f"{file.name}:{line}" for line in body)
    return found


def _result(project: Path, url: str) -> tuple[list[str], list[tuple[str, str]], Counter[str]]:
    db = create_engine(url)
    try:
        return decision_lines(db), outbox_rows(db), _files(project)
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    project, url = _prepared(tmp_path_factory.mktemp("clean"))
    assert _pass(project, url, NOW) == 0
    return _result(project, url)


@pytest.mark.parametrize(
    "point",
    [
        "events_decided",  # the events are logged, the journeys decided but not committed
        "events_committed",  # journeys and outbox rows committed, nothing delivered yet
        "outbox_claimed",  # outbox rows claimed, the provider not yet called
        "outbox_delivered",  # the provider wrote the file, the outcome not yet recorded
    ],
)
def test_a_crash_loses_nothing_and_doubles_nothing(
    tmp_path: Path, point: str, uninterrupted: tuple[Any, ...]
) -> None:
    project, url = _prepared(tmp_path)
    assert _pass(project, url, NOW, point) == KILLED
    assert _pass(project, url, LATER) == 0
    decisions, rows, files = _result(project, url)
    assert decisions == uninterrupted[0]
    assert rows == uninterrupted[1]
    assert files == uninterrupted[2]
    assert set(files.values()) == {1}  # every email, audience change and call exactly once


class _Counting:
    """A provider that cannot deduplicate: it counts what it was asked to carry."""

    name = "counting"
    idempotent = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        self.calls.append(delivery.key)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, "ok")


class _Stop(BaseException):
    """Stands for the process dying right after the provider was called."""


def test_unknown_outcome_is_reported_not_resent(tmp_path: Path) -> None:
    project = make_project(tmp_path, ["welcome_series"])
    clock = Clock(NOW)
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        durable.runtime.tick()
        provider = _Counting()
        book = CampaignBook(load_campaigns([project / "campaigns"]).require().values())

        def dispatcher(crash: Any) -> OutboxDispatcher:
            return OutboxDispatcher(
                SqlOutboxStore(followup.engine),
                {"email": provider},
                durable.runtime.policies,
                book,
                "UTC",
                clock,
                crash=crash,
            )

        def stop_after_send(point: str) -> None:
            if point == "outbox_delivered":
                raise _Stop

        with pytest.raises(_Stop):
            dispatcher(stop_after_send).dispatch()
        assert len(provider.calls) == 1
        clock.now = LATER
        outcomes = dispatcher(lambda point: None).dispatch()
        assert outcomes["email:unknown"] == 1
        assert len(provider.calls) == 1  # not resent blindly
        with followup.engine.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.key == provider.calls[0])).one()
        assert (row.status, row.detail) == ("unknown", UNKNOWN_DETAIL)
    finally:
        followup.close()
