"""A schedule whose passes stopped does not send its oldest missed tick late: ticks missed by
more than ``misfire_grace`` (1h by default) are skipped and counted, the rest coalesce into the
latest (APScheduler's model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_file
from engine.campaigns.schema import ScheduleTrigger
from engine.durable.project import DurableProject
from engine.storage.tables import decisions
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
