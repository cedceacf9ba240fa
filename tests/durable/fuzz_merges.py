"""Random streams of sign-ins around daily ticks, run durably with crashes and partitions, each
compared with ``simulate``'s plan: a search beside the property tests, too slow for the suite.

Shoppers known the day before sign up signed out on a device (an address, consent or not) before
a 09:00 tick, order, add to the cart, change consent, and sign in on the device around the tick,
over one to three days; one to five campaigns (the daily tick, a second one at 09:30, a cart
reminder 3 minutes after an add, two segment campaigns: an order within 90 minutes, one more
than 30 minutes old). In half the streams a quarter of the messages arrive up to 5 minutes ahead
of their timestamps (a client's clock ahead), though never before one stamped earlier. Passes
run around each tick, one just before it in half the days, each partition's pass a few minutes
after the last and after ingesting what has arrived by its time (no event comes in late); a pass
may die after any batch it commits, the first pass too (one customer to three a batch, or 500),
a partition may miss a pass, or every pass of a day but the clean one (a worker down: its ticks
run hours after the other partitions'), and a clean pass ends each day. A stream whose durable
run skipped or coalesced a tick (logged) is set aside: past the misfire grace that is by design.

``python -m tests.durable.fuzz_merges SEED COUNT [DATABASE_URL]`` runs the seeds ``SEED`` to
``SEED + COUNT - 1`` (on a fresh SQLite file each, or the PostgreSQL database given, emptied
first) and prints each difference and the tally; ``FUZZ_DEBUG=1`` prints the stream and the
passes.
"""

from __future__ import annotations

import difflib
import logging
import os
import random
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from tests.conftest import _empty_postgres
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_arrived,
    make_project,
    open_followup,
    simulated_plan,
    write_messages,
)

NINE = datetime(2024, 5, 6, 9, tzinfo=UTC)
CAMPAIGNS = {
    "daily": """campaign: daily
trigger: {schedule: "0 9 * * *", misfire_grace: 6h}
audience: customer.consent.email
steps:
  - send: email
    template: newsletter.html
    subject: daily
""",
    "later": """campaign: later
trigger: {schedule: "30 9 * * *", misfire_grace: 6h}
audience: customer.email and not customer.consent.email
steps:
  - send: email
    template: newsletter.html
    subject: later
""",
    "cart": """campaign: cart
trigger: {event: Product Added}
exit:
  - event: Order Completed
steps:
  - wait: 3m
  - send: email
    template: newsletter.html
    subject: cart
""",
    "lapsed": """campaign: lapsed
trigger: {segment: "customer.orders.last_at and customer.orders.last_at < now - minutes(30)"}
steps:
  - send: email
    template: newsletter.html
    subject: lapsed
""",
    "recent": """campaign: recent
trigger: {segment: "customer.orders.last_at and customer.orders.last_at > now - minutes(90)"}
steps:
  - send: email
    template: newsletter.html
    subject: recent
""",
}
DEBUG = bool(os.environ.get("FUZZ_DEBUG"))


class Killed(Exception):
    """A pass died."""


def stream(rnd: random.Random) -> tuple[list[dict[str, Any]], int]:
    """The messages of a stream, and over how many days."""
    messages: list[dict[str, Any]] = []

    def add(at: datetime, **fields: Any) -> None:
        number = len(messages) + 1
        messages.append({"messageId": f"m{number}", "timestamp": at.isoformat(), **fields})

    def around(tick: datetime, before: int, after: int) -> datetime:
        if rnd.random() < 0.3:  # close to the tick: within a pass's skew of it
            before, after = min(before, 5), min(after, 5)
        return tick + timedelta(minutes=rnd.randint(-before, after))

    days = rnd.randint(1, 3)
    for user in (f"u{i}" for i in range(rnd.randint(2, 8))):
        known = {"email": f"{user}@work.example"} if rnd.random() < 0.5 else {}
        add(NINE - timedelta(hours=rnd.randint(5, 20)), type="identify", userId=user, traits=known)
        for day in range(days):
            tick = NINE + timedelta(days=day)
            device = f"{user}-dev{day}-{rnd.randint(0, 1)}"
            if rnd.random() < 0.8:
                traits: dict[str, Any] = {}
                if rnd.random() < 0.7:
                    traits["email"] = f"{device}@home.example"
                if rnd.random() < 0.7:
                    traits["consent"] = {"email": rnd.random() < 0.8}
                at = tick - timedelta(minutes=rnd.randint(1, 240))
                add(at, type="identify", anonymousId=device, traits=traits)
            if rnd.random() < 0.4:
                order = {"order_id": f"o{len(messages)}", "revenue": 5}
                add(
                    around(tick, 120, 120),
                    type="track",
                    anonymousId=device,
                    event="Order Completed",
                    properties=order,
                )
            if rnd.random() < 0.3:
                consent = {"consent": {"email": rnd.random() < 0.5}}
                add(around(tick, 120, 120), type="identify", userId=user, traits=consent)
            if rnd.random() < 0.7:
                at = around(tick, 30, 90)
                add(at, type="identify", userId=user, anonymousId=device, traits={})
            if rnd.random() < 0.2:
                at = around(tick, 30, 90)
                add(at, type="track", userId=user, event="Product Viewed", properties={})
            if rnd.random() < 0.3:
                at = around(tick, 30, 90)
                add(at, type="track", anonymousId=device, event="Product Added", properties={})
    return messages, days


def stamped_ahead(rnd: random.Random, messages: list[dict[str, Any]]) -> dict[str, timedelta]:
    """Some messages arrive ahead of their timestamp, within the clock's skew, but after every
    message stamped before them (one arriving before an earlier one is a late event, whose
    profile ingest and simulate may found by different keys: docs/runtime.md): message id ->
    how far ahead. ``messages`` are in time order."""
    early: dict[str, timedelta] = {}
    last: datetime | None = None
    for message in messages:
        at = datetime.fromisoformat(str(message["timestamp"]))
        arrives = at - timedelta(seconds=rnd.randint(1, 299)) if rnd.random() < 0.25 else at
        arrives = max(arrives, last or arrives)
        early[str(message["messageId"])] = at - arrives
        last = arrives
    return early


def durable(
    project: Path,
    events: Path,
    url: str,
    rnd: random.Random,
    partitions: int,
    days: int,
    early: dict[str, timedelta],
    lagging: dict[int, int] | None = None,
    recount: dict[int, int] | None = None,
) -> list[str] | None:
    """The decisions log of the stream's passes (``None``: a tick was skipped or coalesced).
    ``lagging`` (day -> partition index): that partition misses every pass of the day but the
    clean one, so it runs the day's ticks hours after the others (within the misfire grace).
    ``recount`` (pass time index -> count): from that time on the passes are split in that many
    partitions; the old count's passes each run once more after the new count's first round,
    never killed (the operator runs them to the end, as docs/runtime.md asks)."""
    lagging = lagging or {}
    recount = recount or {}

    def arrives(record: Any) -> datetime:
        event = record.events[0]
        return event.timestamp - early.get(event.message_id, timedelta(0))

    records = sorted(read_jsonl(events), key=arrives)
    first = min(r.events[0].timestamp for r in records)
    clock = Clock(first)
    followup = open_followup(project, url, clock)
    armed, skipped = [False], [False]

    class Skips(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            skipped[0] = skipped[0] or "skipped" in record.getMessage()

    def kill(point: str) -> None:
        if armed[0] and rnd.random() < 0.35:
            armed[0] = False
            raise Killed(point)

    handler = Skips()
    logging.getLogger("followup.durable").addHandler(handler)

    def split(count: int, sizes: random.Random) -> list[DurableProject]:
        made = []
        for index in range(count):
            one = DurableProject(followup, partition=Partition(index, count), crash=kill)
            one.runtime.batch_size = sizes.choice([1, 1, 2, 3, 500])
            one.runtime.driver.committed = lambda _work: kill("committed")  # every batch
            made.append(one)
        return made

    try:
        passes = split(partitions, rnd)
        clean = {NINE + timedelta(days=day, minutes=200) for day in range(days + 1)}
        times = set(clean) | {first}
        for day in range(days + 1):
            for _ in range(rnd.randint(1, 4)):
                times.add(NINE + timedelta(days=day, minutes=rnd.randint(-60, 180)))
            if rnd.random() < 0.5:  # just before the tick
                times.add(NINE + timedelta(days=day, minutes=-rnd.randint(1, 4)))
        ordered = sorted(t for t in times if t >= first)
        taken, last = 0, first
        seen: list[str] = []
        for k, base in enumerate(ordered):
            final = base in clean or k == len(ordered) - 1
            old: list[DurableProject] = []
            if k in recount and not final:
                old, passes = passes, split(recount[k], random.Random(f"sizes {k}"))
                _say(f"passes split in {recount[k]} from now on")
            rnd.shuffle(passes)
            now = max(last, base)
            day_of = (base - NINE + timedelta(hours=2)) // timedelta(days=1)
            for j, one in enumerate(passes):
                now = last = now + timedelta(minutes=rnd.randint(0, 20) if j else 0)
                clock.now = now
                taken = ingest_arrived(followup, records, taken, now, early)
                if not final and lagging.get(day_of) == one.runtime.partition.index:
                    _say(f"pass {one.runtime.partition} {now:%d %H:%M} missed (lagging)")
                    continue
                if not final and k > 0 and partitions > 1 and rnd.random() < 0.2:
                    _say(f"pass {one.runtime.partition} {now:%d %H:%M} missed")
                    continue
                armed[0] = not final and (k > 0 or rnd.random() < 0.5)  # the first pass too
                try:
                    one.run_once()
                    _say(f"pass {one.runtime.partition} {now:%d %H:%M} ({taken} ingested)")
                except Killed as died:
                    _say(f"pass {one.runtime.partition} {now:%d %H:%M} killed at {died}")
                armed[0] = False
                if DEBUG:
                    decided = decision_lines(followup.engine)
                    for line in decided[len(seen) :] if decided[: len(seen)] == seen else decided:
                        print("    decided", line)
                    seen = decided
            for one in old:  # the old count's workers, run to the end once
                one.run_once()
                _say(f"pass {one.runtime.partition} {now:%d %H:%M} (old count, to the end)")
        followup.ingestor.ingest(records[taken:])
        for _ in range(2):
            for one in passes:
                one.run_once()
        return None if skipped[0] else decision_lines(followup.engine)
    finally:
        logging.getLogger("followup.durable").removeHandler(handler)
        followup.close()


def one_seed(seed: int, database_url: str | None) -> str:
    """Run seed ``seed``: "ok", "differs" (printed) or "set aside"."""
    rnd = random.Random(seed)
    messages, days = stream(rnd)
    messages.sort(key=lambda m: datetime.fromisoformat(str(m["timestamp"])))  # (stable)
    early = stamped_ahead(rnd, messages) if rnd.random() < 0.5 else {}
    partitions = rnd.choice([1, 1, 2, 3])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = make_project(root / "project", [])
        optional = ("later", "cart", "lapsed", "recent")
        chosen = ["daily"] + [name for name in optional if rnd.random() < 0.5]
        for name in chosen:
            (project / "campaigns" / f"{name}.yaml").write_text(CAMPAIGNS[name])
        events = write_messages(root / "events.jsonl", messages)
        expected = simulated_plan(project, events, until=NINE + timedelta(days=days, hours=6))
        if DEBUG:
            for message in sorted(messages, key=lambda m: str(m["timestamp"])):
                print(message)
        if database_url:
            _empty_postgres(database_url)
        url = database_url or f"sqlite:///{root / 'followup.db'}"
        # drawn apart, so the other draws of a seed stay as they were
        lag_rnd = random.Random(f"lagging {seed}")
        lagging = {
            day: lag_rnd.randrange(partitions)
            for day in range(days + 1)
            if partitions > 1 and lag_rnd.random() < 0.5
        }
        recount_rnd = random.Random(f"recount {seed}")
        recount = {
            k: recount_rnd.choice([1, 2, 3]) for k in range(1, 12) if recount_rnd.random() < 0.15
        }
        found = durable(project, events, url, rnd, partitions, days, early, lagging, recount)
        if found is None:
            return "set aside"
        if found == expected:
            return "ok"
        print(f"seed {seed}: {partitions} partition(s), campaigns {chosen}: differs")
        for line in difflib.unified_diff(expected, found, "simulate", "durable", lineterm=""):
            print("  ", line)
        return "differs"


def _say(text: str) -> None:
    if DEBUG:
        print(text)


def main(arguments: list[str]) -> int:
    seed, count = int(arguments[0]), int(arguments[1])
    database_url = arguments[2] if len(arguments) > 2 else None
    tally = Counter(one_seed(s, database_url) for s in range(seed, seed + count))
    print(dict(tally))
    return 1 if tally["differs"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
