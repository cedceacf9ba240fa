"""Quiet hours hold at delivery too: a send the engine decided outside them but delivered late
(a pass run late, a retry) waits for the end of the window, then goes, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from tests.durable.harness import (
    HELLO_CAMPAIGN,
    Clock,
    decision_lines,
    ingest_file,
    message,
    one_campaign_project,
    simulated_plan,
    write_messages,
)

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


CART_AT_NIGHT = """campaign: cart
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - wait: 1h
  - send: email
    template: hello.html
    subject: Your cart
"""


@pytest.mark.parametrize("ordered_at", ["21:30", "22:00", "23:00"])
def test_a_late_exit_and_a_send_held_by_quiet_hours_plan_as_simulate(
    database_url: str, tmp_path: Path, ordered_at: str
) -> None:
    """The cart email comes due at 22:00, in quiet hours: a pass at 22:30 holds it for 08:00.
    The order then comes in, stamped 21:30, 22:00 or 23:00. Stamped before the email came
    due (or at that instant: an event comes before the timers of its instant), simulate never
    got to the email, and neither does the durable engine (it planned `skipped: exited` at
    08:00 for an email simulate never decided); stamped after, both skip it at 08:00."""
    project = one_campaign_project(tmp_path, CART_AT_NIGHT, {"hello.html": "<p>Hi</p>\n"})
    hour, minute = map(int, ordered_at.split(":"))
    added = datetime(2024, 5, 6, 21, 0, tzinfo=UTC)
    messages = [
        message(
            "i",
            "identify",
            added - timedelta(hours=1),
            email="ann@example.com",
            consent={"email": True},
        ),
        message("p", "Product Added", added, product_id="x", price=10),
        message("o", "Order Completed", added.replace(hour=hour, minute=minute), order_id="o"),
    ]
    first = write_messages(tmp_path / "first.jsonl", messages[:2])
    late = write_messages(tmp_path / "late.jsonl", messages[2:])
    everything = write_messages(tmp_path / "all.jsonl", messages)
    config = ProjectConfig(database_url=database_url, timezone="UTC", policies=POLICIES)
    clock = Clock(added.replace(hour=22, minute=30))
    followup = Followup(Project(config, project), clock)
    try:
        durable = DurableProject(followup)
        ingest_file(followup, first)
        durable.run_once()  # the email, due at 22:00, is held for 08:00
        ingest_file(followup, late)
        clock.now = datetime(2024, 5, 7, 9, 0, tzinfo=UTC)
        durable.run_once()
        durable.close()
        found = decision_lines(followup.engine)
    finally:
        followup.close()
    assert found == simulated_plan(project, everything, config)
    skipped = [line for line in found if "skipped exited" in line]
    assert len(skipped) == (1 if ordered_at == "23:00" else 0)
