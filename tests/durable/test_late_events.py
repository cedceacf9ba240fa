"""Late events in the durable runtime (docs/runtime.md, "Late events"): an event that reaches
the engine after later events or timers of its customer were taken.

- A late trigger enters the customer as of its event time; steps whose time has passed are
  taken by the same pass, at their own times.
- A send decided but not yet delivered is checked at delivery against the profile as it stands:
  a late ``Unsubscribed`` older than the send stops it.
- A late ``Subscribed`` older than a later ``Unsubscribed`` leaves the customer unsubscribed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.drive.explanation import explain_customer
from engine.drive.partitions import Partition
from engine.durable.explain_text import decision_text
from engine.durable.project import DurableProject
from engine.durable.sql_reads import SqlExplainReads
from engine.storage.tables import customers, outbox
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    open_followup,
)

CART = """campaign: cart
trigger: {event: Product Added}
audience: customer.email
steps:
  - wait: 1h
  - send: email
    template: abandoned_cart.html
    subject: reminder
"""
T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
_ids = iter(range(1, 1000))


def _message(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return message(f"m{next(_ids)}", kind, at, **fields)


def _send(followup: Followup, folder: Path, *messages: dict[str, Any]) -> None:
    path = folder / f"batch-{next(_ids)}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    ingest_file(followup, path)


def _sends(followup: Followup) -> list[tuple[datetime, str, str | None]]:
    query = sa.select(outbox.c.decided_at, outbox.c.status, outbox.c.detail)
    with followup.engine.connect() as conn:
        return [(r.decided_at, r.status, r.detail) for r in conn.execute(query.order_by("id"))]


def _explained(followup: Followup) -> str:
    """``followup explain`` of Ann, a line per decision."""
    customer = followup.customer_id("ann")
    assert customer is not None
    with followup.engine.connect() as conn:
        decided = explain_customer(SqlExplainReads(conn), customer).decisions
    return "\n".join(decision_text(decision, customer) for decision in decided)


def _cart(followup: Followup, folder: Path, *later: dict[str, Any]) -> None:
    """Ann, subscribed the day before, adds boots to her cart at T; then ``later``."""
    consent = {"email": "ann@example.com", "consent": {"email": True}}
    _send(
        followup,
        folder,
        _message("identify", T - timedelta(days=1), **consent),
        _message("Product Added", T, product_id="boots", price=90),
        *later,
    )


def _shop(database_url: str, folder: Path, clock: Clock) -> Followup:
    project = make_project(folder, [])
    (project / "campaigns" / "cart.yaml").write_text(CART)
    return open_followup(project, database_url, clock)


def test_a_late_trigger_enters_as_of_its_time(database_url: str, tmp_path: Path) -> None:
    clock = Clock(T)
    followup = _shop(database_url, tmp_path, clock)
    try:
        consent = {"email": "ann@example.com", "consent": {"email": True}}
        _send(followup, tmp_path, _message("identify", T - timedelta(days=1), **consent))
        durable = DurableProject(followup)
        clock.now = T + timedelta(hours=3)
        durable.run_once()  # nothing yet
        _send(followup, tmp_path, _message("Product Added", T, product_id="boots", price=90))
        durable.run_once()
        assert [(at, status) for at, status, _ in _sends(followup)] == [
            (T + timedelta(hours=1), "delivered")
        ]
    finally:
        followup.close()


def test_a_late_unsubscribe_older_than_a_pending_send_stops_it(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(T)
    followup = _shop(database_url, tmp_path, clock)
    try:
        _cart(followup, tmp_path)
        durable = DurableProject(followup)
        clock.now = T + timedelta(hours=2)
        durable.runtime.tick()  # the send is decided; the dispatcher has not run yet
        assert [status for _, status, _ in _sends(followup)] == ["pending"]
        assert "step 1: email queued (template" in _explained(followup)  # not "sent" yet
        _send(followup, tmp_path, _message("Unsubscribed", T + timedelta(minutes=30)))
        durable.run_once()
        assert [(status, detail) for _, status, detail in _sends(followup)] == [
            ("skipped", "no_consent")
        ]
        explained = _explained(followup)
        assert "step 1: email decided (template" in explained and " sent" not in explained
    finally:
        followup.close()


def test_a_backfill_delivers_on_the_profile_as_of_the_pass_not_its_later_events(
    database_url: str, tmp_path: Path
) -> None:
    """A month of events ingested at once, then passes through it (a backfill, or events
    ingested ahead of the clock): the cart email decided at 10:00 is checked at delivery
    against the profile as the engine has taken it, not the unsubscribe stamped the next
    day that ingest has logged already (it was skipped `no_consent`, where simulate sends)."""
    clock = Clock(T)
    followup = _shop(database_url, tmp_path, clock)
    try:
        _cart(followup, tmp_path, _message("Unsubscribed", T + timedelta(days=1)))
        durable = DurableProject(followup)
        clock.now = T + timedelta(hours=1)
        durable.run_once()
        assert [(status, detail) for _, status, detail in _sends(followup)] == [
            ("delivered", "written to the outbox")
        ]
        profile = followup.profile("ann")  # the profile itself has every event ingested
        assert profile is not None and not profile.state.consent.email
    finally:
        followup.close()


@pytest.mark.parametrize("count", [1, 2])
def test_a_timer_of_a_profile_merged_by_a_later_sign_in_fires_on_time(
    database_url: str, tmp_path: Path, count: int
) -> None:
    """Six shoppers' devices add to cart at 09:00; each signs in to its account at 14:00,
    and all of it is ingested at once (a backfill): ingest merges each device into the
    account ahead of the engine. The cart email's timer, 10:00, of the device's journey
    fires at 10:00, as simulate plans it, though its profile is merged away; it waited for
    the account's next event (a pass over either partition of the pair, when split)."""
    clock = Clock(T)
    followup = _shop(database_url, tmp_path, clock)
    try:
        messages = []
        for n in range(6):
            device = {"anonymousId": f"device-{n}"}
            traits = {"email": f"d{n}@example.com", "consent": {"email": True}}
            messages += [
                {
                    **message(
                        f"a{n}", "identify", T - timedelta(days=1), email=f"u{n}@example.com"
                    ),
                    "userId": f"user-{n}",
                },
                {
                    **device,
                    "type": "identify",
                    "messageId": f"d{n}",
                    "traits": traits,
                    "timestamp": (T - timedelta(hours=1)).isoformat(),
                },
                {
                    **device,
                    "type": "track",
                    "event": "Product Added",
                    "messageId": f"p{n}",
                    "properties": {"product_id": "boots", "price": 90},
                    "timestamp": T.isoformat(),
                },
                {
                    **device,
                    "userId": f"user-{n}",
                    "type": "identify",
                    "messageId": f"s{n}",
                    "traits": {},
                    "timestamp": (T + timedelta(hours=5)).isoformat(),
                },
            ]
        _send(followup, tmp_path, *messages)
        halves = [Partition(i, count) for i in range(count)]
        passes = [DurableProject(followup, partition=half) for half in halves]
        with followup.engine.connect() as conn:
            owners = dict(conn.execute(sa.select(customers.c.id, customers.c.merged_into)).all())
        merged = {device: user for device, user in owners.items() if user is not None}
        assert len(merged) == 6
        if count == 2:  # some device is in the other partition than its account
            assert any(halves[0].holds(d) != halves[0].holds(u) for d, u in merged.items())
        for now in (T, T + timedelta(hours=1)):
            clock.now = now
            for one in passes:
                one.run_once()
        assert [(at, status) for at, status, _ in _sends(followup)] == [
            (T + timedelta(hours=1), "delivered")
        ] * 6
        for one in passes:
            one.close()
    finally:
        followup.close()


def test_a_late_subscribe_does_not_undo_a_later_unsubscribe(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(T)
    followup = _shop(database_url, tmp_path, clock)
    try:
        _send(
            followup,
            tmp_path,
            _message("identify", T - timedelta(days=2), email="ann@example.com"),
            _message("Unsubscribed", T - timedelta(hours=1)),
            _message("Product Added", T, product_id="boots", price=90),
        )
        # the signup of the day before comes in late: older than the unsubscribe, it loses
        _send(followup, tmp_path, _message("Subscribed", T - timedelta(days=1)))
        profile = followup.profile("ann")
        assert profile is not None and not profile.state.consent.email
        clock.now = T + timedelta(hours=2)
        DurableProject(followup).run_once()
        sends = [line.split()[5:] for line in decision_lines(followup.engine)]
        assert sends == [["enter", "None", "None"], ["send", "skipped", "no_consent"]]
        assert _sends(followup) == []
    finally:
        followup.close()
