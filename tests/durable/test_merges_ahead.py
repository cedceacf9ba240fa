"""A merge ingest made before the engine took the merged profile's events (docs/runtime.md,
"Merges ahead of the engine"): the engine takes them as the anonymous profile's until it takes
the sign-in, as ``simulate`` does.

A known shopper (email, consent) adds to the cart signed out on a new device, then signs in
there ten minutes later, and both are ingested before a pass: the cart was the anonymous
profile's, with no address and no consent, so the abandoned cart does not enter; it entered
the shopper and sent, before the inbox kept whose each event was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import customers, journeys, merges, outbox
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    open_followup,
    plan_lines,
    simulated_plan,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _stream(folder: Path) -> Path:
    return write_messages(
        folder / "events.jsonl",
        [
            {
                "type": "identify",
                "userId": "ann",
                "messageId": "known",
                "timestamp": (T - timedelta(days=1)).isoformat(),
                "traits": {"email": "ann@example.com", "consent": {"email": True}},
            },
            {
                "type": "track",
                "event": "Product Added",
                "anonymousId": "device-1",
                "messageId": "added",
                "timestamp": T.isoformat(),
                "properties": {"product_id": "socks", "price": 30},
            },
            {
                "type": "identify",
                "userId": "ann",
                "anonymousId": "device-1",
                "messageId": "signed-in",
                "timestamp": (T + timedelta(minutes=10)).isoformat(),
                "traits": {},
            },
        ],
    )


def test_a_cart_added_signed_out_is_the_anonymous_profiles_until_the_sign_in(
    database_url: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", ["abandoned_cart"])
    events = _stream(tmp_path)
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    accepted = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
    planned = plan_lines(plan_text(simulate(campaigns, accepted, ProjectConfig())))
    clock = Clock(T - timedelta(days=1))
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        lines = events.read_text().splitlines(keepends=True)
        (tmp_path / "before.jsonl").write_text("".join(lines[:2]))
        (tmp_path / "sign-in.jsonl").write_text(lines[2])
        ingest_file(followup, tmp_path / "before.jsonl")
        ingest_file(followup, tmp_path / "sign-in.jsonl")  # merges the device's profile at once
        with followup.engine.connect() as conn:
            (merged_id,) = conn.scalars(sa.select(merges.c.merged_id))
            kept = conn.scalar(
                sa.select(customers.c.engine_state).where(customers.c.id == merged_id)
            )
        assert kept is not None  # the engine's view of it, until the engine takes the merge
        clock.now = T + timedelta(hours=3)
        durable.run_once()
        with followup.engine.connect() as conn:
            sends = conn.scalar(sa.select(sa.func.count()).select_from(outbox))
            entered = conn.scalar(sa.select(sa.func.count()).select_from(journeys))
            cleared = conn.scalar(
                sa.select(customers.c.engine_state).where(customers.c.id == merged_id)
            )
        assert (sends, entered) == (0, 0)
        assert cleared is None  # merged by the engine too: its view went into the survivor's
        assert decision_lines(followup.engine) == planned
    finally:
        followup.close()


NUDGE = """\
campaign: nudge
name: Nudge
status: active
trigger: {event: Product Viewed}
steps:
  - update: {traits: {nudged: "true"}}
  - wait: 1h
  - if: customer.traits.nudged
    then:
      - send: call
        list: nudges
"""


@pytest.mark.parametrize("apart", [False, True], ids=["one-pass", "sign-in-taken-later"])
def test_a_trait_a_campaign_writes_for_a_profile_merged_ahead_reaches_the_survivor(
    database_url: str, tmp_path: Path, apart: bool
) -> None:
    """The engine takes a signed-out view while ingest has already merged the device into the
    shopper; the ``update`` step's trait is the device profile's, then the survivor's from the
    merge on. It was lost twice: taken in one pass, the merge folded the survivor's logged
    history, which did not hold the batch's own trait yet; taken apart (the sign-in stamped
    ahead of the clock), the trait was logged under the profile merged away."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "nudge.yaml").write_text(NUDGE)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            {
                "type": "identify",
                "userId": "ann",
                "messageId": "known",
                "timestamp": (T - timedelta(days=1)).isoformat(),
                "traits": {"email": "ann@example.com"},
            },
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": "device-1",
                "messageId": "viewed",
                "timestamp": T.isoformat(),
                "properties": {},
            },
            {
                "type": "identify",
                "userId": "ann",
                "anonymousId": "device-1",
                "messageId": "signed-in",
                "timestamp": (T + timedelta(minutes=10)).isoformat(),
                "traits": {},
            },
        ],
    )
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    accepted = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
    planned = plan_lines(plan_text(simulate(campaigns, accepted, ProjectConfig())))
    assert any(" call send skipped " in line for line in planned)
    clock = Clock(T - timedelta(days=1))
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        ingest_file(followup, events)  # the sign-in merges the device's profile at once
        if apart:  # the view is taken; the sign-in, beyond the clock's skew, waits
            clock.now = T + timedelta(minutes=1)
            assert durable.run_once().engine.events == 2
        clock.now = T + timedelta(hours=3)
        durable.run_once()
        assert decision_lines(followup.engine) == planned
        with followup.engine.connect() as conn:
            live = conn.scalars(sa.select(customers.c.id).where(customers.c.merged_into.is_(None)))
            assert len(list(live)) == 1  # the trait did not bring the device's profile back
    finally:
        followup.close()


WELCOME = """campaign: welcome
trigger: {event: Subscribed}
steps:
  - send: email
    template: newsletter.html
    subject: welcome
"""
REMINDER = """campaign: reminder
trigger: {event: Product Added}
steps:
  - wait: 1h
  - send: email
    template: abandoned_cart.html
    subject: reminder
"""


def _on_the_device(found: dict[str, Any]) -> dict[str, Any]:
    """``found`` sent signed out from the device."""
    signed_out = {key: value for key, value in found.items() if key != "userId"}
    return {**signed_out, "anonymousId": "device-1"}


def test_a_send_decided_in_the_batch_that_merges_its_profile_counts_for_the_survivor(
    database_url: str, tmp_path: Path
) -> None:
    """One email a day. The device (an address and consent of its own) subscribes at 08:10
    and gets the welcome; Ann signs in on it at 08:15, and one pass at 08:20 takes both; she
    adds to the cart at 08:25. The welcome counts for Ann: the 09:25 reminder is capped, as
    simulate plans (the batch moved the device's sends to Ann before it wrote its own welcome,
    which stayed the device's, and the cap missed it)."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "welcome.yaml").write_text(WELCOME)
    (project / "campaigns" / "reminder.yaml").write_text(REMINDER)
    eight = datetime(2024, 1, 9, 8, tzinfo=UTC)
    minutes = [timedelta(minutes=m) for m in (5, 10, 15, 25)]
    address = {"email": "home@example.com", "consent": {"email": True}}
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            message("ann", "identify", eight - timedelta(days=6), email="ann@example.com"),
            _on_the_device(message("dev", "identify", eight + minutes[0], **address)),
            _on_the_device(message("sub", "Subscribed", eight + minutes[1])),
            {**message("in", "identify", eight + minutes[2]), "anonymousId": "device-1"},
            message("cart", "Product Added", eight + minutes[3], product_id="p1", price=20),
        ],
    )
    config = ProjectConfig(policies={"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}})
    end = eight + timedelta(hours=2)
    expected = simulated_plan(project, events, config, end)
    assert [line.split()[6] for line in expected if " send " in line] == ["sent", "skipped"]
    clock = Clock(eight - timedelta(days=6))
    live = config.model_copy(update={"database_url": database_url})
    followup = Followup(Project(live, project), clock)
    try:
        records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
        durable = DurableProject(followup)
        for at, taken in ((clock.now, slice(0, 1)), (eight + timedelta(minutes=20), slice(1, 4))):
            clock.now = at
            followup.ingestor.ingest(records[taken])
            durable.run_once()
        followup.ingestor.ingest(records[4:])
        for at in (eight + timedelta(minutes=30), end):
            clock.now = at
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def _marking_then_emailing(folder: Path, trait: str, marked_on: str, emailed_on: str) -> Path:
    """A project whose campaign ``mark`` sets ``trait`` (an ``update`` step) on each
    ``marked_on`` event, and whose campaign ``emailed`` emails those with it on each
    ``emailed_on`` event."""
    project = make_project(folder, [])
    (project / "campaigns" / "mark.yaml").write_text(
        f"""campaign: mark
trigger: {{event: {marked_on}}}
steps:
  - update: {{traits: {{{trait}: "true"}}}}
"""
    )
    (project / "campaigns" / "emailed.yaml").write_text(
        f"""campaign: emailed
trigger: {{event: {emailed_on}}}
audience: customer.traits.{trait}
steps:
  - send: email
    template: newsletter.html
    subject: {trait}
"""
    )
    return project


def _consenting_ann(at: datetime) -> dict[str, Any]:
    """Ann's identify at ``at``: an address, and consent to email."""
    return message("ann", "identify", at, email="ann@example.com", consent={"email": True})


def test_a_trait_written_for_a_profile_merged_ahead_waits_for_its_merge(
    database_url: str, tmp_path: Path
) -> None:
    """Device D orders at 08:50 and the mark campaign sets vip; Ann checks out on device E at
    09:20 and signs in on D at 09:40, both sent ahead of the clock and ingested before the
    09:00 pass (ingest merged D into Ann at once). At 09:20 Ann is not vip yet, as simulate
    plans: the trait was logged as Ann's own, and the fold at E's merge counted it."""
    project = _marking_then_emailing(tmp_path / "project", "vip", "Order Completed", "Checkout")
    nine = datetime(2024, 5, 6, 9, tzinfo=UTC)

    def on(device: str, found: dict[str, Any]) -> dict[str, Any]:
        return {**_on_the_device(found), "anonymousId": device}

    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _consenting_ann(nine - timedelta(hours=1)),
            on("e", message("viewed", "Product Viewed", nine - timedelta(minutes=20))),
            on("d", message("order", "Order Completed", nine - timedelta(minutes=10), revenue=200)),
            {**message("checkout", "Checkout", nine + timedelta(minutes=20)), "anonymousId": "e"},
            {**message("signed-in", "identify", nine + timedelta(minutes=40)), "anonymousId": "d"},
        ],
    )
    end = nine + timedelta(hours=2)
    expected = simulated_plan(project, events, until=end)
    assert not any(" emailed " in line for line in expected)
    clock = Clock(nine - timedelta(hours=2))
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        durable.run_once()
        ingest_file(followup, events)
        for at in (nine, end):
            clock.now = at
            durable.run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


@pytest.mark.parametrize("viewer", ["device", "ann"])
def test_a_trait_written_at_the_merges_instant_reaches_the_survivor(
    database_url: str, tmp_path: Path, viewer: str
) -> None:
    """A view at 09:00 (by the device, or by Ann) has the mark campaign set ``seen``; Ann
    signs in on the device at 09:00 too, received after it; she adds to the cart at 09:05,
    and the emailed campaign, for those seen, enters her, as simulate plans. The fold at the
    merge left the trait out: an update step's event sorts after every event received at its
    instant, the sign-in too."""
    project = _marking_then_emailing(
        tmp_path / "project", "seen", "Product Viewed", "Product Added"
    )
    nine = datetime(2024, 5, 6, 9, tzinfo=UTC)
    viewed = message("viewed", "Product Viewed", nine)
    device = message("device", "Subscribed", nine - timedelta(minutes=30), list="news")
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _consenting_ann(nine - timedelta(hours=1)),
            _on_the_device(device),
            _on_the_device(viewed) if viewer == "device" else viewed,
            {**message("signed-in", "identify", nine), "anonymousId": "device-1"},
            message(
                "added", "Product Added", nine + timedelta(minutes=5), product_id="p", price=20
            ),
        ],
    )
    end = nine + timedelta(hours=2)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[1] for line in expected if " enter " in line][-1] == "emailed"
    clock = Clock(nine - timedelta(hours=2))
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)
        clock.now = end
        DurableProject(followup).run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
