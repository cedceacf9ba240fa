"""An event and a timer due at its very instant: the durable runtime, like ``simulate``, takes
the event first, whether the pass that takes them comes later or at that instant."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import customers, schedule_ticks
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    open_followup,
    plan_lines,
    replay_when_due,
    simulated_plan,
    write_messages,
)

CART = """campaign: cart
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - wait: {for: Checkout Started, timeout: 1h}
    else:
      - send: email
        template: abandoned_cart.html
        subject: reminder
"""
AT = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)


def _events(folder: Path) -> Path:
    lines = [
        {
            "type": "identify",
            "userId": "ann",
            "messageId": "i1",
            "timestamp": AT.isoformat(),
            "traits": {"email": "ann@example.com", "consent": {"email": True}},
        },
        {
            "type": "track",
            "event": "Product Added",
            "userId": "ann",
            "messageId": "a1",
            "timestamp": AT.isoformat(),
            "properties": {"product_id": "boots", "price": 240},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "ann",
            "messageId": "o1",
            "timestamp": (AT + timedelta(hours=1)).isoformat(),  # the timeout's very instant
            "properties": {"order_id": "A1", "revenue": 240},
        },
    ]
    path = folder / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("pass_at", [timedelta(hours=1), timedelta(hours=3)])
def test_the_exit_at_the_timeouts_instant_ends_the_journey_first(
    database_url: str, tmp_path: Path, pass_at: timedelta
) -> None:
    project = make_project(tmp_path, [])
    (project / "campaigns" / "cart.yaml").write_text(CART)
    events = _events(tmp_path)
    clock = Clock(AT)
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        clock.now = AT + pass_at
        durable.run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
        assert [line.split()[5] for line in expected] == ["enter", "exit"]
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_an_order_received_after_its_add_in_the_same_instant_ends_the_journey(
    database_url: str, tmp_path: Path
) -> None:
    """Events of one instant apply in the order received, never by messageId: the order's id
    sorts before the add's, yet it came second, so it ends the journey, in the durable
    runtime as in ``simulate``, and leaves the cart empty."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "cart.yaml").write_text(CART)
    add = {
        "type": "track",
        "event": "Product Added",
        "userId": "ann",
        "messageId": "z-add",
        "timestamp": AT.isoformat(),
        "properties": {"product_id": "boots", "price": 240},
    }
    order = {**add, "event": "Order Completed", "messageId": "a-order"}
    order["properties"] = {"order_id": "A1", "revenue": 240}
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps({"type": "batch", "batch": [add, order]}) + b"\n")
    clock = Clock(AT)
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        clock.now = AT + timedelta(hours=3)
        durable.run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
        assert [line.split()[5] for line in expected] == ["enter", "exit"]
        assert decision_lines(followup.engine) == expected
        profile = followup.profile("ann")
        assert profile is not None and profile.state.cart.items == ()
    finally:
        followup.close()


MORNING = """campaign: morning
trigger: {event: Product Viewed}
steps:
  - wait: {until: "09:00"}
  - send: email
    template: newsletter.html
    subject: Good morning
"""
MONDAY_NINE = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)  # 09:00 in Paris: the newsletter's tick
ONE_A_DAY = {"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}}


@pytest.mark.parametrize("viewed", [timedelta(hours=11), timedelta(days=8)])
def test_a_schedule_tick_comes_before_a_journey_timer_of_its_instant(
    database_url: str, tmp_path: Path, viewed: timedelta
) -> None:
    """The newsletter's tick and Ann's wait until 09:00 fall at the same instant, and the cap
    allows one email a day: the tick goes first, so the newsletter is sent and the morning
    email capped, in simulate and in the durable runtime. Simulate once ordered them by when
    each was booked (a wait set before the previous tick went first), the durable runtime put
    the timer first."""
    project = make_project(tmp_path, ["weekly_newsletter"])
    (project / "campaigns" / "morning.yaml").write_text(MORNING)
    start = MONDAY_NINE - viewed
    lines = [
        {
            "type": "identify",
            "userId": "ann",
            "messageId": "i1",
            "timestamp": (start - timedelta(days=1)).isoformat(),
            "traits": {
                "email": "ann@example.com",
                "consent": {"email": True},
                "timezone": "Europe/Paris",
            },
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "ann",
            "messageId": "v1",
            "timestamp": (MONDAY_NINE - timedelta(hours=11)).isoformat(),
            "properties": {},
        },
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    if viewed > timedelta(days=7):  # the wait is set before the previous Monday's tick
        text = MORNING.replace('{until: "09:00"}', "8d")
        (project / "campaigns" / "morning.yaml").write_text(text)
        lines[1]["timestamp"] = start.isoformat()
        events.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
    config = ProjectConfig(policies=ONE_A_DAY)
    until = MONDAY_NINE + timedelta(hours=1)
    expected = plan_lines(plan_text(simulate(campaigns, parsed, config, until)))
    sends = [line for line in expected if " send " in line and line.startswith("2024-05-06T07")]
    assert {s.split()[1]: s.split()[6] for s in sends} == {
        "morning": "skipped",
        "weekly-newsletter": "sent",
    }
    clock = Clock(start - timedelta(days=1))
    followup = Followup(
        Project(ProjectConfig(database_url=database_url, policies=ONE_A_DAY), project), clock
    )
    try:
        ingest_file(followup, events)
        clock.now = min(e.timestamp for e in parsed)
        durable = DurableProject(followup)
        durable.run_once()  # first seen at the first event, as simulate starts
        for tick in (MONDAY_NINE - timedelta(weeks=1), MONDAY_NINE):
            if tick > clock.now:
                clock.now = tick + timedelta(minutes=30)  # within the tick's grace
                durable.run_once()
        clock.now = until
        durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


NEWS = """campaign: {id}
trigger: {{schedule: "0 9 * * {days}"}}
audience: customer.consent.email
steps:
  - send: email
    template: newsletter.html
    subject: {id}
"""
WIN_BACK = """campaign: back
trigger: {segment: "customer.orders.last_at and customer.orders.last_at < now - days(2)"}
steps:
  - send: email
    template: newsletter.html
    subject: back
"""


@pytest.mark.parametrize(
    ("condition", "ordered_at"),
    [
        # the look is booked two days ahead, and stored before the pass of its hour
        ("now - days(2)", datetime(2024, 5, 6, 8, tzinfo=UTC)),
        # the order comes ten minutes before the tick: taken in the tick's own pass
        ("now - minutes(5)", datetime(2024, 5, 8, 8, 50, tzinfo=UTC)),
    ],
)
def test_the_tick_then_the_sweep_at_one_instant(
    database_url: str, tmp_path: Path, condition: str, ordered_at: datetime
) -> None:
    """A segment turning true at the hour a schedule ticks, with a cap of one email a day: who
    gets the day's email depends on which goes first. ``simulate`` took them in the order it
    had booked them; the durable runtime a look stored before its pass first, a look found in
    the pass after the tick. Both now: the tick, then the sweep."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "back.yaml").write_text(WIN_BACK.replace("now - days(2)", condition))
    (project / "campaigns" / "daily.yaml").write_text(NEWS.format(id="daily", days="*"))
    start = datetime(2024, 5, 6, 8, tzinfo=UTC)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("i1", "identify", start, email="ann@example.com", consent={"email": True}),
            message("o1", "Order Completed", ordered_at, order_id="A1", revenue=10),
        ],
    )
    end = datetime(2024, 5, 9, 12, tzinfo=UTC)
    config = ProjectConfig.model_validate(
        {"policies": {"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}}}
    )
    clock = Clock(start)
    live = config.model_copy(update={"database_url": database_url})
    followup = Followup(Project(live, project), clock)
    try:
        replay_when_due(DurableProject(followup), clock, events, end)
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, config, end)))
        on_the_8th = [
            (fields[1], fields[6])
            for fields in (line.split() for line in expected)
            if fields[0] == "2024-05-08T09:00:00Z" and fields[5] == "send"
        ]
        assert sorted(on_the_8th) == [("back", "skipped"), ("daily", "sent")]
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


VIEWER = """campaign: viewer
trigger: {event: Product Viewed}
goal: {event: Order Completed, within: 7d}
steps:  # done at once: a second view enters again
  - update: {traits: {viewed: "true"}}
"""


@pytest.mark.parametrize("ids", [("v1", "v2"), ("v2", "v1")])
def test_the_latest_of_two_entries_in_one_second_converts(
    database_url: str, tmp_path: Path, ids: tuple[str, str]
) -> None:
    """Two journeys of one campaign entered in the same second: a goal event converts the
    latest entry, the one the second event made (the order received, never the ids), in the
    durable runtime as in ``simulate`` (it took the one whose id sorted last)."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "viewer.yaml").write_text(VIEWER)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message(ids[0], "Product Viewed", AT),
            message(ids[1], "Product Viewed", AT),
            message("o1", "Order Completed", AT + timedelta(hours=3), order_id="A1", revenue=10),
        ],
    )
    clock = Clock(AT)
    followup = open_followup(project, database_url, clock)
    try:
        end = AT + timedelta(hours=6)
        replay_when_due(DurableProject(followup), clock, events, end)
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig(), end)))
        entered = [line.split()[2] for line in expected if " enter " in line]
        converted = [line.split()[2] for line in expected if " convert " in line]
        assert len(entered) == 2 and len(converted) == 1
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


@pytest.mark.parametrize(
    ("minutes", "consents", "expected_entered"),
    [
        # both at 09:00, consent withdrawn at 09:10: both saw her consenting
        ({"alpha": 0, "beta": 0}, (True, False), ["alpha", "beta"]),
        # beta at 09:00, alpha at 09:30, consent given at 09:10: only alpha saw it
        ({"alpha": 30, "beta": 0}, (False, True), ["alpha"]),
    ],
)
def test_each_tick_sees_the_customer_as_of_its_instant(
    database_url: str,
    tmp_path: Path,
    minutes: dict[str, int],
    consents: tuple[bool, bool],
    expected_entered: list[str],
) -> None:
    """Two newsletters tick before a pass at 09:45, and Ann's email consent changes at 09:10:
    each tick sees her as she was at its own instant, in ``simulate`` and in the durable
    runtime. That ran each schedule in a pass of its own, which took her events up to the
    pass's time, so a tick run after another saw her consent as changed at 09:10."""
    project = make_project(tmp_path, [])
    for campaign, minute in minutes.items():
        daily = NEWS.format(id=campaign, days="*").replace('"0 9', f'"{minute} 9')
        (project / "campaigns" / f"{campaign}.yaml").write_text(daily)
    start = datetime(2024, 5, 6, 8, tzinfo=UTC)
    nine = datetime(2024, 5, 6, 9, tzinfo=UTC)
    before, after = ({"email": consent} for consent in consents)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("i1", "identify", start, email="ann@example.com", consent=before),
            message("i2", "identify", nine + timedelta(minutes=10), consent=after),
        ],
    )
    end = nine + timedelta(hours=3)
    clock = Clock(start)
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        durable.run_once()  # first seen at the first event: the first ticks are at 09:xx
        clock.now = nine + timedelta(minutes=45)
        durable.run_once()
        clock.now = end
        durable.run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig(), end)))
        entered = sorted(line.split()[1] for line in expected if " enter " in line)
        assert entered == expected_entered
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def _newsletters(folder: Path, minutes: dict[str, int]) -> Path:
    """A project with a daily newsletter per campaign id, at 09:``minute`` UTC."""
    project = make_project(folder, [])
    for campaign, minute in minutes.items():
        daily = NEWS.format(id=campaign, days="*").replace('"0 9', f'"{minute} 9')
        (project / "campaigns" / f"{campaign}.yaml").write_text(daily)
    return project


def _consenting(
    folder: Path, users: tuple[str, ...], withdrawn: datetime, viewed: datetime | None = None
) -> Path:
    """``users`` consenting to email at 08:00, viewing a product at ``viewed`` if given, and
    withdrawing at ``withdrawn``."""
    start = datetime(2024, 5, 6, 8, tzinfo=UTC)
    identifies = [
        {"userId": user, "email": f"{user}@example.com", "at": at, "consent": {"email": consent}}
        for at, consent in ((start, True), (withdrawn, False))
        for user in users
    ]
    return write_messages(
        folder / "events.jsonl",
        [
            {
                **message(f"{i['userId']}-{n}", "identify", i["at"], email=i["email"]),
                "userId": i["userId"],
                "traits": {"email": i["email"], "consent": i["consent"]},
            }
            for n, i in enumerate(identifies)
        ]
        + [
            {**message(f"{user}-view", "Product Viewed", viewed), "userId": user}
            for user in (users if viewed is not None else ())
        ],
    )


def _finish_as_simulated(
    followup: Followup, clock: Clock, project: Path, events: Path, entries: int
) -> None:
    """A last pass three hours after 09:00; the decisions are ``simulate``'s plan, which has
    ``entries`` entries."""
    clock.now = end = datetime(2024, 5, 6, 12, tzinfo=UTC)
    DurableProject(followup).run_once()
    expected = simulated_plan(project, events, until=end)
    assert len([line for line in expected if " enter " in line]) == entries
    assert decision_lines(followup.engine) == expected


def test_a_tick_left_under_way_by_a_crash_waits_for_a_later_tick_to_catch_up(
    database_url: str, tmp_path: Path
) -> None:
    """alpha's 09:00 tick crashes after its first customer (a pass at 09:15, one customer a
    batch); beta ticks at 09:30 and both withdraw their consent at 09:35; the next pass is at
    09:45. beta goes over the first customer alone, then with alpha over the second, so beta's
    tick sees both as of 09:30 (alpha, finishing first, took the second one's 09:35 first)."""
    project = _newsletters(tmp_path, {"alpha": 0, "beta": 30})
    nine = datetime(2024, 5, 6, 9, tzinfo=UTC)
    withdrawn, viewed = nine + timedelta(minutes=35), nine + timedelta(minutes=5)
    events = _consenting(tmp_path, ("aa", "ann"), withdrawn, viewed)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(nine - timedelta(hours=1))
    followup = open_followup(project, database_url, clock)
    crashed: list[str] = []

    def crash_once(point: str) -> None:
        if point == "events_committed" and not crashed:
            crashed.append(point)
            raise RuntimeError("crash")

    try:
        followup.ingestor.ingest(records[:2])
        DurableProject(followup).run_once()
        followup.ingestor.ingest(records[2:4])  # the views: a batch with events crashes
        clock.now = nine + timedelta(minutes=15)
        crashing = DurableProject(followup, crash=crash_once)
        crashing.runtime.batch_size = 1
        with pytest.raises(RuntimeError, match="crash"):
            crashing.run_once()
        followup.ingestor.ingest(records[4:])
        clock.now = nine + timedelta(minutes=45)
        resumed = DurableProject(followup)
        resumed.runtime.batch_size = 1
        summary = resumed.run_once().engine
        assert summary.scheduled_customers == 3  # alpha's second customer, beta's two
        clock.now = end = nine + timedelta(hours=3)
        DurableProject(followup).run_once()
        expected = simulated_plan(project, events, until=end)
        assert [line.split()[1] for line in expected if " enter " in line] == ["alpha"] * 2 + [
            "beta"
        ] * 2
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


NINE = datetime(2024, 5, 6, 9, tzinfo=UTC)


def _withdrawing_at_ten_past(
    folder: Path, database_url: str, minutes: dict[str, int]
) -> tuple[Path, Path, Clock, Followup]:
    """Daily newsletters at 09:``minute``, two customers consenting at 08:00 (a first pass
    then) and withdrawing at 09:10, ingested: the project, the events, the clock, followup."""
    project = _newsletters(folder, minutes)
    events = _consenting(folder, ("aa", "ann"), NINE + timedelta(minutes=10))
    clock = Clock(NINE - timedelta(hours=1))
    followup = open_followup(project, database_url, clock)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    followup.ingestor.ingest(records[:2])
    DurableProject(followup).run_once()
    followup.ingestor.ingest(records[2:])
    return project, events, clock, followup


def test_a_pass_waits_for_a_tick_another_pass_holds(database_url: str, tmp_path: Path) -> None:
    """Another pass holds alpha's row for a moment (PostgreSQL): this pass waits for it, then
    runs alpha's and beta's ticks of the same instant together. Left to a later pass, they
    would see the consent withdrawn at 09:10, whose event this pass would take meanwhile; run
    alone, beta's would have taken it before alpha's."""
    if not database_url.startswith("postgresql"):
        pytest.skip("rows are held by other passes on PostgreSQL only")
    project, events, clock, followup = _withdrawing_at_ten_past(
        tmp_path, database_url, {"alpha": 0, "beta": 0}
    )
    try:
        clock.now = NINE + timedelta(minutes=20)
        with followup.engine.connect() as other:  # another pass, in the middle of alpha's tick
            other.execute(
                sa.select(schedule_ticks)
                .where(schedule_ticks.c.name == "schedule:alpha")
                .with_for_update()
            )
            release = threading.Timer(0.5, other.rollback)
            release.start()
            summary = DurableProject(followup).run_once().engine
            release.join()
        assert summary.scheduled_customers == 4
        _finish_as_simulated(followup, clock, project, events, entries=4)
    finally:
        followup.close()


RECENT_BUYER = """campaign: recent
trigger: {segment: "customer.orders.last_at and customer.orders.last_at < now - minutes(30)"}
steps:
  - send: email
    template: newsletter.html
    subject: thanks
"""


def _order(message_id: str, at: datetime, who: dict[str, str]) -> dict[str, Any]:
    return {**message(message_id, "Order Completed", at, order_id=message_id), **who}


ANN, DEVICE = {"userId": "ann"}, {"anonymousId": "dev"}
START = datetime(2024, 5, 6, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("orders", "entered"),
    [
        # the order comes in after the pass's sweeps: its look at 09:40 falls to 10:00
        ([_order("o1", START + timedelta(minutes=70), ANN)], ["10:00"]),
        # a second order before the pass: the first one's look comes between the two
        (
            [
                _order("o1", START + timedelta(minutes=70), ANN),
                _order("o2", START + timedelta(minutes=140), ANN),
            ],
            ["10:00", "11:00"],
        ),
        # a device orders, then signs in as Ann at 10:20: the device's look at 10:00 first
        (
            [
                _order("o1", START + timedelta(minutes=70), DEVICE),
                {
                    **message("m1", "identify", START + timedelta(minutes=140)),
                    **DEVICE,
                    **ANN,
                },
            ],
            ["10:00"],  # the device's
        ),
    ],
)
def test_a_look_found_late_in_a_pass_is_swept_at_its_own_hour(
    database_url: str, tmp_path: Path, orders: list[dict[str, Any]], entered: list[str]
) -> None:
    """Ann's segment turns 30 minutes after an order, and the pass after the order comes at
    10:30 (then 12:00): ``simulate`` enters her at the first sweep after the turn. The durable
    pass takes the order after its own sweeps, so the look it found fell to an hour already
    swept: it waited for the next pass's sweep (and a second order's look replaced it, and a
    merge dropped it). The engine now sweeps a look found due by the pass's time at its hour,
    in the same decision."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "recent.yaml").write_text(RECENT_BUYER)
    events = write_messages(
        tmp_path / "events.jsonl",
        [message("i1", "identify", START, email="ann@example.com", consent={"email": True})]
        + orders,
    )
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(START)
    followup = open_followup(project, database_url, clock)
    try:
        for at, taken in ((0, 1), (65, 1), (150, len(records)), (240, len(records))):
            clock.now = START + timedelta(minutes=at)
            followup.ingestor.ingest(records[:taken])
            DurableProject(followup).run_once()
        expected = simulated_plan(project, events, until=clock.now)
        assert [line.split()[0][11:16] for line in expected if " enter " in line] == entered
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def _hold_first_customer(other: sa.Connection) -> None:
    """Hold the first customer by id in ``other``, as ingest does while writing its events."""
    first = sa.select(sa.func.min(customers.c.id)).scalar_subquery()
    other.execute(sa.select(customers.c.id).where(customers.c.id == first).with_for_update())


@pytest.mark.parametrize("still_held", [False, True])
def test_a_tick_stopped_at_a_held_customer_ends_the_pass(
    database_url: str, tmp_path: Path, still_held: bool
) -> None:
    """Ingest holds the first customer (PostgreSQL) while a pass runs alpha's 09:00 tick: the
    tick stops there, and the pass takes no other events (the second customer's 09:10
    withdrawal would come before her tick); the next pass runs the tick for both, then the
    events. Held past the tick's misfire_grace, a pass goes on with the events."""
    if not database_url.startswith("postgresql"):
        pytest.skip("customers are held by other passes on PostgreSQL only")
    project, events, clock, followup = _withdrawing_at_ten_past(
        tmp_path, database_url, {"alpha": 0}
    )
    try:
        clock.now = NINE + timedelta(minutes=45)
        with followup.engine.connect() as other:  # ingest, writing the first customer's event
            _hold_first_customer(other)
            held = DurableProject(followup).run_once().engine
            other.rollback()
        assert (held.tick_left, held.scheduled_customers, held.events) == (True, 0, 0)
        if still_held:  # past the tick's misfire_grace (1h) the pass goes on with the events
            clock.now = NINE + timedelta(hours=1, minutes=5)
            with followup.engine.connect() as other:
                _hold_first_customer(other)
                late = DurableProject(followup).run_once().engine
                other.rollback()
            assert (late.tick_left, late.scheduled_customers, late.events) == (False, 0, 1)
            return
        clock.now = NINE + timedelta(minutes=50)
        after = DurableProject(followup).run_once().engine
        assert (after.tick_left, after.scheduled_customers, after.events) == (False, 2, 2)
        _finish_as_simulated(followup, clock, project, events, entries=2)
    finally:
        followup.close()


RECENT_HOUR = """campaign: recent
trigger: {segment: "customer.orders.last_at and customer.orders.last_at > now - minutes(60)"}
steps:
  - update: {traits: {tag: '"x"'}}
  - send: email
    template: newsletter.html
    subject: recent
"""


def test_a_sweep_in_a_decision_takes_the_looks_booked_before_it(
    database_url: str, tmp_path: Path
) -> None:
    """Ann orders at 08:10 and 10:50 and the pass after the first comes at 12:15: it sweeps her
    hourly from 09:00 in one decision. The update step of the 10:50 entry books a look at
    once, which the 11:00 sweep takes; kept as the look saved, the pass's sweeps took her
    again at 11:00, on the state of 12:15, and entered her a second time."""
    project = make_project(tmp_path, [])
    (project / "campaigns" / "recent.yaml").write_text(RECENT_HOUR)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("i1", "identify", START, email="ann@example.com", consent={"email": True}),
            _order("o1", START + timedelta(minutes=10), ANN),
            _order("o2", START + timedelta(minutes=170), ANN),
        ],
    )
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(START)
    followup = open_followup(project, database_url, clock)
    try:
        for at in (0, 20, 255):
            clock.now = START + timedelta(minutes=at)
            followup.ingestor.ingest([r for r in records if r.events[0].timestamp <= clock.now])
            DurableProject(followup).run_once()
        expected = simulated_plan(project, events, until=clock.now)
        assert [line.split()[0][11:16] for line in expected if " enter " in line] == [
            "08:10",
            "10:50",
        ]
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
