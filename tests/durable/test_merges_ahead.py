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

import pytest
import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
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
    open_followup,
    plan_lines,
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
