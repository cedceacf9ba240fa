"""A schedule whose passes stopped does not send its oldest missed tick late: ticks missed by
more than ``misfire_grace`` (1h by default) are skipped and counted, the rest coalesce into the
latest (APScheduler's model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_file
from engine.campaigns.schema import ScheduleTrigger
from engine.durable.project import DurableProject
from engine.storage.tables import customers, decisions
from tests.durable.harness import Clock, make_project, open_followup

MONDAY = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)  # 09:00 in Paris: the newsletter's tick


def _entries(followup_engine: sa.Engine) -> list[datetime]:
    query = sa.select(decisions.c.at).where(decisions.c.action == "enter").order_by("at")
    with followup_engine.connect() as conn:
        return list(conn.scalars(query))


def _subscribed(database_url: str, folder: Path, clock: Clock) -> tuple[Followup, DurableProject]:
    """The newsletter's project with Ann on the list since Sunday, and a first pass before
    the Monday tick (the schedule is first seen: its next tick is this Monday's)."""
    followup = open_followup(make_project(folder, ["weekly_newsletter"]), database_url, clock)
    followup.identify(
        user_id="ann",
        traits={"email": "ann@example.com", "consent": {"email": True}},
        timestamp=MONDAY - timedelta(days=1),
    )
    durable = DurableProject(followup)
    durable.run_once()
    return followup, durable


def test_after_eleven_weeks_down_only_the_latest_tick_within_the_grace_runs(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup, durable = _subscribed(database_url, tmp_path, clock)
    try:
        clock.now = MONDAY + timedelta(minutes=10)
        durable.run_once()
        assert _entries(followup.engine) == [MONDAY]
        # passes stop for eleven weeks; the next one runs 30 minutes after a Monday's tick
        clock.now = MONDAY + timedelta(weeks=11, minutes=30)
        skipped = durable.run_once().engine.ticks_skipped
        assert _entries(followup.engine) == [MONDAY, MONDAY + timedelta(weeks=11)]
        assert dict(skipped) == {"schedule:weekly-newsletter": 10}
        # down again, back on a Wednesday: this Monday's tick is two days late, none runs
        clock.now = MONDAY + timedelta(weeks=14, days=2)
        skipped = durable.run_once().engine.ticks_skipped
        assert _entries(followup.engine) == [MONDAY, MONDAY + timedelta(weeks=11)]
        assert dict(skipped) == {"schedule:weekly-newsletter": 3}
        clock.now = MONDAY + timedelta(weeks=15, minutes=5)  # on time again
        durable.run_once()
        assert _entries(followup.engine)[-1] == MONDAY + timedelta(weeks=15)
    finally:
        followup.close()


def test_misfire_grace_is_a_duration_on_the_schedule(tmp_path: Path) -> None:
    path = tmp_path / "daily.yaml"
    path.write_text(
        "campaign: daily\ntrigger: {schedule: '0 9 * * *', misfire_grace: 1d}\n"
        "audience: customer.email\n"
        "steps:\n  - send: email\n    template: t.html\n    subject: Hi\n"
    )
    loaded, problems = load_file(path)
    assert not problems and loaded is not None
    trigger = loaded.campaign.trigger
    assert isinstance(trigger, ScheduleTrigger) and trigger.misfire_grace == timedelta(days=1)


def test_a_tick_run_late_comes_before_the_events_after_it(
    database_url: str, tmp_path: Path
) -> None:
    """The pass runs 30 minutes after the tick, within its grace; Ann unsubscribed 10 minutes
    after it. She was subscribed at the tick, so she gets this week's issue, as simulate plans
    (the pass took her unsubscribe first, and the tick then found her out of the audience)."""
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup, durable = _subscribed(database_url, tmp_path, clock)
    try:
        followup.identify(
            user_id="ann",
            traits={"consent": {"email": False}},
            timestamp=MONDAY + timedelta(minutes=10),
        )
        clock.now = MONDAY + timedelta(minutes=30)
        durable.run_once()
        assert _entries(followup.engine) == [MONDAY]
    finally:
        followup.close()


HOURLY = """campaign: hourly
trigger: {schedule: "0 * * * *", misfire_grace: 2h}
audience: customer.consent.email
steps:
  - send: email
    template: newsletter.html
    subject: hourly
"""
NINE = datetime(2024, 5, 6, 9, tzinfo=UTC)


def _hourly(database_url: str, folder: Path, clock: Clock, users: list[str]) -> Followup:
    """An hourly schedule (misfire_grace 2h) first seen at 08:30, ``users`` on its list."""
    project = make_project(folder, [])
    (project / "campaigns" / "hourly.yaml").write_text(HOURLY)
    followup = open_followup(project, database_url, clock)
    for user in users:
        followup.identify(
            user_id=user,
            traits={"email": f"{user}@example.com", "consent": {"email": True}},
            timestamp=clock.now - timedelta(hours=1),
        )
    DurableProject(followup).run_once()
    return followup


def test_ticks_due_within_the_grace_coalesce_into_the_latest(
    database_url: str, tmp_path: Path
) -> None:
    """The pass after 08:30 comes at 10:20: the 09:00 and 10:00 ticks are both within the
    grace, and coalesce into 10:00's (the pass ran 09:00's and silently skipped 10:00's)."""
    clock = Clock(NINE - timedelta(minutes=30))
    followup = _hourly(database_url, tmp_path, clock, ["ann"])
    try:
        clock.now = NINE + timedelta(minutes=80)
        skipped = DurableProject(followup).run_once().engine.ticks_skipped
        assert _entries(followup.engine) == [NINE + timedelta(hours=1)]
        assert dict(skipped) == {"schedule:hourly": 1}
    finally:
        followup.close()


def test_a_tick_that_came_due_while_a_crashed_run_waited_is_counted_skipped(
    database_url: str, tmp_path: Path
) -> None:
    """The 09:00 tick crashes after its first customer (a pass at 09:15, one customer a
    batch); the next pass, at 10:20, finishes it: 10:00's tick came due meanwhile and
    coalesces into it, counted; 11:00's runs on time."""
    clock = Clock(NINE - timedelta(minutes=30))
    followup = _hourly(database_url, tmp_path, clock, ["ann", "bob"])

    def crash(point: str) -> None:
        if point == "events_committed":
            raise RuntimeError("crash")

    try:
        for user in ("ann", "bob"):  # events in each batch: one crashes after its commit
            followup.track("Product Viewed", user_id=user, timestamp=NINE + timedelta(minutes=5))
        clock.now = NINE + timedelta(minutes=15)
        crashing = DurableProject(followup, crash=crash)
        crashing.runtime.batch_size = 1
        with pytest.raises(RuntimeError, match="crash"):
            crashing.run_once()
        assert _entries(followup.engine) == [NINE]
        clock.now = NINE + timedelta(minutes=80)
        skipped = DurableProject(followup).run_once().engine.ticks_skipped
        assert _entries(followup.engine) == [NINE, NINE]
        assert dict(skipped) == {"schedule:hourly": 1}
        clock.now = NINE + timedelta(hours=2, minutes=5)
        DurableProject(followup).run_once()
        assert _entries(followup.engine) == [NINE, NINE] + [NINE + timedelta(hours=2)] * 2
    finally:
        followup.close()


@pytest.mark.external_service
def test_a_tick_stopped_at_its_first_customer_goes_on_past_the_grace(
    empty_postgres: str, tmp_path: Path
) -> None:
    """Monday's tick came due on time, but another session held its first customer; the next
    pass comes past the tick's grace. The tick had begun, though at no customer yet: it goes on
    (as it does when a later customer is held), and is not skipped as missed."""
    clock = Clock(MONDAY - timedelta(hours=1))
    followup, durable = _subscribed(empty_postgres, tmp_path, clock)
    try:
        followup.identify(
            user_id="bob",
            traits={"email": "bob@example.com", "consent": {"email": True}},
            timestamp=MONDAY - timedelta(days=1),
        )
        with followup.engine.connect() as conn:
            first = conn.scalar(sa.select(sa.func.min(customers.c.id)))
        with followup.engine.connect() as holder, holder.begin():
            holder.execute(
                sa.select(customers.c.id).where(customers.c.id == first).with_for_update()
            )
            clock.now = MONDAY
            assert durable.run_once().engine.tick_left
        clock.now = MONDAY + timedelta(days=1)  # past the grace
        durable.run_once()
        assert _entries(followup.engine) == [MONDAY, MONDAY]
    finally:
        followup.close()
