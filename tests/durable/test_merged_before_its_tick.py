"""A profile merged at ingest before the pass that ticks it or sweeps its look: the engine still
sees it as the profile it was until it takes the merging event (docs/runtime.md, "Merges ahead
of the engine"), so a tick or a look due before that event acts on it, as in ``simulate``.

A shopper signs up to the newsletter signed out (an anonymous profile with an address and
consent), then signs in on that device after the newsletter's 09:00 tick; both are ingested
before the pass that runs the tick. ``simulate`` enters the anonymous profile at 09:00 and merges
it at the sign-in; the durable runtime went over live profiles only, so the merged one got
nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.identity import customer_id_for
from engine.ingest.jsonl import read_jsonl
from engine.storage.tables import customers
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    killed_then_resumed,
    make_project,
    open_followup,
    simulated_plan,
    write_messages,
)

NINE = datetime(2024, 5, 6, 9, tzinfo=UTC)
DAILY = """campaign: daily
trigger: {schedule: "0 9 * * *"}
audience: customer.consent.email
steps:
  - send: email
    template: newsletter.html
    subject: daily
"""
LAPSED = """campaign: lapsed
trigger: {segment: "customer.orders.last_at and customer.orders.last_at < now - minutes(30)"}
steps:
  - send: email
    template: newsletter.html
    subject: lapsed
"""


def _anonymous(message_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """A message from the signed-out device: identify traits, or an order's properties."""
    found: dict[str, Any] = {
        "anonymousId": "device-1",
        "messageId": message_id,
        "timestamp": at.isoformat(),
    }
    if message_id.startswith("i"):
        return {**found, "type": "identify", "traits": fields}
    return {**found, "type": "track", "event": "Order Completed", "properties": fields}


def _known(at: datetime) -> dict[str, Any]:
    """Ann's own profile, known for a day, with no consent."""
    return {
        "type": "identify",
        "userId": "ann",
        "messageId": "known",
        "timestamp": (at - timedelta(days=1)).isoformat(),
        "traits": {"email": "ann@work.example"},
    }


def _signing_in(at: datetime) -> dict[str, Any]:
    """Ann signs in on the device: its profile is merged into hers."""
    return {
        "type": "identify",
        "userId": "ann",
        "anonymousId": "device-1",
        "messageId": "signed-in",
        "timestamp": at.isoformat(),
        "traits": {},
    }


def _run(
    project: Path, events: Path, database_url: str, first: datetime, passes: list[datetime]
) -> list[str]:
    """Ingest the messages up to ``first``, pass then; ingest the rest, pass at each of
    ``passes``: the decisions log."""
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(first)
    followup = open_followup(project, database_url, clock)
    try:
        before = [r for r in records if r.events[0].timestamp <= first]
        followup.ingestor.ingest(before)
        durable = DurableProject(followup)
        durable.run_once()
        followup.ingestor.ingest(records[len(before) :])
        for at in passes:
            clock.now = at
            durable.run_once()
        return decision_lines(followup.engine)
    finally:
        followup.close()


def _signed_up_then_in(
    folder: Path, signed_in: datetime, end: datetime
) -> tuple[Path, Path, list[str]]:
    """The daily newsletter's project; a signed-out signup at 08:00 (an address, consent) and
    Ann's sign-in on that device at ``signed_in``; simulate's plan to ``end``, which enters the
    signed-out profile at 09:00: the project, the events, the plan."""
    project = make_project(folder / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    consenting = {"email": "ann@example.com", "consent": {"email": True}}
    events = write_messages(
        folder / "events.jsonl",
        [
            _known(NINE),
            _anonymous("i-signup", NINE - timedelta(hours=1), **consenting),
            _signing_in(signed_in),
        ],
    )
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[1:6:4] for line in expected if " enter " in line] == [["daily", "enter"]]
    return project, events, expected


def test_a_profile_signed_in_after_the_tick_is_ticked_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    end = NINE + timedelta(minutes=45)
    project, events, expected = _signed_up_then_in(tmp_path, NINE + timedelta(minutes=10), end)
    found = _run(project, events, database_url, NINE - timedelta(hours=1), [end])
    assert found == expected


def test_a_profile_signed_in_after_its_look_is_swept_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    """The anonymous order turns "lapsed" at 08:30, swept at 09:00; the sign-in at
    09:10 is ingested before the pass at 09:45."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "lapsed.yaml").write_text(LAPSED)
    eight = NINE - timedelta(hours=1)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            _anonymous("i-signup", eight, email="ann@example.com", consent={"email": True}),
            _anonymous("o1", eight, order_id="A1", revenue=10),
            _signing_in(NINE + timedelta(minutes=10)),
        ],
    )
    end = NINE + timedelta(minutes=45)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[1:6:4] for line in expected if " enter " in line] == [["lapsed", "enter"]]
    found = _run(project, events, database_url, eight, [end])
    assert found == expected


def test_a_profile_ticked_before_its_merge_is_not_ticked_again(
    database_url: str, tmp_path: Path
) -> None:
    """The pass at 09:15 goes over the signed-out profile (its id sorts first; one customer a
    batch), enters it in the 09:00 tick, and crashes. The sign-in is ingested, and the next
    pass goes on with Ann, whose work now holds that profile too, merged ahead of the engine:
    it is not entered a second time."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    consenting = {"email": "ann@example.com", "consent": {"email": True}}
    viewed = NINE + timedelta(minutes=5)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            _anonymous("i-signup", NINE - timedelta(hours=1), **consenting),
            {**_anonymous("v-device", viewed), "event": "Product Viewed", "properties": {}},
            {**_known(viewed), "type": "track", "event": "Product Viewed", "properties": {}},
            _signing_in(NINE + timedelta(minutes=10)),
        ],
    )
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(NINE - timedelta(hours=1))
    followup = open_followup(project, database_url, clock)

    def entered_one() -> None:
        assert [line.split()[5] for line in decision_lines(followup.engine)] == ["enter", "send"]

    try:
        end = NINE + timedelta(minutes=45)
        arrivals = (records[:2], records[2:4], records[4:])
        killed_then_resumed(
            followup, clock, arrivals, NINE + timedelta(minutes=15), end, entered_one
        )
        assert decision_lines(followup.engine) == simulated_plan(project, events, until=end)
    finally:
        followup.close()


def test_a_customer_first_seen_after_the_tick_is_not_in_it(
    database_url: str, tmp_path: Path
) -> None:
    """Bob's first event comes at 09:10 and is ingested before the pass that runs the 09:00
    tick: he was no one at 09:00, so an audience his empty profile matches does not enter him
    (it did: the pass went over every profile ingest had made)."""
    project = make_project(tmp_path / "project", [])
    anyone = DAILY.replace("customer.consent.email", '"not customer.consent.email"')
    (project / "campaigns" / "daily.yaml").write_text(anyone)
    bob = {
        "type": "identify",
        "userId": "bob",
        "messageId": "bob",
        "timestamp": (NINE + timedelta(minutes=10)).isoformat(),
        "traits": {"email": "bob@example.com"},
    }
    events = write_messages(tmp_path / "events.jsonl", [_known(NINE), bob])
    end = NINE + timedelta(minutes=45)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[5] for line in expected] == ["enter", "send"]  # Ann's, not Bob's
    found = _run(project, events, database_url, NINE - timedelta(hours=1), [end])
    assert found == expected


RECENT = """campaign: recent
trigger: {segment: "customer.orders.last_at and customer.orders.last_at > now - minutes(30)"}
steps:
  - send: email
    template: newsletter.html
    subject: recent
"""


def test_a_merged_profiles_look_leaves_its_survivor_to_its_own_partition(
    database_url: str, tmp_path: Path
) -> None:
    """Two partitions: the signed-out profile (partition 0) ordered at 08:00; its look at the
    09:00 sweep finds the order too old (nothing enters). Ann (partition 1) consents at 09:05
    and signs in on the device at 09:10, both ingested before the passes at 09:45. Partition
    0's sweep of the look must not take Ann's events before partition 1 runs the 09:00 tick
    over her (it did, and the tick saw the 09:05 consent)."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    (project / "campaigns" / "recent.yaml").write_text(RECENT)
    eight = NINE - timedelta(hours=1)
    consenting = {**_known(NINE), "messageId": "consent", "traits": {"consent": {"email": True}}}
    consenting["timestamp"] = (NINE + timedelta(minutes=5)).isoformat()
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            _anonymous("i-signup", eight, email="ann@example.com"),
            _anonymous("o1", eight, order_id="A1", revenue=10),
            consenting,
            _signing_in(NINE + timedelta(minutes=10)),
        ],
    )
    end = NINE + timedelta(minutes=45)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(eight)
    followup = open_followup(project, database_url, clock)
    try:
        halves = [Partition(i, 2) for i in range(2)]
        device, ann = customer_id_for("email:ann@example.com"), customer_id_for("user:ann")
        assert halves[0].holds(device) and halves[1].holds(ann)
        followup.ingestor.ingest(records[:3])
        passes = [DurableProject(followup, partition=half) for half in halves]
        for half_pass in passes:
            half_pass.run_once()
        followup.ingestor.ingest(records[3:])
        clock.now = end
        for half_pass in passes:
            half_pass.run_once()
        assert decision_lines(followup.engine) == simulated_plan(project, events, until=end)
    finally:
        followup.close()


def test_a_merged_profiles_look_left_for_its_survivor_holds_up_no_other_look(
    database_url: str, tmp_path: Path
) -> None:
    """One customer a batch: the signed-out profile's look and Bob's both come at the 09:00
    sweep, the profile's first; the sign-in at 09:10 is ingested, and on PostgreSQL another
    session holds Ann's row through the pass at 09:45. Bob is swept at 09:00 all the same (the
    sweep stopped at the profile's look and left his to 10:00), and the profile's look at
    09:00 too, by the next pass that takes Ann's work."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "lapsed.yaml").write_text(LAPSED)
    eight = NINE - timedelta(hours=1)
    bob = {"userId": "bob", "timestamp": (eight - timedelta(minutes=5)).isoformat()}
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            _anonymous("i-signup", eight - timedelta(minutes=15), email="ann@example.com"),
            _anonymous("o1", eight - timedelta(minutes=15), order_id="A1", revenue=10),
            {**bob, "type": "identify", "messageId": "b1", "traits": {"email": "b@example.com"}},
            {**bob, "type": "track", "event": "Order Completed", "messageId": "b2"},
            _signing_in(NINE + timedelta(minutes=10)),
        ],
    )
    end = NINE + timedelta(hours=1, minutes=45)
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(eight)
    followup = open_followup(project, database_url, clock)
    try:
        followup.ingestor.ingest(records[:-1])
        DurableProject(followup).run_once()
        followup.ingestor.ingest(records[-1:])
        clock.now = NINE + timedelta(minutes=45)
        with followup.engine.connect() as other, other.begin():
            if database_url.startswith("postgresql"):  # Ann's row, held by another session
                held = sa.select(customers.c.id).where(
                    customers.c.id == customer_id_for("user:ann")
                )
                assert other.scalar(held.with_for_update()) is not None
            one_a_batch = DurableProject(followup)
            one_a_batch.runtime.batch_size = 1
            one_a_batch.run_once()
        clock.now = end
        DurableProject(followup).run_once()
        expected = simulated_plan(project, events, until=end)
        assert [line.split()[0][11:16] for line in expected if " enter " in line] == [
            "09:00",
            "09:00",
        ]
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def _message(message_id: str, at: datetime, **ids_and_traits: Any) -> dict[str, Any]:
    """An identify at ``at`` with ``userId``/``anonymousId`` and traits as given."""
    ids = {
        key: ids_and_traits.pop(key) for key in ("userId", "anonymousId") if key in ids_and_traits
    }
    return {
        "type": "identify",
        "messageId": message_id,
        "timestamp": at.isoformat(),
        **ids,
        "traits": ids_and_traits,
    }


def test_a_chain_of_merges_ahead_keeps_the_middle_profile_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    """The address's profile (consenting at 07:00) takes in the device at 08:50 and is merged
    into Ann's at 09:10, both ingested before the pass that runs the 09:00 tick: at 09:00 the
    engine sees the address's profile with its consent, as simulate does (it folded the
    address's profile from its own log, empty since ingest moved it to Ann's)."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            _message(
                "q", NINE - timedelta(hours=2), email="ann@example.com", consent={"email": True}
            ),
            {**_anonymous("p", NINE - timedelta(minutes=90)), "traits": {"viewed": True}},
            _message(
                "e1", NINE - timedelta(minutes=10), anonymousId="device-1", email="ann@example.com"
            ),
            _message("e2", NINE + timedelta(minutes=10), userId="ann", email="ann@example.com"),
        ],
    )
    end = NINE + timedelta(minutes=45)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[5] for line in expected] == ["enter", "send"]
    assert _run(project, events, database_url, NINE - timedelta(minutes=85), [end]) == expected


def test_a_profile_merged_later_is_not_in_the_survivors_view_before(
    database_url: str, tmp_path: Path
) -> None:
    """Two devices sign in, at 09:10 and 09:30, both ingested before the pass; the second
    consented at 08:00, and a tick comes at 09:20. At 09:20 Ann has not signed in on it yet:
    only that device's profile is entered, as simulate plans (the engine folded Ann's view at
    09:10 from her whole log, the second device's consent in it)."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY.replace('"0 9', '"20 9'))
    eight = NINE - timedelta(hours=1)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _known(NINE),
            {**_anonymous("p", eight), "traits": {"viewed": True}},
            _message(
                "r", eight, anonymousId="device-2", email="r@example.com", consent={"email": True}
            ),
            _signing_in(NINE + timedelta(minutes=10)),
            _message("in2", NINE + timedelta(minutes=30), userId="ann", anonymousId="device-2"),
        ],
    )
    end = NINE + timedelta(minutes=45)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[5] for line in expected] == ["enter", "send"]
    assert _run(project, events, database_url, eight, [end]) == expected


def test_a_profile_merged_by_a_sign_in_stamped_ahead_is_ticked_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    """The sign-in is stamped 09:20 and ingested at 08:00 with the rest (a device clock
    ahead): ingest merges the signed-out profile at once, and the pass at 09:05 runs the 09:00
    tick before the sign-in is due. The tick enters the signed-out profile, as simulate plans:
    Ann's batch did not hold it, its merging event not among her due ones."""
    end = NINE + timedelta(minutes=45)
    project, events, expected = _signed_up_then_in(tmp_path, NINE + timedelta(minutes=20), end)
    clock = Clock(NINE - timedelta(hours=1))
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        for at in (clock.now, NINE + timedelta(minutes=5), end):
            clock.now = at
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
