"""The durable engine decides on the profile as of each moment, as ``simulate`` does, even when
ingest has logged later events before the pass takes them (a backlog, a replay, a pass every
few minutes): a condition on the cart a day after the add sees the cart of that day, not the
products added on a later visit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.state.codec import state_from_json
from engine.storage.tables import customers, journey_inbox
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    open_followup,
    plan_lines,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _events(folder: Path) -> Path:
    lines = [
        message(
            "m1",
            "identify",
            T - timedelta(days=1),
            email="ann@example.com",
            phone="+14155550100",
            consent={"email": True, "ads": True, "call": True},
        ),
        message("m2", "Product Added", T, product_id="socks", price=20, quantity=1),
        # a later visit, after the cart step's day: the cart is worth 260 from then on
        message("m3", "Product Added", T + timedelta(days=2), product_id="boots", price=240),
        message("m4", "Page", T + timedelta(days=2, minutes=5)),
    ]
    path = folder / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("passes", ["one pass at the end", "hourly passes"])
def test_a_pass_decides_on_the_profile_as_of_the_step(
    database_url: str, tmp_path: Path, passes: str
) -> None:
    project = make_project(tmp_path, ["abandoned_cart"])
    events = _events(tmp_path)
    clock = Clock(T)
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, events)  # everything is logged before the engine takes any of it
        durable = DurableProject(followup)
        if passes == "hourly passes":
            clock.now = T
            while clock.now <= T + timedelta(days=9):
                durable.run_once()
                clock.now += timedelta(hours=1)
        else:
            clock.now = T + timedelta(days=9)
            durable.run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for r in read_jsonl(events) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
        # the day-later step saw a cart of 20: the ad, not the call
        assert any(" ads audience_add " in line for line in expected)
        assert not any(" call " in line for line in expected)
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_the_view_is_kept_while_ingest_is_ahead_and_cleared_once_caught_up(
    database_url: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path, ["abandoned_cart"])
    clock = Clock(T + timedelta(days=9))
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, _events(tmp_path))
        view = sa.select(customers.c.engine_state).where(customers.c.merged_into.is_(None))
        with followup.engine.connect() as conn:
            (kept,) = conn.scalars(view).all()
        assert kept is not None
        assert state_from_json(kept).cart.value == 0  # as the engine last saw ann: new
        DurableProject(followup).run_once()
        with followup.engine.connect() as conn:
            assert conn.scalars(view).all() == [None]
            assert conn.scalar(sa.select(sa.func.count()).select_from(journey_inbox)) == 0
    finally:
        followup.close()


def test_a_merge_taken_later_decides_on_the_joined_profile_of_that_moment(
    database_url: str, tmp_path: Path
) -> None:
    """A visitor's cart and Ann's profile, logged as two customers, are merged by a login
    that came before the cart but arrives after it; the engine takes all of it in one pass
    after ingest: the same plan as simulate (the cart is Ann's, with her email), and the merged
    profile keeps its view only until the engine takes the merge."""
    project = make_project(tmp_path, ["abandoned_cart"])
    identify = message(
        "m1",
        "identify",
        T - timedelta(days=1),
        email="ann@example.com",
        consent={"email": True, "ads": True},
    )
    added = message("m2", "Product Added", T, product_id="socks", price=20)
    del added["userId"]
    added["anonymousId"] = "a1"
    login = {**message("m3", "Page", T - timedelta(minutes=10)), "anonymousId": "a1"}
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(orjson.dumps(identify) + b"\n" + orjson.dumps(added) + b"\n")
    second.write_bytes(orjson.dumps(login) + b"\n")
    clock = Clock(T + timedelta(days=9))
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, first)
        ingest_file(followup, second)
        merged = sa.select(customers.c.engine_state).where(customers.c.merged_into.is_not(None))
        with followup.engine.connect() as conn:
            assert conn.scalars(merged).all() != [None]  # the engine's, until it takes m3
        DurableProject(followup).run_once()
        with followup.engine.connect() as conn:
            assert conn.scalars(merged).all() == [None]
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [
            e
            for path in (first, second)
            for r in read_jsonl(path)
            for e in getattr(r, "events", [])
        ]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
        assert any(" email " in line for line in expected)
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
