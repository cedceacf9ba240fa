"""Provider throttles (``rate: 20/s`` under a provider): one bucket on the database, shared by
every process, and a dispatcher that waits its turn or puts a row off."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.cli.status_command import status_json
from engine.config import Project, ProjectConfig
from engine.drive.status_model import status_report
from engine.durable.project import DurableProject
from engine.durable.sql_status import SqlStatusReads
from engine.durable.throttles import Throttles
from engine.rates import Rate, parse_rate
from engine.storage.database import open_database
from engine.storage.tables import outbox
from tests.durable.harness import (
    Clock,
    ingest_file,
    message,
    one_campaign_project,
    write_messages,
)

TAKER = """
import sys, time, orjson
from engine.durable.throttles import Throttles
from engine.rates import Rate
from engine.storage.database import open_database
read = []
def wall():
    read.append(time.time())
    return read[-1]
throttles = Throttles(open_database(sys.argv[1]), wall=wall)
slots = []
for _ in range(int(sys.argv[2])):
    wait = throttles.take("email", Rate(50, 1), max_wait=60)
    slots.append(read[-1] + wait)  # the turn taken, from the time the bucket was read at
print(orjson.dumps(slots).decode())
"""


def test_rates_read_as_calls_per_second_minute_or_hour() -> None:
    assert parse_rate("20/s") == Rate(20, 1)
    assert parse_rate("600 / min") == Rate(600, 60)
    assert str(parse_rate("10000/h")) == "10000/h"
    for wrong in ("20", "0/s", "20/fortnight", 20):
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate(wrong)


def test_processes_together_keep_to_the_rate(database_url: str) -> None:
    """Four processes take 40 turns each of one 50/s bucket: whatever their interleaving, any
    100 calls of the 160 span a second at least (the 50 the full bucket holds, then one every
    20 ms); a lost update would let two processes take one turn."""
    open_database(database_url).dispose()  # migrated once, before the processes race
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, database_url, "40"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    slots = sorted(slot for taker in takers for slot in orjson.loads(taker.communicate()[0]))
    assert all(taker.returncode == 0 for taker in takers)
    assert len(slots) == 160
    tight = min(later - first for first, later in zip(slots, slots[100:], strict=False))
    assert tight >= 1.0 - 1e-3


def test_a_turn_too_far_off_is_not_taken(database_url: str) -> None:
    db = open_database(database_url)
    try:
        wall = [1000.0]
        throttles = Throttles(db, wall=lambda: wall[0])
        hourly = Rate(2, 3600)
        assert [throttles.take("call", hourly) for _ in range(2)] == [0.0, 0.0]
        assert throttles.take("call", hourly) == pytest.approx(1800.0)
        assert throttles.take("call", hourly) == pytest.approx(1800.0)  # nothing was reserved
        wall[0] += 1800
        assert throttles.take("call", hourly) == 0.0
        # a faster rate now: held back a bucket's time at most, not the hour the old one had
        assert throttles.take("call", Rate(100, 1)) <= 2.0
    finally:
        db.dispose()


T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
WELCOME = """\
campaign: welcome
trigger: {event: Signed Up}
steps:
  - send: email
    template: hello.html
    subject: Welcome
"""


def test_the_dispatcher_puts_off_what_the_throttle_has_no_turn_for(
    tmp_path: Path, database_url: str
) -> None:
    one_campaign_project(tmp_path, WELCOME, {"hello.html": "<p>Hello</p>\n"})
    lines = []
    for n in range(4):
        lines.append(
            {
                **message(
                    f"i{n}", "identify", T, email=f"u{n}@example.com", consent={"email": True}
                ),
                "userId": f"u{n}",
            }
        )
        lines.append({**message(f"s{n}", "Signed Up", T), "userId": f"u{n}"})
    events = write_messages(tmp_path / "events.jsonl", lines)
    clock = Clock(T + timedelta(minutes=1))
    providers = {"email": {"provider": "outbox", "path": "outbox/email", "rate": "2/h"}}
    config = ProjectConfig(database_url=database_url, providers=providers)
    followup = Followup(Project(config, tmp_path), clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        assert durable.dispatcher.rates == {"email": Rate(2, 3600)}
        result = durable.run_once()
        assert result.outbox["email:delivered"] == 2
        assert result.outbox["email:throttled"] == 2
        with followup.engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.detail, outbox.c.next_attempt_at, outbox.c.attempts)
                .where(outbox.c.status == "pending")
                .order_by(outbox.c.id)
            ).all()
        # in their order, each at its own turn: 30 minutes apart at 2/h
        assert [(detail, attempts) for detail, _due, attempts in rows] == [
            ("throttled: providers.email.rate is 2/h", 0)
        ] * 2
        first, second = (due - clock.now for _detail, due, _attempts in rows)
        assert timedelta(minutes=29) < first <= timedelta(minutes=30)
        assert second - first == timedelta(minutes=30)
        with followup.engine.connect() as conn:
            report = status_report(
                SqlStatusReads(conn), {}, clock.now, rates=durable.dispatcher.rates
            )
        (throttle,) = report.throttles
        assert (throttle.channel, throttle.rate, throttle.waiting) == ("email", "2/h", 2)
        assert throttle.full_at is not None
        assert status_json(report)["throttles"]["email"]["waiting"] == 2
    finally:
        followup.close()


def test_a_batch_with_no_turn_for_any_message_is_put_off_whole(
    tmp_path: Path, database_url: str
) -> None:
    """The file outbox takes a page as one batch, but a throttle counts each message: with
    the bucket empty, every row of the page is put off, and the dispatch goes on."""
    one_campaign_project(tmp_path, WELCOME, {"hello.html": "<p>Hello</p>\n"})

    def signups(first: int, path: Path) -> Path:
        lines = []
        for n in range(first, first + 2):
            identify = message(
                f"i{n}", "identify", T, email=f"u{n}@example.com", consent={"email": True}
            )
            lines += [{**identify, "userId": f"u{n}"}]
            lines += [{**message(f"s{n}", "Signed Up", T), "userId": f"u{n}"}]
        return write_messages(path, lines)

    clock = Clock(T + timedelta(minutes=1))
    providers = {"email": {"provider": "outbox", "path": "outbox/email", "rate": "2/h"}}
    config = ProjectConfig(database_url=database_url, providers=providers)
    followup = Followup(Project(config, tmp_path), clock)
    try:
        ingest_file(followup, signups(0, tmp_path / "first.jsonl"))
        durable = DurableProject(followup)
        assert durable.run_once().outbox["email:delivered"] == 2  # the bucket is empty now
        ingest_file(followup, signups(2, tmp_path / "second.jsonl"))
        result = durable.run_once()
        assert result.outbox["email:delivered"] == 0
        assert result.outbox["email:throttled"] == 2
    finally:
        followup.close()
