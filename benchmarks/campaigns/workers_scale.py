"""Durable passes on PostgreSQL: one worker against several, on the same due work.

    python -m benchmarks.campaigns.workers_scale [--customers N] [--workers 1 2 4]
        [--phases decide deliver] [--admin postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

N customers each with a cart whose 1h wait is over (the abandoned cart of ``durable_run``) are
prepared once in a template database; each run copies it (``CREATE DATABASE ... TEMPLATE``) and
starts K worker processes at once, each running one engine pass (``followup tick``'s engine
part, no delivery) at the same clock; then the same for delivery, each worker delivering the N
decided emails to the file outbox (the dispatcher of ``followup tick``). K workers share the pass two ways: each over all the
customers, claiming them with ``FOR UPDATE SKIP LOCKED`` ("shared"), or each over its own
partition, worker i taking ``i/K`` ("partitioned", ``followup tick --partition i/K``). Each
worker reports when its pass began and ended (after its imports) and how many customers it
took; the run's time is from the first start to the last end. Prints the seconds, the speed-up
over one worker and the work claimed beyond the N customers; on this machine the workers share
its CPUs with PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from benchmarks.campaigns.durable_run import CAMPAIGN, T0, WORK, _Clock, _messages
from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.drive.outbox_status import OutboxStatus
from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.storage.tables import journey_timers, outbox

PROJECT = WORK.parent / "workers-scale"
TEMPLATE = "followup_workers_template"
DECIDED = "followup_workers_decided"  # the template with every email decided, for delivery
TEMPLATES = {"decide": TEMPLATE, "deliver": DECIDED}


def _url(admin: str, name: str) -> str:
    return sa.make_url(admin).set(database=name).render_as_string(hide_password=False)


def _recreate(admin: str, name: str, template: str | None = None) -> None:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    engine.dispose()


def _prepare(admin: str, customers: int) -> datetime:
    """The template database: every customer's cart taken, its wait due; the pass's clock."""
    shutil.rmtree(PROJECT, ignore_errors=True)
    (PROJECT / "campaigns").mkdir(parents=True)
    (PROJECT / "templates").mkdir()
    (PROJECT / "campaigns" / "cart.yaml").write_text(CAMPAIGN)
    (PROJECT / "templates" / "cart.html").write_text("<p>Hi {{ customer.first_name }}</p>")
    _recreate(admin, TEMPLATE)
    clock = _Clock()
    followup = Followup(Project(ProjectConfig(database_url=_url(admin, TEMPLATE)), PROJECT), clock)
    try:
        followup.ingest_messages(_messages(customers))
        durable = DurableProject(followup)
        clock.now = T0 + timedelta(milliseconds=customers, minutes=1)
        durable.runtime.tick()  # the journeys and their timers
        durable.close()
    finally:
        followup.close()
    now = T0 + timedelta(milliseconds=customers, hours=2)
    _recreate(admin, DECIDED, TEMPLATE)
    clock.now = now
    followup = Followup(Project(ProjectConfig(database_url=_url(admin, DECIDED)), PROJECT), clock)
    try:
        durable = DurableProject(followup)
        durable.runtime.tick()  # every email decided, none delivered
        durable.close()
    finally:
        followup.close()
    return now


def _worker(url: str, now: str, partition: str, phase: str) -> None:
    """One pass at ``now`` over ``partition`` (deciding, or delivering); prints its start, end
    and how many timer customers (or outbox rows) it took."""
    clock = _Clock()
    clock.now = datetime.fromisoformat(now)
    followup = Followup(Project(ProjectConfig(database_url=url), PROJECT), clock)
    try:
        durable = DurableProject(followup, partition=Partition.parse(partition))
        start = time.time()
        if phase == "decide":
            took = durable.runtime.tick().timer_customers
        else:
            took = sum(durable.dispatcher.dispatch().values())
        print(json.dumps({"start": start, "end": time.time(), "took": took}), flush=True)
    finally:
        followup.close()


def _run(
    admin: str, workers: int, now: datetime, customers: int, partitioned: bool, phase: str
) -> tuple[float, int]:
    """The seconds K workers took, and how many customers (rows) they took in all."""
    name = f"followup_workers_{workers}"
    _recreate(admin, name, TEMPLATES[phase])
    shutil.rmtree(PROJECT / "outbox", ignore_errors=True)
    args = [sys.executable, "-m", "benchmarks.campaigns.workers_scale", "--worker"]
    parts = [str(Partition(i, workers)) if partitioned else "0/1" for i in range(workers)]
    processes = [
        subprocess.Popen(
            [*args, _url(admin, name), now.isoformat(), part, phase],
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in parts
    ]
    reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    engine = sa.create_engine(_url(admin, name))
    with engine.connect() as conn:  # each email decided (delivered) once, whoever took it
        decided = conn.scalar(sa.select(sa.func.count()).select_from(outbox))
        left = conn.scalar(sa.select(sa.func.count()).select_from(journey_timers))
        delivered = conn.scalar(
            sa.select(sa.func.count()).where(outbox.c.status == OutboxStatus.DELIVERED)
        )
    engine.dispose()
    if (decided, left) != (customers, 0):
        raise SystemExit(f"{workers} workers: {decided:,} emails, {left:,} timers left")
    files = len(list((PROJECT / "outbox").rglob("*.eml")))
    if phase == "deliver" and (delivered, files) != (customers, customers):
        raise SystemExit(f"{workers} workers: {delivered:,} delivered, {files:,} files")
    took = sum(r["took"] for r in reports)  # above N: customers another worker had just done
    return max(r["end"] for r in reports) - min(r["start"] for r in reports), took


def main() -> None:
    """Prepare the due work once, then time each number of workers on a copy of it."""
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--phases", nargs="+", choices=sorted(TEMPLATES), default=["decide", "deliver"]
    )
    parser.add_argument("--admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    now = _prepare(args.admin, args.customers)
    for phase in args.phases:
        single = None
        what = "due timers decided" if phase == "decide" else "emails delivered"
        for workers in args.workers:
            for partitioned in [False, True] if workers > 1 else [False]:
                seconds, took = _run(args.admin, workers, now, args.customers, partitioned, phase)
                single = single or seconds
                how = "" if workers == 1 else " partitioned" if partitioned else " shared"
                print(
                    f"{phase}, {workers} worker(s){how}: {args.customers:,} {what} in"
                    f" {seconds:.1f} s ({args.customers / seconds:,.0f}/s),"
                    f" {single / seconds:.2f}x one worker; took {took:,}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
