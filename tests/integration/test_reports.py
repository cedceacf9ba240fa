"""The reports behind ``followup status`` and ``followup explain``, on rows written directly into
the engine's tables, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.drive.explanation import explain_customer
from engine.drive.status_model import CurrentCampaign, status_report
from engine.durable.sql_reads import SqlExplainReads
from engine.durable.sql_status import SqlStatusReads, recorded_campaigns
from engine.storage.database import open_database
from engine.storage.tables import (
    campaign_versions,
    customers,
    decisions,
    events,
    journey_inbox,
    journey_timers,
    journeys,
    outbox,
    schedule_ticks,
)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 20, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()


def add_journey(
    conn: sa.Connection, jid: str, campaign: str, version: str, status: str, customer: str = "c_a"
) -> None:
    conn.execute(
        journeys.insert().values(
            id=jid,
            campaign_id=campaign,
            campaign_version=version,
            customer_id=customer,
            status=status,
            settled=status != "active",
            entered_at=at(0),
            state={},
            updated_at=at(1),
        )
    )


def add_timer(conn: sa.Connection, jid: str, campaign: str, due: datetime, customer: str) -> None:
    conn.execute(
        journey_timers.insert().values(
            due_at=due,
            customer_id=customer,
            journey_id=jid,
            campaign_id=campaign,
            kind="resume",
            payload={},
        )
    )


def add_outbox(
    conn: sa.Connection,
    key: str,
    campaign: str,
    status: str,
    *,
    customer: str = "c_a",
    action: str = "send",
    channel: str = "email",
    detail: str | None = None,
    updated: datetime = NOW,
) -> None:
    journey_id, step = key.split(":")[:2]
    conn.execute(
        outbox.insert().values(
            key=key,
            journey_id=journey_id,
            step=step,
            campaign_id=campaign,
            customer_id=customer,
            channel=channel,
            action=action,
            fields={},
            status=status,
            detail=detail,
            attempts=1,
            decided_at=at(1),
            next_attempt_at=at(1),
            updated_at=updated,
            provider_id=None,
        )
    )


def add_decision(conn: sa.Connection, when: datetime, campaign: str, **values: Any) -> None:
    row: dict[str, Any] = {
        "at": when,
        "campaign_id": campaign,
        "journey_id": None,
        "customer_id": "c_a",
        "action": "enter",
        "step": None,
        "channel": None,
        "status": None,
        "reason": None,
        "fields": {},
        "recorded_at": NOW,
    }
    row.update(values)
    conn.execute(decisions.insert().values(**row))


def add_customer(conn: sa.Connection, cid: str, merged: str | None = None) -> None:
    conn.execute(
        customers.insert().values(
            id=cid, merged_into=merged, state=None if merged else {}, updated_at=NOW
        )
    )


def add_event(
    conn: sa.Connection, message_id: str, name: str, customer: str, when: datetime, inbox: bool
) -> None:
    logged = conn.execute(
        events.insert().values(
            message_id=message_id,
            type="track" if name else "identify",
            name=name,
            timestamp=when,
            customer_id=customer,
            channel="web",
            payload={},
            received_at=NOW,
        )
    )
    if inbox:
        seq = logged.inserted_primary_key[0]
        conn.execute(journey_inbox.insert().values(message_id=message_id, timestamp=when, seq=seq))


def test_status_counts_journeys_per_version_timers_outbox_and_inbox(db: sa.Engine) -> None:
    with db.begin() as conn:
        for i in range(2):
            add_journey(conn, f"j_old{i}", "cart", "v1", "active")
        add_journey(conn, "j_old2", "cart", "v1", "completed")
        add_journey(conn, "j_new0", "cart", "v2", "active")
        add_journey(conn, "j_new1", "cart", "v2", "exited")
        add_journey(conn, "j_gone", "gone", "g1", "active")
        add_journey(conn, "j_past", "past", "p1", "completed")  # removed and finished
        conn.execute(
            campaign_versions.insert(),
            [
                {"campaign_id": "cart", "version": "v1", "definition": {}, "first_seen_at": at(0)},
                {"campaign_id": "cart", "version": "v2", "definition": {}, "first_seen_at": at(5)},
            ],
        )
        add_timer(conn, "j_old0", "cart", NOW - timedelta(hours=1), "c_a")  # overdue
        add_timer(conn, "j_new0", "cart", NOW + timedelta(days=2), "c_b")
        add_timer(conn, "j_gone", "gone", NOW + timedelta(days=1), "c_c")
        add_outbox(conn, "j_old0:1", "cart", "delivered")
        add_outbox(conn, "j_old1:1", "cart", "delivered")
        add_outbox(conn, "j_old2:1", "cart", "pending")
        add_outbox(conn, "j_new0:1", "cart", "unknown", detail="process stopped; check by hand")
        add_outbox(conn, "j_new1:1", "cart", "failed", detail="550 mailbox unavailable")
        add_outbox(conn, "j_new1:2", "cart", "skipped", detail="no_consent")
        add_outbox(conn, "j_past:1", "past", "delivered")
        conn.execute(
            schedule_ticks.insert(),
            [
                {"name": "schedule:news", "due_at": at(24)},
                {"name": "segments", "due_at": at(48)},
            ],
        )
        add_event(conn, "e1", "Product Added", "c_a", at(2), inbox=True)
        add_event(conn, "e2", "", "c_a", at(3), inbox=True)
        add_event(conn, "e3", "Product Added", "c_a", at(1), inbox=False)

    current = {
        "cart": CurrentCampaign("active", "v2"),
        "news": CurrentCampaign("paused", "n1"),
        "idle": CurrentCampaign("draft", "d1"),
    }
    with db.connect() as conn:
        report = status_report(SqlStatusReads(conn), current, NOW)

    assert [c.campaign_id for c in report.campaigns] == ["cart", "gone", "idle", "news"]
    cart, gone, idle, news = report.campaigns
    assert (cart.status, cart.current_version) == ("active", "v2")
    assert [(v.version, v.current, v.active, v.completed, v.exited) for v in cart.versions] == [
        ("v2", True, 1, 0, 1),
        ("v1", False, 2, 1, 0),
    ]
    assert cart.versions[1].first_seen_at == at(0)
    assert (cart.active, cart.active_on_older, cart.completed, cart.exited) == (3, 2, 1, 1)
    assert (cart.timers, cart.timers_overdue) == (2, 1)
    assert cart.next_due_at == NOW - timedelta(hours=1)
    assert dict(cart.outbox) == {
        "pending": 1,
        "sending": 0,
        "delivered": 2,
        "skipped": 1,
        "failed": 1,
        "unknown": 1,
    }

    assert (gone.status, gone.current_version, gone.active, gone.active_on_older) == (
        "removed",
        None,
        1,
        1,
    )
    assert gone.next_due_at == NOW + timedelta(days=1)
    assert [(v.version, v.current, v.active) for v in idle.versions] == [("d1", True, 0)]
    assert (idle.status, idle.timers, idle.next_due_at) == ("draft", 0, None)
    assert news.status == "paused" and news.next_tick_at == at(24)
    assert report.next_sweep_at == at(48)

    assert [(r.key, r.detail, r.campaign_id) for r in report.unknown] == [
        ("j_new0:1", "process stopped; check by hand", "cart")
    ]
    assert report.failed_total == 1 and report.failed[0].key == "j_new1:1"
    assert report.failed[0].detail == "550 mailbox unavailable"
    assert (report.inbox_backlog, report.inbox_oldest_at) == (2, at(2))
    assert report.outbox["delivered"] == 2  # the removed, finished campaign is not listed


def test_status_of_an_empty_database_lists_the_files(db: sa.Engine) -> None:
    with db.connect() as conn:
        report = status_report(SqlStatusReads(conn), {"cart": CurrentCampaign("active", "v1")}, NOW)
    (cart,) = report.campaigns
    assert (cart.active, cart.completed, cart.exited, cart.timers) == (0, 0, 0, 0)
    assert [v.version for v in cart.versions] == ["v1"]
    assert cart.next_due_at is None and cart.next_tick_at is None
    assert set(cart.outbox.values()) == {0}
    assert (report.inbox_backlog, report.inbox_oldest_at, report.unknown) == (0, None, ())


def _merged_story(conn: sa.Connection) -> None:
    """c_c merged into c_b, c_b into c_a (a chain); c_x is someone else."""
    add_customer(conn, "c_a")
    add_customer(conn, "c_b", merged="c_a")
    add_customer(conn, "c_c", merged="c_b")
    add_customer(conn, "c_x")
    add_decision(conn, at(0), "cart", journey_id="j1", customer_id="c_c")
    email = {"template": "cart.html", "subject": "You left 1 item"}
    add_decision(
        conn,
        at(1),
        "cart",
        journey_id="j1",
        customer_id="c_b",
        action="send",
        step="1",
        channel="email",
        status="sent",
        fields=email,
    )
    add_decision(
        conn,
        at(2),
        "cart",
        journey_id="j1",
        action="audience_add",
        step="3.else.0",
        channel="ads",
        status="sent",
        fields={"audience": "cart-abandoners"},
    )
    add_decision(
        conn,
        at(3),
        "welcome",
        journey_id="j2",
        action="send",
        step="0",
        channel="email",
        status="skipped",
        reason="no_consent",
        fields={"template": "welcome.html"},
    )
    add_decision(conn, at(4), "cart", action="not_entered", reason="cooldown")
    add_decision(
        conn,
        at(5),
        "cart",
        journey_id="j1",
        action="exit",
        reason="exit_event",
        fields={"event": "Order Completed"},
    )
    add_decision(
        conn,
        at(5),
        "cart",
        journey_id="j1",
        action="audience_remove",
        step="3.else.0",
        channel="ads",
        status="sent",
        fields={"audience": "cart-abandoners"},
    )
    add_decision(conn, at(0), "cart", journey_id="j9", customer_id="c_x")  # not ours
    # the outbox rows of the merged profiles were moved to the survivor
    add_outbox(conn, "j1:1", "cart", "delivered", updated=at(1.5))
    add_outbox(conn, "j1:3.else.0", "cart", "delivered", action="audience_add", channel="ads")
    add_outbox(
        conn, "j1:3.else.0:remove", "cart", "pending", action="audience_remove", channel="ads"
    )
    add_outbox(conn, "j9:1", "cart", "failed", customer="c_x")
    add_journey(conn, "j1", "cart", "v1", "exited")
    add_journey(conn, "j3", "cart", "v2", "active")
    add_timer(conn, "j3", "cart", at(30), "c_a")
    add_timer(conn, "j3", "cart", at(20), "c_a")
    add_journey(conn, "j9", "cart", "v1", "active", customer="c_x")
    add_event(conn, "e1", "Product Added", "c_a", at(0), inbox=False)
    add_event(conn, "e2", "Product Added", "c_a", at(6), inbox=True)
    add_event(conn, "e3", "", "c_a", at(0), inbox=False)
    add_event(conn, "e4", "Product Added", "c_x", at(0), inbox=True)


def test_explain_includes_every_merged_profile_and_joins_outcomes(db: sa.Engine) -> None:
    with db.begin() as conn:
        _merged_story(conn)
    with db.connect() as conn:
        assert SqlExplainReads(conn).merged_into("c_a") == ("c_b", "c_c")
        assert SqlExplainReads(conn).merged_into("c_b") == ("c_c",)
        assert SqlExplainReads(conn).merged_into("c_x") == ()
        found = explain_customer(SqlExplainReads(conn), "c_a")

    assert found.customer_ids == ("c_a", "c_b", "c_c")
    summary = [(d.at, d.campaign_id, d.customer_id, d.action, d.reason) for d in found.decisions]
    assert summary == [
        (at(0), "cart", "c_c", "enter", None),
        (at(1), "cart", "c_b", "send", None),
        (at(2), "cart", "c_a", "audience_add", None),
        (at(3), "welcome", "c_a", "send", "no_consent"),
        (at(4), "cart", "c_a", "not_entered", "cooldown"),
        (at(5), "cart", "c_a", "exit", "exit_event"),
        (at(5), "cart", "c_a", "audience_remove", None),
    ]
    outcomes = [(d.outbox_key, d.outcome.status if d.outcome else None) for d in found.decisions]
    assert outcomes == [
        (None, None),
        ("j1:1", "delivered"),
        ("j1:3.else.0", "delivered"),
        (None, None),  # skipped: never handed to delivery
        (None, None),
        (None, None),
        ("j1:3.else.0:remove", "pending"),
    ]
    email = found.decisions[1]
    assert email.fields == {"template": "cart.html", "subject": "You left 1 item"}
    assert email.outcome is not None and email.outcome.updated_at == at(1.5)

    assert [(j.id, j.status, j.version, j.next_due_at) for j in found.journeys] == [
        ("j1", "exited", "v1", None),
        ("j3", "active", "v2", at(20)),
    ]
    assert dict(found.events) == {"Product Added": 2, "identify": 1}
    assert found.pending_events == 1


def test_explain_for_one_campaign(db: sa.Engine) -> None:
    with db.begin() as conn:
        _merged_story(conn)
    with db.connect() as conn:
        welcome = explain_customer(SqlExplainReads(conn), "c_a", "welcome")
        nothing = explain_customer(SqlExplainReads(conn), "c_a", "win-back")
        assert recorded_campaigns(conn) == {"cart", "welcome"}
    assert [(d.action, d.status, d.reason) for d in welcome.decisions] == [
        ("send", "skipped", "no_consent")
    ]
    assert welcome.journeys == ()
    assert nothing.decisions == () and nothing.journeys == ()
    assert nothing.events["Product Added"] == 2  # what the hints are made of
