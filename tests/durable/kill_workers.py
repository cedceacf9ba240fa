"""Two ``followup worker`` processes killed at random while they work through a shop's events.

``python -m tests.durable.kill_workers --rounds 20 [--seed N] [--kills 4] [--customers 600]``:
each round makes a fresh PostgreSQL database and project (the abandoned-cart and welcome-series
campaigns), ingests an event stream of abandoned carts (half the buyers order 30 minutes after
their last add) and newsletter signups, half before and half while two workers take passes from
a Redis broker, SIGKILLs a worker at random moments (and starts it again), then lets the workers
run to the end. One last pass past the outbox lease takes back what a killed worker left
``sending``. The delivered sends (the file outbox) are then compared with ``simulate``'s plan
for the same events: missing, unplanned, and duplicates (the same customer, step and time sent
under two journeys). Deadlocks and other errors in the worker logs are counted.

The stream is stamped days in the past, so every wait of both campaigns is due when the workers
run and the wall clock they use decides nothing. Each customer's events arrive in one ingest
batch, so no event is late (a late event may stop nothing already delivered). ``--revisits``
adds customers who come back days later and change their cart after the abandoned-cart's
one-day wait: the engine must decide that wait on the cart as it was then, as ``simulate`` does
(its view of the profile, docs/runtime.md), not on the cart ingest has stored since.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.drive.outbox_port import outbox_key
from engine.durable.project import DurableProject
from engine.events import parse_message
from engine.journeys.plan import PlanAction
from engine.journeys.simulate import simulate
from engine.workers.celery_app import PASS_TASK, create_app, pass_arguments
from tests.durable.harness import Clock, make_project, open_followup

BROKER = "redis://127.0.0.1:6379/15"
POSTGRES = os.environ.get(
    "FOLLOWUP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CAMPAIGNS = ["abandoned_cart", "welcome_series"]
FOLLOWUP = str(Path(sys.executable).with_name("followup"))
SETTLE = timedelta(minutes=6)  # the last pass: past the outbox lease of 5 minutes
Message = dict[str, Any]


# --- the stream ---------------------------------------------------------------------------------


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _identify(user: str, at: datetime) -> Message:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-identify",
        "timestamp": _stamp(at),
        "traits": {
            "email": f"{user}@example.com",
            "firstName": user.title(),
            "consent": {"email": True, "ads": True},
        },
    }


def _track(user: str, n: int, name: str, at: datetime, **properties: Any) -> Message:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": _stamp(at),
        "properties": properties,
    }


def _cart_story(rng: random.Random, user: str, at: datetime, buys: bool) -> list[Message]:
    """Adds 1-3 products a few minutes apart; a buyer orders 30 minutes after the last."""
    story = [_identify(user, at)]
    total = 0.0
    for n in range(rng.randint(1, 3)):
        at += timedelta(minutes=rng.randint(1, 4), seconds=rng.randint(0, 59))
        price = float(rng.choice([19, 35, 60, 90, 140]))
        total += price
        story.append(_track(user, n, "Product Added", at, product_id=f"p{n}", price=price))
    if buys:
        story.append(_track(user, 9, "Order Completed", at + timedelta(minutes=30), revenue=total))
    return story


def _signup_story(rng: random.Random, user: str, at: datetime, buys: bool) -> list[Message]:
    """A newsletter signup; a buyer orders within two days (before the 3-day discount)."""
    story = [
        _identify(user, at),
        _track(user, 0, "Subscribed", at + timedelta(seconds=30), list="newsletter"),
    ]
    if buys:
        later = at + timedelta(hours=rng.randint(1, 47), minutes=rng.randint(0, 59))
        story.append(_track(user, 9, "Order Completed", later, revenue=42.0))
    return story


def _revisit(rng: random.Random, story: list[Message]) -> list[Message]:
    """The same shopper back three days later, adding more (the known limit: the durable
    engine reads the cart as stored, simulate as of the day-later step)."""
    user = story[0]["userId"]
    at = datetime.fromisoformat(story[-1]["timestamp"]) + timedelta(days=3)
    return [*story, _track(user, 20, "Product Added", at, product_id="p20", price=150.0)]


def shop_stream(
    seed: int, customers: int, start: datetime, revisits: int = 0
) -> list[list[Message]]:
    """Each customer's messages (a list per customer): two thirds abandoned carts, one third
    newsletter signups, half of each ordering, their sessions spread over 90 minutes from
    ``start`` (dense enough that a buyer's add and order fall into different batches of 500)."""
    rng = random.Random(seed)
    stories = []
    for number in range(customers):
        user = f"u{number:05d}"
        at = start + timedelta(seconds=rng.randint(0, 90 * 60))
        buys = rng.random() < 0.5
        if number % 3 == 2:
            stories.append(_signup_story(rng, user, at, buys))
        else:
            story = _cart_story(rng, user, at, buys)
            stories.append(_revisit(rng, story) if number < revisits and not buys else story)
    rng.shuffle(stories)
    return stories


# --- the plan and what was delivered ------------------------------------------------------------

Send = tuple[str, str]  # (outbox key, due time to the second)


def _second(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def planned_sends(project: Path, messages: list[Message], until: datetime) -> Counter[Send]:
    """What ``simulate`` plans to deliver for ``messages``, to ``until``."""
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    events = [event for message in messages for event in parse_message(message)]
    plan = simulate(campaigns, events, ProjectConfig(), until)
    channel_actions = {PlanAction.SEND, PlanAction.AUDIENCE_ADD, PlanAction.AUDIENCE_REMOVE}
    return Counter(
        (outbox_key(line.journey, line.step or "", line.action.value), _second(line.at))
        for line in plan
        if line.action in channel_actions and line.status == "sent"
    )


def delivered_sends(project: Path) -> tuple[Counter[Send], Counter[tuple[str, ...]]]:
    """Every delivery in the file outbox by (key, due time), and by what the customer gets
    (address, campaign or audience, step, time): a count of 2 there is one send twice."""
    by_key: Counter[Send] = Counter()
    by_customer: Counter[tuple[str, ...]] = Counter()
    parser = email.parser.BytesHeaderParser()
    for file in sorted((project / "outbox" / "email").glob("*.eml")):
        headers = parser.parsebytes(file.read_bytes())
        at = email.utils.parsedate_to_datetime(str(headers["Date"]))
        by_key[(str(headers["X-Followup-Key"]), _second(at))] += 1
        by_customer[
            (
                str(headers["To"]),
                str(headers["X-Followup-Campaign"]),
                str(headers["X-Followup-Step"]),
                _second(at),
            )
        ] += 1
    for file in sorted((project / "outbox" / "ads").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            change = json.loads(line)
            at = _second(datetime.fromisoformat(change["at"]))
            by_key[(change["key"], at)] += 1
            step = change["key"].split(":", 1)[1]
            by_customer[(change["customer_id"], change["audience"], step, at)] += 1
    return by_key, by_customer


# --- one round ---------------------------------------------------------------------------------


@dataclass
class Round:
    """What one round saw."""

    planned: int = 0
    delivered: int = 0
    missing: int = 0
    unplanned: int = 0
    duplicates: int = 0
    deadlocks: int = 0
    errors: list[str] = field(default_factory=list)  # other tracebacks in the worker logs
    wrong: list[str] = field(default_factory=list)  # the sends missing (-) and unplanned (+)
    kills: int = 0
    targeted: int = 0  # kills of a worker another transaction was waiting on
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent, by phase

    @property
    def diverged(self) -> bool:
        """Whether the delivered sends differ from the plan in any way."""
        return bool(self.missing or self.unplanned or self.duplicates)

    def line(self) -> str:
        """The round on one line."""
        return (
            f"planned {self.planned} delivered {self.delivered} missing {self.missing} "
            f"unplanned {self.unplanned} duplicates {self.duplicates} deadlocks {self.deadlocks} "
            f"errors {len(self.errors)} kills {self.kills} (waited on {self.targeted}) "
            f"({self.seconds:.1f}s: "
            + ", ".join(f"{name} {spent:.1f}" for name, spent in self.phases.items())
            + ")"
        )


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"followup_kill_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Workers:
    """Two ``followup worker`` processes on one queue, each killed and started again at will.
    Each names its database connections (``application_name``), so the worker another
    transaction waits on can be found."""

    def __init__(self, project: Path, url: str, broker: str, queue: str, count: int = 2) -> None:
        config = project / "followup.yaml"
        self.command = [FOLLOWUP, "--config", str(config), "worker", "--broker", broker]
        self.command += ["--queue", queue]
        self.project = project
        self.url = url
        self.logs: list[Path] = []
        self.names: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        for index in range(count):
            self.processes.append(self._start(index))

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        name = f"kill-w{index}-{len(self.logs)}"
        log = self.project / f"{name}.log"
        self.logs.append(log)
        if index < len(self.names):
            self.names[index] = name
        else:
            self.names.append(name)
        env = {**os.environ, "COLUMNS": "200"}
        env["FOLLOWUP_DATABASE_URL"] = f"{self.url}?application_name={name}"
        with log.open("wb") as out:
            return subprocess.Popen(
                self.command, cwd=self.project, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every worker takes tasks."""
        deadline = time.monotonic() + timeout
        for index, name in enumerate(self.names):
            log = self.project / f"{name}.log"
            while " ready." not in log.read_text(errors="replace"):
                if time.monotonic() > deadline or self.processes[index].poll() is not None:
                    raise RuntimeError(f"worker {name} did not start: see {log}")
                time.sleep(0.1)

    def kill(self, index: int) -> None:
        """SIGKILL worker ``index`` (no cleanup, as an OOM kill) and start a new one."""
        process = self.processes[index]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.processes[index] = self._start(index)

    def waited_on(self, db: sa.Engine) -> int | None:
        """A worker holding a lock that the other waits for, if any: killing it then is the
        moment a pass dies holding what another pass is next in line for."""
        query = sa.text(
            "SELECT DISTINCT blocker.application_name FROM pg_stat_activity AS waiting "
            "CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS b(pid) "
            "JOIN pg_stat_activity AS blocker ON blocker.pid = b.pid "
            "WHERE waiting.datname = current_database() "
            "AND waiting.application_name LIKE 'kill-w%'"
        )
        with db.connect() as conn:
            names = set(conn.scalars(query))
        found = [index for index, name in enumerate(self.names) if name in names]
        return found[0] if found else None

    def stop(self) -> None:
        """SIGTERM every worker: the pass under way finishes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self) -> str:
        """Every worker's log, together."""
        return "".join(log.read_text(errors="replace") for log in self.logs)


def _remaining(db: sa.Engine) -> int:
    """Work the passes still have: events in the inbox, due timers, due outbox rows."""
    now = datetime.now(UTC)
    with db.connect() as conn:
        return sum(
            conn.scalar(sa.text(sql), {"now": now}) or 0
            for sql in (
                "SELECT count(*) FROM journey_inbox",
                "SELECT count(*) FROM journey_timers WHERE due_at <= :now",
                "SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at <= :now",
            )
        )


def _errors(text: str) -> tuple[int, list[str]]:
    """Deadlocks, and every other failed task, in the workers' logs."""
    deadlocks = text.count("deadlock detected")
    tracebacks = text.split("Traceback (most recent call last)")[1:]
    return deadlocks, [chunk[-600:] for chunk in tracebacks if "deadlock detected" not in chunk]


def run_round(
    folder: Path,
    seed: int,
    kills: int = 4,
    customers: int = 600,
    revisits: int = 0,
    broker: str = BROKER,
    partitions: int = 1,
) -> Round:
    """One round in ``folder`` (see the module docstring); each round of passes enqueued is
    one pass, or one per partition of ``partitions``."""
    began = time.monotonic()
    rng = random.Random(seed)
    result = Round()
    last = [began]

    def phase(name: str) -> None:
        now = time.monotonic()
        result.phases[name] = result.phases.get(name, 0.0) + now - last[0]
        last[0] = now

    project = make_project(folder, CAMPAIGNS)
    stories = shop_stream(seed, customers, datetime.now(UTC) - timedelta(days=6), revisits)
    with fresh_database() as url:
        (project / "followup.yaml").write_text(f"database_url: {url}\n")
        queue = f"followup-kill-{uuid.uuid4().hex[:8]}"
        app = create_app(project / "followup.yaml", broker, queue=queue)
        clock = Clock(datetime.now(UTC))
        followup = open_followup(project, url, clock)
        workers = None
        try:
            parts = [stories[n::kills] for n in range(kills)]  # whole customers

            def passes(n: int = 2) -> None:
                for _ in range(n):
                    for args in pass_arguments(partitions):
                        app.send_task(PASS_TASK, args=args)

            workers = Workers(project, url, broker, queue)
            for part in parts:  # a backlog for both workers, then a kill
                workers.wait_ready()
                phase("start")
                followup.ingest_messages([message for story in part for message in story])
                phase("ingest")
                passes()
                deadline = time.monotonic() + rng.uniform(1.0, 3.0)
                victim = None  # a worker the other waits on, else one at random
                while victim is None and time.monotonic() < deadline:
                    victim = workers.waited_on(followup.engine)
                    time.sleep(0.02)
                workers.kill(rng.randrange(2) if victim is None else victim)
                result.kills += 1
                result.targeted += victim is not None
                phase("kill")
            deadline = time.monotonic() + 300
            quiet = 0
            while quiet < 3 and time.monotonic() < deadline:  # three looks in a row find nothing
                passes()
                time.sleep(1.0)
                quiet = quiet + 1 if _remaining(followup.engine) == 0 else 0
            phase("to the end")
            workers.stop()
            phase("stop")
            # the last pass, past the lease: rows a killed worker left `sending` go again
            settle = datetime.now(UTC) + SETTLE
            clock.now = settle
            durable = DurableProject(followup)
            try:
                durable.run_once()
            finally:
                durable.close()
            phase("settle")
        finally:
            if workers is not None:
                workers.stop()
            followup.close()
            app.close()
    planned = planned_sends(project, [m for story in stories for m in story], settle)
    delivered, by_customer = delivered_sends(project)
    result.planned = sum(planned.values())
    result.delivered = sum(delivered.values())
    result.missing = sum((planned - delivered).values())
    result.unplanned = sum((delivered - planned).values())
    result.wrong = [f"- {key} {at}" for key, at in sorted(planned - delivered)]
    result.wrong += [f"+ {key} {at}" for key, at in sorted(delivered - planned)]
    result.duplicates = sum(n - 1 for n in by_customer.values() if n > 1)
    result.deadlocks, result.errors = _errors(workers.log_text())
    phase("compare")
    result.seconds = time.monotonic() - began
    return result


def main(argv: list[str] | None = None) -> int:
    """Run rounds and print each; exit 1 when any diverged or failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.durable.kill_workers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs per round")
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--revisits", type=int, default=0, help="carts added to days later")
    parser.add_argument("--partitions", type=int, default=1, help="passes split in partitions")
    parser.add_argument("--folder", type=Path, default=Path("build/kill_workers"))
    parser.add_argument("--verbose", action="store_true", help="list each send that differs")
    args = parser.parse_args(argv)
    failed = 0
    for number in range(args.rounds):
        seed = args.seed + number
        folder = args.folder.resolve() / f"round-{seed}"
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        found = run_round(
            folder, seed, args.kills, args.customers, args.revisits, partitions=args.partitions
        )
        bad = found.diverged or found.errors or found.deadlocks
        failed += bool(bad)
        print(f"round {number + 1} seed {seed}: {found.line()}", flush=True)
        if args.verbose:
            for wrong in found.wrong:
                print("   ", wrong, flush=True)
        for error in found.errors[:3]:
            print("   ", error.strip().replace("\n", "\n    "), flush=True)
    print(f"{failed} of {args.rounds} rounds diverged or failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
