"""Segment sweeps in the durable runtime look only at the customers whose answer can turn.

Each customer's next look is kept in ``segment_looks``: the first time their segment condition
may turn, or what keeps them out (audience, cooldown, a running journey) may end. The hourly
sweep takes only the looks that are due; every customer is looked at once more whenever the
segment campaigns change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.durable.runtime import TickSummary
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import customers, segment_looks
from tests.durable.harness import (
    STORIES,
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    open_followup,
    plan_lines,
    replay_when_due,
    simulated_plan,
    write_messages,
)
from tests.durable.test_merged_before_its_tick import DAILY, LAPSED

WIN_BACK = STORIES / "win_back_events.jsonl"
START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Shop:
    """A project with the win-back example on SQLite, and its clock (at :data:`START`)."""

    project: Path
    clock: Clock
    followup: Followup


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    project = make_project(tmp_path, ["win_back"])
    clock = Clock(START)
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        yield Shop(project, clock, followup)
    finally:
        followup.close()


def _entered(followup: Followup) -> list[str]:
    """The decisions that entered a journey."""
    return [line for line in decision_lines(followup.engine) if " enter " in line]


def test_passes_only_when_due_decide_what_simulate_plans(database_url: str, tmp_path: Path) -> None:
    project = make_project(tmp_path, ["win_back"])
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    followup = open_followup(project, database_url, clock)
    try:
        times = sorted(e.timestamp for r in read_jsonl(WIN_BACK) for e in getattr(r, "events", []))
        clock.now = times[0]
        durable = DurableProject(followup)  # first seen at the first event, as simulate starts
        end = datetime(2024, 7, 10, tzinfo=UTC)  # past the second customer's entry and ad
        passes = replay_when_due(durable, clock, WIN_BACK, end)
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        events = [e for r in read_jsonl(WIN_BACK) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, events, ProjectConfig(), end)))
        assert len(expected) == 7 and decision_lines(followup.engine) == expected
        hours = (end - times[0]) // timedelta(hours=1)
        assert passes < hours / 50  # a pass at each look, not every hour of half a year
    finally:
        followup.close()


def _orders(folder: Path, placed: dict[str, datetime]) -> Path:
    """A JSONL file: each customer consents to email and orders once, at the given time."""
    lines = []
    for user, at in placed.items():
        lines.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"i-{user}",
                "timestamp": at.isoformat(),
                "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
            }
        )
        lines.append(
            {
                "type": "track",
                "event": "Order Completed",
                "userId": user,
                "messageId": f"o-{user}",
                "timestamp": (at + timedelta(minutes=1)).isoformat(),
                "properties": {"order_id": user, "revenue": 10},
            }
        )
    path = folder / "orders.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def test_a_sweep_looks_only_at_the_customers_due(shop: Shop, tmp_path: Path) -> None:
    placed = {f"u{n:02d}": START + timedelta(days=n) for n in range(20)}
    ingest_file(shop.followup, _orders(tmp_path, placed))
    shop.clock.now = START + timedelta(days=20)
    durable = DurableProject(shop.followup)
    first = durable.run_once().engine
    assert first.swept_customers == 20  # new segment campaigns: everyone once
    with shop.followup.engine.connect() as conn:
        looks = dict(
            conn.execute(sa.select(segment_looks.c.customer_id, segment_looks.c.due_at)).all()
        )
    assert len(looks) == 20
    # each look falls when the 90 days since the order are over, to the second
    for user, at in placed.items():
        lapse = at + timedelta(minutes=1, days=90)
        assert lapse < looks[shop.followup.customer_id(user)] <= lapse + timedelta(seconds=1)
    shop.clock.now += timedelta(hours=1)
    assert durable.run_once().engine.swept_customers == 0
    shop.clock.now = START + timedelta(days=92, hours=12)  # u00, u01 and u02 have lapsed
    lapsed = durable.run_once()
    assert lapsed.engine.swept_customers == 3
    assert len(_entered(shop.followup)) == 3


def test_a_pass_run_late_sweeps_the_missed_hour_before_a_later_event(
    shop: Shop, tmp_path: Path
) -> None:
    """u00 lapses 90 days after their order; no pass ran for hours after, and the next one
    takes an event of theirs from after the lapse: they enter at the hourly sweep the lapse
    fell to, as simulate plans, not at the event (the pass took its events before its sweeps,
    and the event's own look entered them). The sweeps fall on the hours of UTC, not at the
    minute of the first pass."""
    ingest_file(shop.followup, _orders(tmp_path, {"u00": START}))
    shop.clock.now = START + timedelta(minutes=2)
    durable = DurableProject(shop.followup)
    assert durable.run_once().engine.swept_customers == 1
    lapse = START + timedelta(days=90, minutes=1)
    later = lapse + timedelta(hours=3)
    ingest_file(shop.followup, _identify(tmp_path, "u00", later, {"first_name": "Uma"}))
    shop.clock.now = lapse + timedelta(hours=5)
    durable.run_once()
    assert [line.split()[0] for line in _entered(shop.followup)] == ["2024-03-31T01:00:00Z"]


def test_a_changed_segment_campaign_looks_at_everyone_again(shop: Shop, tmp_path: Path) -> None:
    placed = {f"u{n:02d}": START + timedelta(days=n) for n in range(10)}
    ingest_file(shop.followup, _orders(tmp_path, placed))
    clock = shop.clock
    clock.now = START + timedelta(days=20)
    assert DurableProject(shop.followup).run_once().engine.swept_customers == 10
    clock.now += timedelta(hours=1)
    assert DurableProject(shop.followup).run_once().engine.swept_customers == 0
    win_back = shop.project / "campaigns" / "win_back.yaml"
    win_back.write_text(win_back.read_text().replace("days(90)", "days(14)"))
    clock.now += timedelta(hours=1)
    changed = DurableProject(shop.followup).run_once()
    assert changed.engine.swept_customers == 10
    assert len(_entered(shop.followup)) == 7  # orders from day 0 to day 6 are more than 14 days old


def _identify(folder: Path, user: str, at: datetime, traits: dict[str, object]) -> Path:
    line = {"type": "identify", "userId": user, "messageId": f"i-{user}-{at.isoformat()}"}
    path = folder / f"identify-{user}-{at:%H%M}.jsonl"
    path.write_bytes(orjson.dumps({**line, "timestamp": at.isoformat(), "traits": traits}) + b"\n")
    return path


def test_segment_campaigns_paused_then_resumed_look_at_everyone_again(
    shop: Shop, tmp_path: Path
) -> None:
    """While no segment campaign is active, events are taken without a look at the segments;
    when the same campaigns come back, everyone is looked at once (as every hourly sweep did)."""
    win_back = shop.project / "campaigns" / "win_back.yaml"
    active = win_back.read_text().replace(
        "customer.orders.last_at and customer.orders.last_at < now - days(90)",
        "customer.traits.vip",
    )
    win_back.write_text(active)
    followup, clock = shop.followup, shop.clock
    ingest_file(followup, _identify(tmp_path, "u1", START, {"consent": {"email": True}}))
    clock.now = START + timedelta(hours=1)
    assert DurableProject(followup).run_once().engine.swept_customers == 1
    win_back.write_text(active.replace("status: active", "status: paused"))
    clock.now += timedelta(hours=1)
    DurableProject(followup).run_once()
    ingest_file(followup, _identify(tmp_path, "u1", clock.now, {"vip": True}))
    clock.now += timedelta(hours=1)
    assert DurableProject(followup).run_once().engine.events == 1  # taken while paused
    win_back.write_text(active)
    for _ in range(2):
        clock.now += timedelta(hours=1)
        DurableProject(followup).run_once()
    assert len(_entered(followup)) == 1


@pytest.mark.external_service
def test_a_sweep_and_an_event_of_the_same_customer_side_by_side(
    empty_postgres: str, tmp_path: Path
) -> None:
    """On PostgreSQL an event batch locks its customers, then books their looks; a sweep of
    the due looks takes them in the same order, so the two never wait on each other."""
    project = make_project(tmp_path, ["win_back"])
    start = START
    clock = Clock(start)
    followup = open_followup(project, empty_postgres, clock)
    loaded, sweeping = threading.Event(), threading.Event()

    def pause_once_loaded(point: str) -> None:  # the event batch holds the customer's lock
        if point == "events_decided" and not loaded.is_set():
            loaded.set()
            assert sweeping.wait(10)
            time.sleep(2)  # past PostgreSQL's deadlock_timeout, with the sweep waiting on us

    try:
        ingest_file(followup, _identify(tmp_path, "u1", start, {"consent": {"email": True}}))
        clock.now = start + timedelta(hours=1)
        assert DurableProject(followup).run_once().engine.swept_customers == 1
        with followup.engine.begin() as conn:  # the look is due
            conn.execute(segment_looks.update().values(due_at=start))
        ingest_file(followup, _identify(tmp_path, "u1", clock.now, {"first_name": "Ann"}))
        events = DurableProject(followup, crash=pause_once_loaded).runtime
        sweep = DurableProject(followup).runtime
        failures: list[BaseException] = []

        def run_events() -> None:
            try:
                events.driver.event_batch(TickSummary(), clock.now)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failures.append(exc)

        worker = threading.Thread(target=run_events)
        worker.start()
        assert loaded.wait(10)
        sweeping.set()
        try:
            sweep.sweep_looks(TickSummary(), clock.now, clock.now)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        worker.join(30)
        assert failures == []
    finally:
        followup.close()


def _vip_campaign(project: Path, steps: str) -> None:
    """One segment campaign: VIPs with email consent, a 2 hour cooldown, the given steps."""
    (project / "campaigns" / "win_back.yaml").unlink()
    (project / "campaigns" / "vip.yaml").write_text(
        "campaign: vip\nname: VIP\nstatus: active\ntrigger:\n  segment: customer.traits.vip\n"
        "audience: customer.consent.email\nentry:\n  cooldown: 2h\nsteps:\n" + steps
    )


SEND = "  - send: email\n    template: win_back.html\n    subject: Hi\n"


def _in_out_in(followup: Followup, durable: DurableProject, clock: Clock, tmp_path: Path) -> None:
    """u1 enters at the clock's time, leaves the segment, comes back 40 minutes later."""
    start = clock.now
    consent = {"consent": {"email": True}, "vip": True}
    ingest_file(followup, _identify(tmp_path, "u1", start, consent))
    durable.run_once()  # enters at once
    ingest_file(followup, _identify(tmp_path, "u1", start + timedelta(minutes=30), {"vip": 0}))
    clock.now = start + timedelta(minutes=35)
    durable.run_once()  # out of the segment
    ingest_file(followup, _identify(tmp_path, "u1", start + timedelta(minutes=40), consent))
    clock.now = start + timedelta(minutes=45)
    durable.run_once()  # in the segment again, kept out by the cooldown


def test_a_cooldown_ending_at_the_moment_of_a_sweep_lets_the_customer_in_then(
    shop: Shop, tmp_path: Path
) -> None:
    """Entries fall at event or sweep times, to the microsecond; a cooldown of whole hours from
    an entry on the hour ends at the very moment of a later hourly sweep (sweeps fall on the
    hours of UTC), which must let the customer in (a look booked after the cooldown's last
    instant waited for the sweep an hour later)."""
    _vip_campaign(shop.project, SEND)
    start = shop.clock.now = START
    durable = DurableProject(shop.followup)
    _in_out_in(shop.followup, durable, shop.clock, tmp_path)
    shop.clock.now = start + timedelta(hours=2)  # the cooldown is over, to the microsecond
    durable.run_once()
    assert [line.split()[0] for line in _entered(shop.followup)] == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T02:00:00Z",
    ]


def test_a_cooldown_over_books_no_look_in_the_past(shop: Shop, tmp_path: Path) -> None:
    """Kept out by a running journey once the cooldown is over, the customer's next look is
    after the sweep (a look at the cooldown's end, past, was due again at once: the sweep
    took the same customer over and over and the pass never ended)."""
    _vip_campaign(shop.project, "  - wait: 7d\n" + SEND)
    durable = DurableProject(shop.followup)
    _in_out_in(shop.followup, durable, shop.clock, tmp_path)
    shop.clock.now = START + timedelta(hours=3)
    assert (
        durable.runtime.sweep_looks(TickSummary(), shop.clock.now, shop.clock.now) == 1
    )  # already active
    with shop.followup.engine.connect() as conn:
        assert conn.scalar(sa.select(segment_looks.c.due_at)) > shop.clock.now
    assert durable.run_once().engine.swept_customers == 0


def _lapsed_project(folder: Path, messages: list[dict[str, Any]]) -> tuple[Path, Path]:
    """A project with the lapsed campaign (30 minutes after an order), and ``messages``."""
    project = make_project(folder / "project", [])
    (project / "campaigns" / "lapsed.yaml").write_text(LAPSED)
    return project, write_messages(folder / "events.jsonl", messages)


def _order(user: str, at: datetime) -> dict[str, Any]:
    key = f"o-{user}-{at:%H%M}"
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": key,
        "timestamp": at.isoformat(),
        "properties": {"order_id": key, "revenue": 5},
    }


def _killed_then(project: Path, events: Path, url: str, passes: list[datetime]) -> list[str]:
    """The decisions of the first pass, at the first event, with the first two messages (a
    customer a batch, killed after the first), then the rest and ``passes``."""
    records = list(read_jsonl(events))
    clock = Clock(records[0].events[0].timestamp)
    followup = open_followup(project, url, clock)
    try:
        followup.ingestor.ingest(records[:2])
        _first_pass_killed(followup)
        followup.ingestor.ingest(records[2:])
        durable = DurableProject(followup)
        for clock.now in passes:
            durable.run_once()
        return decision_lines(followup.engine)
    finally:
        followup.close()


def _first_pass_killed(followup: Followup) -> None:
    """The first pass, one customer a batch, killed once it committed the first."""

    def crash(point: str) -> None:
        if point == "events_committed":
            raise RuntimeError("killed")

    dying = DurableProject(followup, crash=crash)
    dying.runtime.batch_size = 1
    with pytest.raises(RuntimeError, match="killed"):
        dying.run_once()


def test_a_first_pass_killed_in_its_sweep_keeps_the_hourly_grid(
    database_url: str, tmp_path: Path
) -> None:
    """The first pass, at the first event (08:00), dies in the middle of the first sweep over
    everyone; the next runs at 08:20. The hourly sweeps stay on the first pass's grid (09:00,
    as simulate sweeps from the first event): Ann, whose order turns 30 minutes old at 08:30,
    enters at 09:00, not at 09:20 (the grid was recorded only once a first sweep finished)."""
    eight = datetime(2024, 5, 6, 8, tzinfo=UTC)
    project, events = _lapsed_project(tmp_path, [_order(u, eight) for u in ("ann", "bob")])
    end = eight + timedelta(hours=2)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[0] for line in expected if " enter " in line] == [
        "2024-05-06T09:00:00Z"
    ] * 2
    clock = Clock(eight)
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        _first_pass_killed(followup)
        durable = DurableProject(followup)
        for clock.now in (eight + timedelta(minutes=20), end):
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_a_first_pass_over_a_backlog_enters_at_its_own_time(shop: Shop, tmp_path: Path) -> None:
    """The first pass takes a backlog of orders placed long ago, each lapsed 90 days later,
    long before the pass: the sweep over everyone enters them all at the pass's time. The
    hourly grid is recorded before that sweep (it keeps a first pass killed in it), and the
    looks the backlog's events booked at past hours are the sweep's to take, not swept at
    those hours: a campaign first deployed now does not enter anyone in the past."""
    placed = {f"u{n:02d}": START + timedelta(days=n) for n in range(10)}
    ingest_file(shop.followup, _orders(tmp_path, placed))
    shop.clock.now = START + timedelta(days=120, minutes=17)
    first = DurableProject(shop.followup).run_once().engine
    assert first.swept_customers == 10  # everyone once, no look left for the hourly sweeps
    assert [line.split()[0] for line in _entered(shop.followup)] == ["2024-04-30T00:17:00Z"] * 10
    with shop.followup.engine.connect() as conn:
        due = conn.scalars(sa.select(segment_looks.c.due_at)).all()
    assert all(at > shop.clock.now for at in due)


def test_a_first_pass_killed_in_its_sweep_takes_the_later_hours_apart(
    database_url: str, tmp_path: Path
) -> None:
    """The first pass, at the first event (08:00), dies after its first customer. Ann and Bob
    both entered at 08:00, left the segment at 08:30 and came back at 08:40, kept out by the
    2-hour cooldown until 10:00. The next pass, at 10:30, goes on with the sweep over everyone:
    the customer it had not reached enters at the 10:00 sweep, as simulate plans, not at 10:30
    (that sweep looks at 08:00, and takes only the hours by then)."""
    project = make_project(tmp_path / "project", ["win_back"])
    _vip_campaign(project, SEND)
    eight = datetime(2024, 5, 6, 8, tzinfo=UTC)
    consent = {"consent": {"email": True}, "vip": True}
    steps = [(eight, consent), (eight + timedelta(minutes=30), {"vip": 0})]
    steps.append((eight + timedelta(minutes=40), consent))
    lines = [
        orjson.dumps(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"i-{user}-{at:%H%M}",
                "timestamp": at.isoformat(),
                "traits": traits,
            }
        )
        for at, traits in steps
        for user in ("ann", "bob")
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines))
    end = eight + timedelta(hours=4)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[0] for line in expected if " enter " in line] == [
        "2024-05-06T08:00:00Z"
    ] * 2 + ["2024-05-06T10:00:00Z"] * 2
    passes = [eight + timedelta(hours=2, minutes=30), end]
    assert _killed_then(project, events, database_url, passes) == expected


def test_a_changed_campaign_takes_the_hours_missed_before_it(shop: Shop, tmp_path: Path) -> None:
    """No pass ran while u1 entered the VIP campaign, left it, came back kept out by the
    cooldown (until 02:00) and the campaign changed. The next pass, at 03:00, looks at everyone
    with the new version at its own time: u1 enters at 03:00, once; the hour missed before the
    change is the full sweep's to take, neither swept in its decision nor left for the hourly
    sweep to look at u1 again at 02:00."""
    _vip_campaign(shop.project, SEND)
    followup, clock = shop.followup, shop.clock
    durable = DurableProject(followup)
    consent = {"consent": {"email": True}, "vip": True}
    ingest_file(followup, _identify(tmp_path, "u1", START, consent))
    durable.run_once()  # enters at once
    ingest_file(followup, _identify(tmp_path, "u1", START + timedelta(minutes=30), {"vip": 0}))
    ingest_file(followup, _identify(tmp_path, "u1", START + timedelta(minutes=40), consent))
    vip = shop.project / "campaigns" / "vip.yaml"
    vip.write_text(vip.read_text().replace("subject: Hi", "subject: Hello"))
    clock.now = START + timedelta(hours=3)
    changed = DurableProject(followup).run_once().engine
    assert changed.swept_customers == 1
    assert [line.split()[0] for line in _entered(followup)] == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T03:00:00Z",
    ]


def _backlog_then_tick(database_url: str, folder: Path, kill: bool) -> list[str]:
    """Orders at 06:00-06:03 and a first pass at 08:20 with a daily 09:00 tick and a segment
    campaign (lapsed 30 minutes after an order), the pass killed after its first customer or
    not; the next pass at 09:20 runs the tick. The times the lapsed entered."""
    project = make_project(folder / "project", [])
    graced = DAILY.replace('"0 9 * * *"', '"0 9 * * *", misfire_grace: 6h')
    (project / "campaigns" / "daily.yaml").write_text(graced)
    (project / "campaigns" / "lapsed.yaml").write_text(LAPSED)
    day = datetime(2024, 5, 6, tzinfo=UTC)
    clock = Clock(day + timedelta(hours=8, minutes=20))
    followup = open_followup(project, database_url, clock)
    try:
        orders = {u: day + timedelta(hours=6, minutes=n) for n, u in enumerate("abcd")}
        ingest_file(followup, _orders(folder, orders))
        if kill:
            _first_pass_killed(followup)
        else:
            DurableProject(followup).run_once()
        clock.now = day + timedelta(hours=9, minutes=20)
        DurableProject(followup).run_once()
        return [line.split()[0] for line in _entered(followup) if " lapsed " in line]
    finally:
        followup.close()


def test_a_tick_goes_over_everyone_with_the_first_sweep(database_url: str, tmp_path: Path) -> None:
    """A first pass over a backlog dies after its first customer; the next pass runs a tick
    too. The tick and the sweep over everyone go over the customers together, each customer's
    batch one decision: the backlog's looks at past hours are the sweep's to take, even in the
    tick's batches (the tick ran alone first, and swept them at 07:20), and the customers left
    are looked at at 08:20, as by the pass that was killed."""
    whole = _backlog_then_tick(f"sqlite:///{tmp_path / 'whole.db'}", tmp_path / "whole", False)
    assert whole == ["2024-05-06T08:20:00Z"] * 4
    assert _backlog_then_tick(database_url, tmp_path / "killed", kill=True) == whole


def test_a_killed_first_sweep_looks_at_the_rest_at_the_time_it_began(
    database_url: str, tmp_path: Path
) -> None:
    """Ann and Bob order at 08:00 and again at 09:15 (lapsing at 08:30 and 09:45). The first
    pass, at 08:00, dies after Ann; the next runs at 09:50, off the hourly grid. It looks at
    Bob at 08:00, when the sweep over everyone began, before his later order: his second entry
    is at the 10:00 sweep, as simulate plans, not at 09:50."""
    eight = datetime(2024, 5, 6, 8, tzinfo=UTC)
    messages = [_order(u, at) for at in (eight, eight + timedelta(minutes=75)) for u in "ab"]
    project, events = _lapsed_project(tmp_path, messages)
    end = eight + timedelta(hours=3)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[0] for line in expected if " enter " in line] == [
        "2024-05-06T09:00:00Z"
    ] * 2 + ["2024-05-06T10:00:00Z"] * 2
    passes = [eight + timedelta(minutes=110), end]
    assert _killed_then(project, events, database_url, passes) == expected


def test_a_partition_whose_first_pass_comes_late_looks_when_the_sweep_began(
    database_url: str, tmp_path: Path
) -> None:
    """Partition 0's first pass, at 08:00, makes every partition's rows; partition 1's worker
    first runs at 09:50. Its sweep over everyone looks at its customers at 08:00, before their
    orders of 09:15: they enter at the 10:00 sweep, as simulate plans, not at 09:50."""
    eight = datetime(2024, 5, 6, 8, tzinfo=UTC)
    later = eight + timedelta(minutes=75)
    project, events = _lapsed_project(
        tmp_path, [_order("first", eight)] + [_order(u, later) for u in "abcd"]
    )
    end = eight + timedelta(hours=3)
    expected = simulated_plan(project, events, until=end)
    clock = Clock(eight)
    followup = open_followup(project, database_url, clock)
    try:
        records = list(read_jsonl(events))
        ones = [DurableProject(followup, partition=Partition(i, 2)) for i in range(2)]
        followup.ingestor.ingest(records[:1])
        ones[0].run_once()
        followup.ingestor.ingest(records[1:])
        for clock.now in (eight + timedelta(minutes=110), end):
            for one in ones:
                one.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_a_killed_first_sweep_looks_at_a_merged_device_and_its_shopper_apart(
    database_url: str, tmp_path: Path
) -> None:
    """The first pass, at 13:00 the day before, dies; a device orders at 07:33 signed out and
    signs in at 09:22. The next pass, at 10:10, goes on with the sweep over everyone, begun at
    13:00: the device's batch takes the shopper's work too (the sign-in merges them), so it
    looks at the shopper at 13:00 then, before the merge, and marks it for the run: only the
    device enters, at 09:00, as simulate plans (the run, coming to the shopper later, looked at
    her at 13:00 with the device's order merged, and entered her at 09:00 too)."""
    day = datetime(2024, 5, 6, tzinfo=UTC)
    device = "u0-dev0-0"  # founded by its address, an id that sorts before the shopper's
    messages = [
        {"type": "identify", "userId": "u0", "messageId": "m1", "timestamp": "2024-05-05T13:00Z"},
        {
            "type": "identify",
            "anonymousId": device,
            "messageId": "m2",
            "timestamp": (day + timedelta(hours=7, minutes=19)).isoformat(),
            "traits": {"email": f"{device}@home.example", "consent": {"email": True}},
        },
        {
            **_order("u0", day + timedelta(hours=7, minutes=33)),
            "userId": None,
            "anonymousId": device,
        },
        {
            "type": "identify",
            "userId": "u0",
            "anonymousId": device,
            "messageId": "m4",
            "timestamp": (day + timedelta(hours=9, minutes=22)).isoformat(),
        },
    ]
    messages[2] = {k: v for k, v in messages[2].items() if v is not None}
    project, events = _lapsed_project(tmp_path, messages)
    end = day + timedelta(hours=12)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[0] for line in expected if " enter " in line] == ["2024-05-06T09:00:00Z"]
    clock = Clock(day - timedelta(hours=11))
    followup = open_followup(project, database_url, clock)
    try:
        records = list(read_jsonl(events))
        followup.ingestor.ingest(records[:1])

        def crash(point: str) -> None:
            raise RuntimeError("killed")

        with pytest.raises(RuntimeError, match="killed"):
            DurableProject(followup, crash=crash).run_once()
        followup.ingestor.ingest(records[1:])
        durable = DurableProject(followup)
        durable.runtime.batch_size = 1  # the device's batch, then the shopper's
        for clock.now in (day + timedelta(hours=10, minutes=10), end):
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


@pytest.mark.external_service
def test_a_pass_past_the_wait_looks_first_at_the_customers_left(
    empty_postgres: str, tmp_path: Path
) -> None:
    """The look at everyone, begun at 08:00, stops at Ann, whom another session holds; the pass
    at 09:05, past the hour it waits, goes on with the other work. That work looks at Bob at
    08:00 first, before his later events, and marks him for the run: once Ann is let go, the
    run passes him over, and each enters once at 09:00, as simulate plans (the run looked at
    Bob at 08:00 with his later state and entered him a second time)."""
    eight = datetime(2024, 5, 6, 8, tzinfo=UTC)
    messages = [
        {
            "type": "identify",
            "userId": u,
            "messageId": f"i-{u}",
            "timestamp": (eight - timedelta(hours=1)).isoformat(),
            "traits": {"email": f"{u}@example.com", "consent": {"email": True}},
        }
        for u in ("ann", "bob")
    ] + [_order(u, eight) for u in ("ann", "bob")]
    project, events = _lapsed_project(tmp_path, messages)
    end = eight + timedelta(hours=4)
    expected = simulated_plan(project, events, until=end)
    clock = Clock(eight)
    followup = open_followup(project, empty_postgres, clock)
    try:
        ingest_file(followup, events)
        with followup.engine.connect() as conn:
            first = conn.scalar(sa.select(sa.func.min(customers.c.id)))
        durable = DurableProject(followup)
        durable.runtime.batch_size = 1
        with followup.engine.connect() as holder, holder.begin():
            held = sa.select(customers.c.id).where(customers.c.id == first).with_for_update()
            holder.execute(held)
            assert durable.run_once().engine.tick_left
            clock.now = eight + timedelta(minutes=65)
            assert not durable.run_once().engine.tick_left
        for clock.now in (eight + timedelta(minutes=110), end):
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
