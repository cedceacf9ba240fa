"""Several passes on PostgreSQL keep each customer's order and never wait on each other.

A pass claims a customer before it takes anything of theirs, and passes over a customer another
pass holds: so a pass that holds a customer's earlier event and dies cannot be overtaken by
another applying the customer's later event first, a timer batch and an event batch of the same
customer never deadlock, and a schedule tick stops at a customer another pass holds (resuming
from there later) instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.durable.runtime import TickSummary
from engine.events import Event
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.customer_store import event_from_row
from engine.storage.tables import customers, decisions, events
from tests.durable.harness import (
    Clock,
    decision_lines,
    make_project,
    open_followup,
    plan_lines,
    shopper,
)

pytestmark = pytest.mark.external_service

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # a Monday


class _Died(Exception):
    """Stands for a pass dying with its transaction open (rolled back, its locks released)."""


def _simulated(project: Path, followup: Followup, until: datetime) -> list[str]:
    """``simulate``'s plan over every logged event, to ``until``."""
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    with followup.engine.connect() as conn:
        logged: list[Event] = [event_from_row(row) for row in conn.execute(sa.select(events))]
    return plan_lines(plan_text(simulate(campaigns, logged, ProjectConfig(), until)))


def _lock_waits(db: sa.Engine) -> int:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with db.connect() as conn:
        return int(conn.scalar(query) or 0)


def _until_waiting_or_done(db: sa.Engine, thread: threading.Thread, timeout: float = 10) -> None:
    """Until ``thread`` ends or some transaction waits for a lock."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline and not _lock_waits(db):
        time.sleep(0.05)


def _in_thread(run: Callable[[], object], failures: list[BaseException]) -> threading.Thread:
    def target() -> None:
        try:
            run()
        except _Died:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread


@pytest.fixture
def shop(empty_postgres: str, tmp_path: Path) -> Iterator[tuple[Path, list[Followup], Clock]]:
    """The abandoned-cart campaign on PostgreSQL; three engines on it (a setup and two
    workers) sharing one clock."""
    project = make_project(tmp_path, ["abandoned_cart"])
    clock = Clock(T0)
    opened = [open_followup(project, empty_postgres, clock) for _ in range(3)]
    yield project, opened, clock
    for followup in opened:
        followup.close()


def _holding(point_reached: threading.Event, release: threading.Event) -> Callable[[str], None]:
    """A crash point that holds the pass once its events are decided (its transaction open,
    its locks held) until ``release``, then lets it die."""

    def crash(point: str) -> None:
        if point == "events_decided" and not point_reached.is_set():
            point_reached.set()
            assert release.wait(30)
            raise _Died

    return crash


def test_a_pass_dying_with_a_customers_earlier_event_is_not_overtaken(
    shop: tuple[Path, list[Followup], Clock],
) -> None:
    """One pass takes the cart and dies; the other must not apply the order (taken 30
    minutes later) first, or the cart enters after it and the email goes to a buyer."""
    project, (setup, first, second), clock = shop
    shopper(setup, "ann", T0)
    setup.track(
        "Order Completed",
        user_id="ann",
        properties={"revenue": 30},
        timestamp=T0 + timedelta(minutes=30),
    )
    clock.now = T0 + timedelta(hours=2)  # the cart email would be due
    holding, release = threading.Event(), threading.Event()
    dying = DurableProject(first, crash=_holding(holding, release)).runtime
    other = DurableProject(second).runtime
    dying.batch_size = other.batch_size = 2  # the identify and the cart; the order is next
    failures: list[BaseException] = []
    held = _in_thread(lambda: dying.driver.event_batch(TickSummary(), clock.now), failures)
    assert holding.wait(30)
    overtaking = _in_thread(other.tick, failures)
    _until_waiting_or_done(setup.engine, overtaking)
    release.set()
    held.join(30)
    overtaking.join(30)
    assert failures == []
    DurableProject(setup).runtime.tick()  # what is left, in a pass of its own
    assert decision_lines(setup.engine) == _simulated(project, setup, clock.now)
    with setup.engine.connect() as conn:
        sends = conn.scalar(
            sa.select(sa.func.count()).select_from(decisions).where(decisions.c.action == "send")
        )
    assert sends == 0  # she ordered: no cart email


def test_a_timer_batch_and_an_event_batch_of_one_customer_do_not_deadlock(
    shop: tuple[Path, list[Followup], Clock],
) -> None:
    """An event batch holds the customer; a timer batch of theirs at the same time used to
    lock their timers then wait for the customer, while the event batch waited to replace
    those timers: PostgreSQL aborted one of them."""
    project, (setup, first, second), clock = shop
    shopper(setup, "ann", T0)
    clock.now = T0 + timedelta(minutes=1)
    DurableProject(setup).runtime.tick()  # entered: the cart email waits an hour
    setup.track("Product Viewed", user_id="ann", timestamp=T0 + timedelta(minutes=40))
    clock.now = T0 + timedelta(hours=2)
    holding, release = threading.Event(), threading.Event()

    def hold(point: str) -> None:
        if point == "events_decided" and not holding.is_set():
            holding.set()
            assert release.wait(30)

    events_pass = DurableProject(first, crash=hold).runtime
    timers_pass = DurableProject(second).runtime
    failures: list[BaseException] = []
    eventing = _in_thread(
        lambda: events_pass.driver.event_batch(TickSummary(), clock.now), failures
    )
    assert holding.wait(30)
    timing = _in_thread(lambda: timers_pass.driver.timer_batch(TickSummary(), clock.now), failures)
    _until_waiting_or_done(setup.engine, timing)
    release.set()
    eventing.join(30)
    timing.join(30)
    assert failures == []
    DurableProject(setup).runtime.tick()
    assert decision_lines(setup.engine) == _simulated(project, setup, clock.now)


def test_a_schedule_tick_stops_at_a_customer_another_pass_holds(
    empty_postgres: str, tmp_path: Path
) -> None:
    """The newsletter's tick goes over every customer in id order: at one another pass holds
    it stops (without waiting) and the next pass goes on from there; nobody is passed over."""
    project = make_project(tmp_path, ["weekly_newsletter"])
    clock = Clock(T0 - timedelta(days=1))
    followup = open_followup(project, empty_postgres, clock)
    try:
        for user in ("ann", "bob", "cat", "dan"):
            followup.identify(
                user_id=user,
                traits={"email": f"{user}@example.com", "consent": {"email": True}},
                timestamp=clock.now,
            )
        durable = DurableProject(followup)
        durable.runtime.tick()  # first seen: the tick is next Monday, 09:00 in Paris
        # half an hour after that tick (07:00 UTC): within its misfire_grace
        clock.now = T0 - timedelta(hours=1, minutes=30)
        with followup.engine.connect() as conn:
            ids = sorted(conn.scalars(sa.select(customers.c.id)))
        failures: list[BaseException] = []
        with followup.engine.connect() as holder:
            holder.execute(
                sa.select(customers.c.id).where(customers.c.id == ids[2]).with_for_update()
            )  # another pass holds the third customer
            ticking = _in_thread(durable.runtime.tick, failures)
            ticking.join(10)
            waited = ticking.is_alive()
            holder.rollback()
        ticking.join(30)
        assert not waited, "the tick waited for a customer another pass held"
        assert failures == []
        assert _entered(followup) == ids[:2]
        durable.runtime.tick()
        assert _entered(followup) == ids
    finally:
        followup.close()


def _entered(followup: Followup) -> list[str]:
    query = sa.select(decisions.c.customer_id).where(decisions.c.action == "enter")
    with followup.engine.connect() as conn:
        return sorted(conn.scalars(query))
