"""Who holds a claim: a live holder keeps its row, a dead one's is retaken at once.

A dispatch claims each row right before its call under a holder of its own (a PostgreSQL session
lock, a process of this machine for SQLite). While the provider is called, another dispatcher's
recovery must leave the row alone, lease or no lease; once a holder is gone, its row is taken
back without waiting for the lease."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.channels import Delivery, DeliveryOutcome, DeliveryStatus
from engine.drive.dispatcher import OutboxDispatcher
from engine.durable.holders import Holder, Processes, holders_for
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.database import open_database
from engine.storage.tables import outbox
from tests.durable.harness import ROOT, STORIES, Clock, ingest_file, make_project, open_followup

NOW = datetime(2024, 5, 20, tzinfo=UTC)


class _Watching:
    """A provider that cannot deduplicate; during each call it runs another dispatcher's
    recovery and notes what it found and how the row stood."""

    name = "watching"
    idempotent = False

    def __init__(self, db: sa.Engine) -> None:
        self.db = db
        self.other: OutboxDispatcher | None = None
        self.seen: list[tuple[Any, ...]] = []

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        assert self.other is not None
        found = self.other.recover(NOW)
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(outbox.c.status, outbox.c.claimed_by).where(outbox.c.key == delivery.key)
            ).one()
        self.seen.append((dict(found), row.status, row.claimed_by is not None))
        return DeliveryOutcome(DeliveryStatus.DELIVERED, "ok")


def test_a_live_holder_keeps_its_row_past_the_lease(tmp_path: Path, database_url: str) -> None:
    project = make_project(tmp_path, ["welcome_series"])
    followup = open_followup(project, database_url, Clock(NOW))
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        durable.runtime.tick()
        provider = _Watching(followup.engine)

        def dispatcher(**options: Any) -> OutboxDispatcher:
            return OutboxDispatcher(
                SqlOutboxStore(followup.engine),
                {"email": provider},
                durable.runtime.policies,
                durable.book,
                "UTC",
                Clock(NOW),
                **options,
            )

        provider.other = dispatcher(lease=-NOW.resolution)  # every claim is past this lease...
        done = dispatcher().dispatch()
        with followup.engine.connect() as conn:
            claimed = conn.scalar(
                sa.select(sa.func.count()).where(outbox.c.claimed_by.is_not(None))
            )
    finally:
        followup.close()
    assert done["email:delivered"] == len(provider.seen) > 0
    # ... yet none is retaken while its holder is alive, and each is held while it is called
    assert provider.seen == [({}, "sending", True)] * len(provider.seen)
    assert claimed == 0  # a recorded outcome releases its row


def test_another_process_holds_until_it_dies(database_url: str) -> None:
    """A holder in another process is not dead while that process runs (on PostgreSQL it is
    known alive: its session holds the lock; on SQLite its process is, which leaves its rows to
    the lease), and is known dead once the process is killed."""
    code = (
        "import sys, sqlalchemy as sa\n"
        "from engine.durable.holders import holders_for\n"
        f"db = sa.create_engine({database_url!r})\n"
        "with holders_for(db).holding() as holder:\n"
        "    print(holder, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    db = open_database(database_url)
    try:
        holders = holders_for(db)
        with subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            holder = child.stdout.readline().strip()
            with db.connect() as conn:
                running = holders.judge(conn, [holder])[holder]
            child.kill()
        deadline = time.monotonic() + 10  # the server notices the closed connection at once
        killed = Holder.UNKNOWN
        while killed is not Holder.DEAD and time.monotonic() < deadline:
            with db.connect() as conn:
                killed = holders.judge(conn, [holder])[holder]
    finally:
        db.dispose()
    alive = Holder.ALIVE if db.dialect.name == "postgresql" else Holder.UNKNOWN
    assert (running, killed) == (alive, Holder.DEAD)


def test_a_holder_of_another_machine_is_left_to_the_lease() -> None:
    host, boot, namespace, pid, start = Processes._process()
    here, there, rebooted, container = (
        f"{host}/{boot}/{namespace}/{pid}/{start}/0",
        f"elsewhere/{boot}/{namespace}/{pid}/{start}/0",
        f"{host}/another-boot/{namespace}/{pid}/{start}/0",
        f"{host}/{boot}/another-namespace/{pid}/{start}/0",
    )
    known = Processes().judge(None, [here, there, rebooted, container])  # type: ignore[arg-type]
    # here: this process, but no dispatch of it is running
    assert known == {
        here: Holder.DEAD,
        there: Holder.UNKNOWN,
        rebooted: Holder.DEAD,
        container: Holder.UNKNOWN,
    }
