"""Events stamped ahead of the clock (docs/runtime.md, "events"): a pass takes no event stamped
after its time. Taken sooner, it would come before a schedule tick, segment sweep or journey
timer due before it, or before an event stamped earlier that has yet to arrive, all of which
``simulate`` decides first. Passes run at times of their own, as `followup tick --now` after an
import, with every message ingested at once or as it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_arrived,
    make_project,
    open_followup,
    simulated_plan,
    write_messages,
)
from tests.durable.test_merged_before_its_tick import DAILY, NINE

CART = """campaign: cart
trigger: {event: Product Added}
exit:
  - event: Order Completed
steps:
  - wait: 1m
  - send: email
    template: newsletter.html
    subject: cart
"""
LAPSED = """campaign: lapsed
trigger: {segment: "customer.orders.last_at and customer.orders.last_at < now - minutes(20)"}
audience: not customer.traits.vip
steps:
  - send: email
    template: newsletter.html
    subject: lapsed
"""


def _identify(at: datetime, number: int, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "ann",
        "messageId": f"i{number}",
        "timestamp": at.isoformat(),
        "traits": traits,
    }


def _track(at: datetime, number: int, event: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": "ann",
        "messageId": f"t{number}",
        "timestamp": at.isoformat(),
        "properties": properties,
    }


def _passes(
    database_url: str,
    tmp_path: Path,
    campaigns: str | list[str],
    messages: list[dict[str, Any]],
    passes: list[datetime],
    early: Mapping[str, timedelta] | None = None,
) -> tuple[list[str], list[str]]:
    """``simulate``'s decisions for the stream, and those of passes at ``passes``: the stream
    ingested whole before the first, or, given ``early`` (message id -> how far ahead of its
    time it arrives; the others at their time), each message by the first pass after it
    arrived."""
    project = make_project(tmp_path / "project", [])
    for number, campaign in enumerate([campaigns] if isinstance(campaigns, str) else campaigns):
        (project / "campaigns" / f"campaign{number}.yaml").write_text(campaign)
    events = write_messages(tmp_path / "events.jsonl", messages)
    expected = simulated_plan(project, events, until=passes[-1])
    clock = Clock(passes[0])
    followup = open_followup(project, database_url, clock)
    try:
        records = list(read_jsonl(events))
        if early is None:
            followup.ingestor.ingest(records)
        taken = len(records) if early is None else 0
        durable = DurableProject(followup)
        for clock.now in passes:
            taken = ingest_arrived(followup, records, taken, clock.now, early)
            durable.run_once()
        return expected, decision_lines(followup.engine)
    finally:
        followup.close()


def test_a_consent_stamped_after_a_tick_is_not_in_its_audience(
    database_url: str, tmp_path: Path
) -> None:
    """Ann consents at 09:02; a pass at 08:58 does not take it ahead of the 09:00 tick, which
    the pass at 09:10 runs: she is not in its audience, as simulate plans."""
    expected, found = _passes(
        database_url,
        tmp_path,
        DAILY,
        [
            _identify(NINE - timedelta(hours=2), 1, email="ann@example.com"),
            _identify(NINE + timedelta(minutes=2), 2, consent={"email": True}),
        ],
        [NINE - timedelta(hours=2), NINE - timedelta(minutes=2), NINE + timedelta(minutes=10)],
    )
    assert expected == []
    assert found == expected


@pytest.mark.parametrize(
    ("added", "ordered", "between"),
    [
        # the pass at 08:59:30 sets the reminder and leaves the order for the next pass
        (NINE - timedelta(minutes=1), NINE + timedelta(minutes=1), NINE - timedelta(seconds=30)),
        # the pass at 09:00:30 sets the reminder (due 09:01) and leaves the order too
        (NINE, NINE + timedelta(minutes=2), NINE + timedelta(seconds=30)),
    ],
    ids=["stored reminder", "reminder of the same batch"],
)
def test_an_order_stamped_after_the_cart_reminder_comes_after_it(
    database_url: str, tmp_path: Path, added: datetime, ordered: datetime, between: datetime
) -> None:
    """Ann adds to the cart and orders a minute after the cart's reminder is due, the order
    stamped ahead of a pass between the two: the reminder is sent first, as simulate plans (the
    order taken first exited her before it)."""
    consent = {"email": "ann@example.com", "consent": {"email": True}}
    expected, found = _passes(
        database_url,
        tmp_path,
        CART,
        [
            _identify(NINE - timedelta(hours=2), 1, **consent),
            _track(added, 2, "Product Added", price=5),
            _track(ordered, 3, "Order Completed", order_id="o1", revenue=5),
        ],
        [NINE - timedelta(hours=2), between, NINE + timedelta(hours=1)],
    )
    assert [line.split()[4] for line in expected] == ["None", "email"]  # enter, send
    assert found == expected


def test_a_trait_stamped_after_an_hourly_sweep_waits_for_it(
    database_url: str, tmp_path: Path
) -> None:
    """Ann orders at 07:35 and lapses 20 minutes later (the sweeps fall on the hour, from the
    first pass at 07:00); at 08:01 she becomes a VIP, out of the audience. A pass at 07:58 does
    not take that ahead of the 08:00 sweep, at which she enters, as simulate plans."""
    consent = {"email": "ann@example.com", "consent": {"email": True}}
    seven = NINE - timedelta(hours=2)
    expected, found = _passes(
        database_url,
        tmp_path,
        LAPSED,
        [
            _identify(seven, 1, **consent),
            _track(seven + timedelta(minutes=35), 2, "Order Completed", order_id="o", revenue=5),
            _identify(seven + timedelta(minutes=61), 3, vip=True),
        ],
        [seven, seven + timedelta(minutes=58), NINE],
    )
    assert [line.split()[0] for line in expected][:1] == ["2024-05-06T08:00:00Z"]
    assert found == expected


def test_an_event_stamped_ahead_sets_off_no_other_customers_reminder(
    database_url: str, tmp_path: Path
) -> None:
    """Bob adds to the cart at 08:59, so its reminder is due at 09:00; Ann's view stamped 09:02
    arrives at 08:57:30 (her clock runs ahead); Bob orders at 08:59:30, arriving on time. The
    pass at 08:59:10 leaves Ann's view for its time: taken with Bob's cart, it had the batch
    decide his reminder at 09:00, before the order that exits him, as simulate plans."""
    consent = {"email": "bob@example.com", "consent": {"email": True}}
    seven = NINE - timedelta(hours=2)
    messages = [
        {**_identify(seven, 1, **consent), "userId": "bob"},
        {**_track(NINE - timedelta(minutes=1), 2, "Product Added", price=5), "userId": "bob"},
        _track(NINE + timedelta(minutes=2), 3, "Product Viewed"),
        {
            **_track(NINE - timedelta(seconds=30), 4, "Order Completed", order_id="o", revenue=5),
            "userId": "bob",
        },
    ]
    expected, found = _passes(
        database_url,
        tmp_path,
        CART,
        messages,
        [seven, NINE - timedelta(seconds=50), NINE + timedelta(minutes=10)],
        early={"t3": timedelta(minutes=4, seconds=30)},
    )
    assert [line.split()[5] for line in expected] == ["enter", "exit"]
    assert found == expected


def test_a_tick_run_late_takes_no_event_stamped_after_its_next(
    database_url: str, tmp_path: Path
) -> None:
    """An hourly tick for those who consent: the pass at 08:58 runs the 08:00 tick late, and
    leaves Ann's consent stamped 09:01 for its time: the 09:00 tick, which the pass at 09:10
    runs, does not see it, as simulate plans."""
    hourly = DAILY.replace('"0 9 * * *"', '"0 * * * *", misfire_grace: 6h')
    seven = NINE - timedelta(hours=2)
    expected, found = _passes(
        database_url,
        tmp_path,
        hourly,
        [
            _identify(seven, 1, email="ann@example.com"),
            _identify(NINE + timedelta(minutes=1), 2, consent={"email": True}),
        ],
        [
            seven,
            seven + timedelta(minutes=30),
            NINE - timedelta(minutes=2),
            NINE + timedelta(minutes=10),
        ],
    )
    assert expected == []
    assert found == expected
