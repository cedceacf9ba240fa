"""Quiet hours hold at delivery too: a send the engine decided outside them but delivered late
(a pass run late, a retry) waits for the end of the window, then goes, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from tests.durable.harness import HELLO_CAMPAIGN, Clock, one_campaign_project

EVENING = datetime(2024, 5, 6, 20, 50, tzinfo=UTC)  # 10 minutes before quiet hours
POLICIES = {"quiet_hours": {"email": "21:00-08:00"}}


def _rows(followup: Followup) -> list[tuple[str, datetime | None, str | None]]:
    with followup.engine.connect() as conn:
        query = sa.select(outbox.c.status, outbox.c.next_attempt_at, outbox.c.detail)
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def test_a_send_decided_before_quiet_hours_and_delivered_in_them_waits_for_morning(
    database_url: str, tmp_path: Path
) -> None:
    project = one_campaign_project(tmp_path, HELLO_CAMPAIGN, {"hello.html": "<p>Hi</p>\n"})
    clock = Clock(EVENING + timedelta(minutes=1))
    config = ProjectConfig(database_url=database_url, timezone="UTC", policies=POLICIES)
    followup = Followup(Project(config, project), clock)
    try:
        traits = {"email": "ann@example.com", "consent": {"email": True}}
        followup.identify(user_id="ann", traits=traits, timestamp=EVENING - timedelta(hours=1))
        followup.track("Subscribed", user_id="ann", properties={"list": "n"}, timestamp=EVENING)
        durable = DurableProject(followup)
        durable.runtime.tick()  # decided for 20:50, outside quiet hours
        clock.now = EVENING + timedelta(minutes=40)  # the delivery comes at 21:30
        durable.dispatcher.dispatch()
        [(status, next_attempt, detail)] = _rows(followup)
        morning = datetime(2024, 5, 7, 8, 0, tzinfo=UTC)
        assert (status, next_attempt) == ("pending", morning)
        assert detail is not None and detail.startswith(
            "quiet_hours: email quiet hours 21:00-08:00"
        )
        assert not list((project / "outbox").rglob("*.eml"))
        clock.now = morning - timedelta(minutes=1)
        durable.dispatcher.dispatch()  # not due yet
        assert _rows(followup)[0][0] == "pending"
        clock.now = morning
        durable.dispatcher.dispatch()
        assert _rows(followup)[0][0] == "delivered"
        assert len(list((project / "outbox").rglob("*.eml"))) == 1
        durable.close()
    finally:
        followup.close()
