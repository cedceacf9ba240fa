"""The durable runtime under load: N customers with a pending 1h wait each, then one pass that
sweeps the N due timers (deciding N emails), then the outbox delivering them as .eml files.
Then a segment campaign is added: the first pass looks at every customer once (booking each
one's next look), the hourly pass after it only at the looks due. Each of the engine's phases
and the delivery is followed by its floor (:mod:`benchmarks.campaigns.engine_floor`,
:mod:`benchmarks.campaigns.engine_floor_pg`, :mod:`benchmarks.campaigns.delivery_floor`): the
same row work by plain ``sqlite3`` or ``psycopg`` on a copy of the database taken before the
phase, and the ratio.

``python -m benchmarks.campaigns.durable_run [--customers N] [--database URL] [--template FILE]
[--engine-rounds K] [--delivery-rounds K]`` (default 20,000 customers on a fresh SQLite file
under benchmarks/.work/, a one-line email). Prints the rate of each phase; with rounds, each
engine phase and the delivery run K times beside their floors, in turns, and the lowest times
are compared (this machine's speed drifts by a fifth within minutes).
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from benchmarks.campaigns.delivery_floor import deliver_floor, deliver_floor_pg
from benchmarks.campaigns.engine_floor import events_floor, timers_floor
from benchmarks.campaigns.engine_floor_pg import events_floor_pg, timers_floor_pg
from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.durable.runtime import DurableRuntime

WORK = Path(__file__).resolve().parents[1] / ".work" / "durable-run"
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CAMPAIGN = """campaign: cart
trigger: {event: Product Added}
audience: customer.email and customer.consent.email
steps:
  - wait: 1h
  - send: email
    template: cart.html
    subject: "{{ customer.first_name or 'Hi' }}, your cart"
"""

LAPSED = """campaign: lapsed
trigger:
  segment: customer.orders.last_at and customer.orders.last_at < now - days(90)
steps:
  - send: email
    template: cart.html
    subject: We miss you
"""


PHASES = {
    "events": "events through the engine (pending timers made)",
    "timers": "due timers swept (emails decided)",
}

COPIES: list[str] = []  # the PostgreSQL databases copied for the floors, dropped at the end


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _messages(customers: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for number in range(customers):
        user, at = f"u{number}", (T0 + timedelta(milliseconds=number)).isoformat()
        out.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-i",
                "timestamp": at,
                "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
            }
        )
        out.append(
            {
                "type": "track",
                "event": "Product Added",
                "userId": user,
                "messageId": f"{user}-a",
                "timestamp": at,
                "properties": {"product_id": "p", "price": 20},
            }
        )
    return out


def _admin(url: str, *statements: str) -> None:
    """Run ``statements`` on the PostgreSQL server of ``url``, outside any transaction."""
    admin = sa.create_engine(
        sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    admin.dispose()


def _drop_copies(url: str) -> None:
    """Drop the copies of a PostgreSQL database (a SQLite copy is a file in WORK)."""
    if COPIES:
        _admin(url, *(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)' for copy in COPIES))
        COPIES.clear()


def _copy_database(followup: Followup, url: str, name: str) -> Path | str | None:
    """A copy of the database as it is (a floor does the same row work on it): a file beside
    it on SQLite, on PostgreSQL a database made from it as a template (the URL)."""
    if url.startswith("postgresql"):
        copy = "floor_" + name.split(".")[0].replace("-", "_")
        followup.engine.dispose()  # a template database must have no other connection
        source = sa.make_url(url).database
        _admin(
            url,
            f'DROP DATABASE IF EXISTS "{copy}"',
            f'CREATE DATABASE "{copy}" TEMPLATE "{source}"',
        )
        COPIES.append(copy)
        return sa.make_url(url).set(database=copy).render_as_string(hide_password=False)
    if not url.startswith("sqlite:///"):
        return None
    target = WORK / name
    with followup.engine.connect() as conn:
        conn.exec_driver_sql(f"VACUUM INTO '{target}'")
    return target


def _timed(label: str, count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"{label}: {count:,} in {seconds:.1f} s ({count / seconds:,.0f}/s)", flush=True)
    return seconds


def _pass(label: str, runtime: DurableRuntime, field: str, expected: int) -> float:
    """One pass, timed; ``field`` of its summary must count ``expected`` (a pass that took
    less, its clock short of the last event say, would report a rate it did not reach)."""
    start = time.perf_counter()
    done = getattr(runtime.tick(), field)
    seconds = time.perf_counter() - start
    if done != expected:
        raise SystemExit(f"{label}: the pass took {done:,}, not {expected:,}")
    print(f"{label}: {done:,} in {seconds:.1f} s ({done / seconds:,.0f}/s)", flush=True)
    return seconds


def _floor_time(
    copy: Path | str | None, count: int, phase: str, now: datetime, folder: Path | None = None
) -> float | None:
    """The floor of ``phase`` (events, timers, delivery into ``folder``) on its copy of the
    database: by sqlite3 on a file, by psycopg on a PostgreSQL URL (``None``: no copy)."""
    if copy is None:
        return None
    folder = folder or WORK / "floor-outbox"  # the delivery's, group commit as followup's
    work: Callable[[], int]
    if isinstance(copy, Path):
        how, stamp = "sqlite3", now.strftime("%Y-%m-%d %H:%M:%S.%f")
        work = {
            "events": lambda: events_floor(copy, stamp),
            "timers": lambda: timers_floor(copy, stamp),
            "delivery": lambda: deliver_floor(copy, folder, now.isoformat()),
        }[phase]
    else:
        how = "psycopg"
        work = {
            "events": lambda: events_floor_pg(copy, now),
            "timers": lambda: timers_floor_pg(copy, now),
            "delivery": lambda: deliver_floor_pg(copy, folder, now),
        }[phase]
    start = time.perf_counter()
    done = work()
    seconds = time.perf_counter() - start
    if done != count:
        raise SystemExit(f"the {phase} floor did {done:,}, not {count:,}")
    print(f"  floor: the same rows by {how}: {seconds:.1f} s", flush=True)
    return seconds


def _ratio(followup_seconds: float, floor_seconds: float | None) -> None:
    if floor_seconds:
        print(f"  followup / floor: {followup_seconds / floor_seconds:.1f}x", flush=True)


def _engine_rounds(
    followup: Followup,
    url: str,
    clock: _Clock,
    phase: str,
    field: str,
    count: int,
    rounds: int,
) -> tuple[list[float], list[float]]:
    """An engine phase (``events`` or ``timers``) beside its floor, ``rounds`` times, each side
    on its own copy of the database as it is now, in turns (as :func:`_deliveries`): the
    seconds of each side. (The phase itself then runs on the database, which the next phase
    goes on from.) One run of each side moves by a fifth or more on this machine from one
    minute to the next: the lowest of each side are the figures to compare. A copy's pass
    starts a project of its own: it also loads the campaigns and compiles the template, a few
    milliseconds."""
    label = PHASES[phase]
    copies = [
        (
            _copy_database(followup, url, f"{phase}-{r}.db"),
            _copy_database(followup, url, f"{phase}-floor-{r}.db"),
        )
        for r in range(rounds)
    ]
    spent: list[float] = []
    floors: list[float] = []
    for number, (mine, theirs) in enumerate(copies):
        if mine is None or theirs is None:
            raise SystemExit("the engine phases' copies need SQLite or PostgreSQL")
        for side in ("followup", "floor") if number % 2 == 0 else ("floor", "followup"):
            if side == "followup":
                spent.append(_pass_on_copy(mine, clock, label, field, count))
            else:
                floors.append(_floor_time(theirs, count, phase, clock.now) or 0.0)
    return spent, floors


def _pass_on_copy(copy: Path | str, clock: _Clock, label: str, field: str, count: int) -> float:
    """One pass of a durable runtime on ``copy`` of the database, timed."""
    url = f"sqlite:///{copy}" if isinstance(copy, Path) else str(copy)
    followup = Followup(Project(ProjectConfig(database_url=url), WORK), clock)
    durable = DurableProject(followup)
    try:
        return _pass(label, durable.runtime, field, count)
    finally:
        durable.close()
        followup.close()


def _compare(spent: list[float], floors: list[float]) -> None:
    """Each round's ratio, and the lowest of followup's times against the lowest floor."""
    each = ", ".join(f"{a / b:.1f}x" for a, b in zip(spent, floors, strict=True))
    print(
        f"  followup / floor: {each}; lowest against lowest: {min(spent) / min(floors):.1f}x",
        flush=True,
    )


def _deliveries(
    followup: Followup, url: str, clock: _Clock, n: int, rounds: int, outboxes: Path
) -> None:
    """The outbox delivered ``rounds`` times beside its floor, each on its own copy of the
    database as the timers left it, into its own folder under ``outboxes``, in turns (followup
    then the floor, then the floor then followup, ...). File creation on this disk drifts by 3x
    within minutes (and a deletion slows what comes next: it is mounted with ``discard``, so
    nothing is deleted meanwhile); the lowest of each side are the figures compared."""
    spent: list[float] = []
    floors: list[float] = []
    copies = [
        (
            _copy_database(followup, url, f"delivery-{r}.db"),
            _copy_database(followup, url, f"floor-{r}.db"),
        )
        for r in range(rounds)
    ]
    for number, (mine, theirs) in enumerate(copies):
        if mine is None or theirs is None:
            raise SystemExit("the delivery's copies need SQLite or PostgreSQL")
        my_folder, floor_folder = outboxes / f"outbox-{number}", outboxes / f"floor-outbox-{number}"
        for folder in (my_folder, floor_folder):
            shutil.rmtree(folder, ignore_errors=True)  # an earlier run's (under WORK: gone)
        for side in ("followup", "floor") if number % 2 == 0 else ("floor", "followup"):
            if side == "followup":
                spent.append(_deliver_copy(mine, clock, n, my_folder))
            else:
                floors.append(_floor_time(theirs, n, "delivery", clock.now, floor_folder) or 0.0)
    _compare(spent, floors)


def _deliver_copy(copy: Path | str, clock: _Clock, n: int, folder: Path) -> float:
    """Followup's dispatcher on ``copy`` of the database, into ``folder``."""
    url = f"sqlite:///{copy}" if isinstance(copy, Path) else str(copy)
    outbox = {"email": {"provider": "outbox", "path": str(folder)}}
    config = ProjectConfig(database_url=url, providers=outbox)
    followup = Followup(Project(config, WORK), clock)
    durable = DurableProject(followup)
    try:
        return _timed("outbox delivered (.eml files)", n, durable.dispatcher.dispatch)
    finally:
        durable.close()
        followup.close()


def main() -> None:
    """Run the three phases and print their rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", help="default: a fresh SQLite file")
    parser.add_argument(
        "--no-delivery", action="store_true", help="leave the outbox undelivered (big runs)"
    )
    parser.add_argument(
        "--engine-rounds",
        type=int,
        default=1,
        help="each engine phase and its floor this many times, in turn: all but the last on "
        "copies of the database (default 1)",
    )
    parser.add_argument(
        "--delivery-rounds",
        type=int,
        default=2,
        help="deliveries and floors, in turn, each on its own copy (default 2)",
    )
    parser.add_argument(
        "--outboxes",
        type=Path,
        help="where the deliveries' folders go (default: beside the database; /dev/shm "
        "leaves the disk out and compares the work alone)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="the cart email's template (default: one line; templates/abandoned_cart.html "
        "is the example shops copy)",
    )
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "campaigns").mkdir(parents=True)
    (WORK / "templates").mkdir()
    (WORK / "campaigns" / "cart.yaml").write_text(CAMPAIGN)
    template = args.template.read_text() if args.template else "<p>Hi {{ customer.first_name }}</p>"
    (WORK / "templates" / "cart.html").write_text(template)
    url = args.database or f"sqlite:///{WORK / 'followup.db'}"
    clock = _Clock()
    followup = Followup(Project(ProjectConfig(database_url=url), WORK), clock)
    try:
        n = args.customers
        _timed("ingest (events)", 2 * n, lambda: followup.ingest_messages(_messages(n)))
        durable = DurableProject(followup)
        clock.now = T0 + timedelta(milliseconds=n, minutes=1)  # after the last event
        for phase, field, count, at in (
            ("events", "events", 2 * n, timedelta(minutes=1)),  # after the last event
            ("timers", "timer_customers", n, timedelta(hours=2)),  # every wait of 1h is over
        ):
            clock.now = T0 + timedelta(milliseconds=n) + at
            rounds = max(1, args.engine_rounds)
            spent, floors = _engine_rounds(followup, url, clock, phase, field, count, rounds - 1)
            copy = _copy_database(followup, url, f"{phase}-floor.db")
            spent.append(_pass(PHASES[phase], durable.runtime, field, count))
            floors.append(_floor_time(copy, count, phase, clock.now) or 0.0)
            if rounds == 1:
                _ratio(spent[0], floors[0] or None)
            elif all(floors):
                _compare(spent, floors)
        if not args.no_delivery:
            outboxes = args.outboxes or WORK
            _deliveries(followup, url, clock, n, args.delivery_rounds, outboxes)
        (WORK / "campaigns" / "lapsed.yaml").write_text(LAPSED)
        durable.close()
        durable = DurableProject(followup)
        for label in ("segment campaign added: the first pass", "the next hourly pass"):
            clock.now += timedelta(hours=1)
            start = time.perf_counter()
            swept = durable.runtime.tick().swept_customers
            seconds = time.perf_counter() - start
            print(f"{label}: {swept:,} customers looked at in {seconds:.3f} s", flush=True)
    finally:
        followup.close()
        _drop_copies(url)


if __name__ == "__main__":
    main()
