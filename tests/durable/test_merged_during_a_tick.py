"""A profile merged at ingest while a tick's run is under way, into a customer the run has
already gone over: the engine still knows the profile apart until it takes the merging event,
so the tick acts on it, as ``simulate`` plans (it missed the tick: the run went over live
customers only, and its survivor was behind the run's place).

Eve signs up to the daily newsletter signed out at 08:00 (an anonymous profile with an address
and consent) and signs in on that device at 09:10. The 09:00 tick is run over Eve before the
sign-in is ingested, over the device's profile after.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.identity import customer_id_for
from engine.ingest.jsonl import read_jsonl
from engine.storage.tables import tick_marks
from tests.durable.harness import (
    Clock,
    decision_lines,
    killed_then_resumed,
    make_project,
    open_followup,
    simulated_plan,
    write_messages,
)
from tests.durable.test_merged_before_its_tick import DAILY, NINE, _message

EIGHT = NINE - timedelta(hours=1)
END = NINE + timedelta(minutes=45)
EVE = customer_id_for("user:eve")


def _viewed(message_id: str, at: datetime, **ids: Any) -> dict[str, Any]:
    """A product view at ``at`` by ``userId``/``anonymousId``."""
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "properties": {},
        **ids,
    }


def _project(folder: Path, address: str, viewed: bool) -> tuple[Path, Path, list[str]]:
    """The daily newsletter; Eve known since yesterday; the device's signup at 08:00 with
    ``address`` and consent; views at 09:05 (``viewed``: one each); the sign-in at 09:10.
    Simulate's plan enters the device's profile at 09:00: the project, events and plan."""
    project = make_project(folder / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    views = NINE + timedelta(minutes=5)
    messages = [
        _message("known", NINE - timedelta(days=1), userId="eve"),
        _message("signup", EIGHT, anonymousId="device-1", email=address, consent={"email": True}),
        *(
            [_viewed("v-eve", views, userId="eve"), _viewed("v-dev", views, anonymousId="device-1")]
            if viewed
            else []
        ),
        _message("signed-in", NINE + timedelta(minutes=10), userId="eve", anonymousId="device-1"),
    ]
    events = write_messages(folder / "events.jsonl", messages)
    expected = simulated_plan(project, events, until=END)
    assert [line.split()[5] for line in expected] == ["enter", "send"]
    return project, events, expected


def test_a_profile_merged_behind_the_runs_place_is_ticked_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    """One customer a batch: the pass at 09:15 runs the tick over Eve (her id sorts first) and
    crashes; the sign-in is ingested, and the next pass goes on from Eve's place: the device's
    profile, merged into Eve behind that place, is entered at 09:00."""
    address = "eve@home.example"
    assert EVE < customer_id_for(f"email:{address}")
    project, events, expected = _project(tmp_path, address, viewed=True)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)

    def none_entered() -> None:
        assert decision_lines(followup.engine) == []  # Eve did not consent

    try:
        arrivals = (records[:2], records[2:4], records[4:])
        killed_then_resumed(
            followup, clock, arrivals, NINE + timedelta(minutes=15), END, none_entered
        )
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


@pytest.mark.parametrize("first", [1, 0])
def test_a_profile_merged_across_partitions_before_its_run_is_ticked(
    database_url: str, tmp_path: Path, first: int
) -> None:
    """Two partitions: Eve's (1) runs the 09:00 tick at 09:15; the sign-in is ingested. If
    Eve's partition passes first at 09:45, it takes the sign-in, merging the device's profile
    (partition 0) before partition 0's run has gone over it: the batch that takes the merge
    enters the profile at 09:00 first. If partition 0 passes first, its run meets the profile
    merged ahead, whose survivor partition 1 has gone over: it takes Eve's work and enters the
    profile."""
    address = "ann@home.example"
    halves = [Partition(i, 2) for i in range(2)]
    device = customer_id_for(f"email:{address}")
    assert halves[1].holds(EVE) and halves[0].holds(device)
    project, events, expected = _project(tmp_path, address, viewed=False)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)
    try:
        followup.ingestor.ingest(records[:2])
        passes = [DurableProject(followup, partition=half) for half in halves]
        for half_pass in passes:
            half_pass.run_once()
        clock.now = NINE + timedelta(minutes=15)
        passes[1].run_once()
        followup.ingestor.ingest(records[2:])
        clock.now = END
        for half_pass in (passes[first], passes[1 - first]):
            half_pass.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_a_survivor_ahead_of_the_run_is_ticked_before_its_work_is_taken(
    database_url: str, tmp_path: Path
) -> None:
    """Eve (first, a VIP), the device's profile, then Bob, one customer a batch: the pass at
    09:15 goes over Eve and crashes. Bob consents at 09:05 and signs in on the device at 09:10, both
    ingested before the next pass. At the device's place the run takes Bob's work with it: Bob
    is ticked at 09:00 first, as he stood (not a VIP yet), and marked, so the run passes him
    over when it comes to him (entered at 09:00 as the VIP he became at 09:05, else). Once the
    run has gone over everyone, its marks go."""
    address, bob = "shopper@example.com", customer_id_for("user:bob")
    assert EVE < customer_id_for(f"email:{address}") < bob
    project = make_project(tmp_path / "project", [])
    vips = DAILY.replace("customer.consent.email", "customer.traits.vip")
    (project / "campaigns" / "daily.yaml").write_text(vips)
    views = NINE + timedelta(minutes=5)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _message(
                "known", NINE - timedelta(days=1), userId="eve", email="eve@example.com", vip=True
            ),
            _message("bob", NINE - timedelta(days=1), userId="bob", email="bob@example.com"),
            _message("signup", EIGHT, anonymousId="dev", email=address),
            _viewed("v-eve", views, userId="eve"),
            _message("vip", views, userId="bob", vip=True),
            _message("signed-in", NINE + timedelta(minutes=10), userId="bob", anonymousId="dev"),
        ],
    )
    expected = simulated_plan(project, events, until=END)
    assert [line.split()[5] for line in expected] == ["enter", "send"]  # Eve only
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)
    try:
        arrivals = (records[:3], records[3:5], records[5:])
        killed_then_resumed(followup, clock, arrivals, NINE + timedelta(minutes=15), END)
        assert decision_lines(followup.engine) == expected
        with followup.engine.connect() as conn:  # the run went over everyone: marks gone
            assert conn.scalar(sa.select(sa.func.count()).select_from(tick_marks)) == 0
    finally:
        followup.close()
