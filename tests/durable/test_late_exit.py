"""A late exit event stops what its journey decided after it and has not yet delivered.

An order stamped before a due send that arrives after the send was decided, but before it was
delivered, exits the journey at the order's time: the sends still pending that were decided at
or after it are skipped (``exited``), so the deliveries are what ``simulate`` plans, and
``followup explain`` says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.drive.explanation import explain_customer
from engine.durable.explain_text import decision_text
from engine.durable.project import DurableProject
from engine.durable.sql_reads import SqlExplainReads
from engine.events import Event
from engine.journeys.plan import PlanAction
from engine.journeys.simulate import simulate
from engine.storage.customer_store import event_from_row
from engine.storage.tables import events, outbox
from tests.durable.harness import Clock, make_project, one_campaign_project, open_followup, shopper

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _order(followup: Followup, at: datetime) -> None:
    followup.track("Order Completed", user_id="ann", properties={"revenue": 30}, timestamp=at)


def _rows(followup: Followup) -> dict[str, tuple[str, str, str | None]]:
    """key -> (action, status, detail) of every outbox row."""
    with followup.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox))
        return {row.key: (row.action, row.status, row.detail) for row in rows}


def _planned(project: Path, followup: Followup, until: datetime) -> list[str]:
    """The outbox keys ``simulate`` plans to deliver for every logged event."""
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    with followup.engine.connect() as conn:
        logged: list[Event] = [event_from_row(row) for row in conn.execute(sa.select(events))]
    lines = simulate(campaigns, logged, ProjectConfig(), until)
    actions = {PlanAction.SEND, PlanAction.AUDIENCE_ADD, PlanAction.AUDIENCE_REMOVE}
    return sorted(
        f"{line.journey}:{line.step}"
        + (":remove" if line.action is PlanAction.AUDIENCE_REMOVE else "")
        for line in lines
        if line.action in actions and line.status == "sent"
    )


@pytest.fixture
def shop(database_url: str, tmp_path: Path) -> Iterator[tuple[Path, Followup, Clock]]:
    """Ann's abandoned cart at T0, on each backend; the clock just past the cart email."""
    project = make_project(tmp_path, ["abandoned_cart"])
    clock = Clock(T0 + HOUR + timedelta(minutes=1))
    followup = open_followup(project, database_url, clock)
    shopper(followup, "ann", T0)
    yield project, followup, clock
    followup.close()


def test_a_late_order_stops_the_cart_email_decided_but_not_delivered(
    shop: tuple[Path, Followup, Clock],
) -> None:
    project, followup, clock = shop
    durable = DurableProject(followup)
    durable.runtime.tick()  # the email is decided, not yet delivered
    [(key, (_action, status, _detail))] = _rows(followup).items()
    assert status == "pending"
    _order(followup, T0 + timedelta(minutes=50))  # ordered before the email was due
    clock.now += timedelta(minutes=1)
    durable.run_once()
    _action, status, detail = _rows(followup)[key]
    assert status == "skipped"
    assert detail is not None and detail.startswith("exited: the journey exited at ")
    assert "Order Completed" in detail
    assert not list((project / "outbox").rglob("*.eml"))
    assert _planned(project, followup, clock.now) == []  # simulate never planned it
    with followup.engine.connect() as conn:
        customer = followup.customer_id("ann")
        assert customer is not None
        explained = explain_customer(SqlExplainReads(conn), customer)
    lines = [decision_text(d, customer) for d in explained.decisions]
    sent = next(line for line in lines if "email decided" in line)  # decided, never sent
    assert "not delivered: skipped" in sent and "exited" in sent, lines


def test_a_late_order_stops_the_ad_and_its_removal(shop: tuple[Path, Followup, Clock]) -> None:
    """The cart email went out; the ad audience add, decided a day later, is pending when an
    order stamped before it arrives: neither the add nor the removal its exit makes goes."""
    project, followup, clock = shop
    durable = DurableProject(followup)
    durable.run_once()  # the email, delivered
    clock.now = T0 + 25 * HOUR + timedelta(minutes=1)
    durable.runtime.tick()  # the ad audience add, decided, not yet delivered
    _order(followup, T0 + 24 * HOUR + timedelta(minutes=30))
    clock.now += timedelta(minutes=1)
    durable.run_once()
    rows = _rows(followup)
    delivered = sorted(key for key, (_a, status, _d) in rows.items() if status == "delivered")
    assert delivered == _planned(project, followup, clock.now)
    skipped = sorted(action for action, status, _d in rows.values() if status == "skipped")
    assert skipped == ["audience_add", "audience_remove"]
    assert not (project / "outbox" / "ads").exists() or not any(
        path.read_text() for path in (project / "outbox" / "ads").glob("*.jsonl")
    )


def test_an_exit_at_the_instant_of_a_send_and_after_it_leaves_the_send(
    database_url: str, tmp_path: Path
) -> None:
    """A signup sends a welcome at once, and a ``Stop`` at the same instant, received after it,
    exits the journey: ``simulate`` plans the email sent (it came first), and so does the
    durable engine, taking both in one batch; the email is delivered, not skipped as if the
    exit had come in after it was decided (it came in with it)."""
    campaign = (
        "campaign: hello\ntrigger: {event: Subscribed}\nexit: [{event: Stop}]\n"
        "steps:\n  - send: email\n    template: hello.html\n    subject: Hello\n"
        "  - wait: 1d\n"  # still running when the Stop comes
    )
    project = one_campaign_project(tmp_path, campaign, {"hello.html": "<p>Hi</p>\n"})
    clock = Clock(T0 + timedelta(minutes=1))
    followup = open_followup(project, database_url, clock)
    try:
        traits = {"email": "ann@example.com", "consent": {"email": True}}
        followup.identify(user_id="ann", traits=traits, timestamp=T0 - HOUR)
        followup.track("Subscribed", user_id="ann", properties={"list": "news"}, timestamp=T0)
        followup.track("Stop", user_id="ann", timestamp=T0)
        durable = DurableProject(followup)
        durable.run_once()
        planned = _planned(project, followup, clock.now)
        assert len(planned) == 1, planned
        assert {key: status for key, (_a, status, _d) in _rows(followup).items()} == {
            planned[0]: "delivered"
        }
        assert len(list((project / "outbox").rglob("*.eml"))) == 1
    finally:
        followup.close()
