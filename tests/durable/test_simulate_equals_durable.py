"""Property: on any event stream, the durable engine decides what ``simulate`` plans.

Hypothesis draws a stream (a few shoppers, anonymous browsing and sign-ins that merge profiles,
carts, orders, refunds, signups and unsubscribes, calls, over four months, a quarter of the
events within an hour of a schedule's tick) and the times the
passes run (irregular gaps, as cron and backlogs make them, but a pass within each schedule
tick's ``misfire_grace``: a tick missed by more is skipped by design). Each event is ingested
when the clock reaches it. The decisions log must equal simulate's plan, line for line, with
the example campaigns (event, schedule and segment triggers, waits for a time of day and for an
event, branches, exits, goals, holdouts) and one with a split, an update step, ads and calls,
under frequency caps and quiet hours, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.drive.partitions import Partition
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from tests.conftest import _empty_postgres
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_arrived,
    make_project,
    simulated_plan,
    write_messages,
)

START = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)  # a Monday
SPAN = timedelta(days=120)  # long enough for win-back (90 days without an order)
SHORT_SPAN = timedelta(days=30)  # PostgreSQL's passes cost more: no win-back there
HORIZON = timedelta(days=7)  # simulate's default: a week after the last event
USERS = ("ann", "bob", "cy", "dee")
KINDS = (
    "identify",
    "Product Added",
    "Order Completed",
    "Order Refunded",
    "Subscribed",
    "Unsubscribed",
    "Call Completed",
    "Product Viewed",
)


@st.composite
def _message(draw: st.DrawFn, number: int, devices: bool, span: timedelta) -> dict[str, Any]:
    user = draw(st.sampled_from(USERS))
    kind = draw(st.sampled_from(KINDS))
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter within an hour of a tick
        tick = draw(st.sampled_from(_ticks(START, START + span)))
        at = tick + timedelta(seconds=draw(st.integers(-3600, 3600)))
    else:
        at = START + timedelta(seconds=draw(st.integers(0, int(span.total_seconds()))))
    found: dict[str, Any] = {"messageId": f"m{number}", "timestamp": at.isoformat()}
    anonymous = devices and draw(st.booleans()) and draw(st.booleans())  # a quarter signed out
    if anonymous:
        found["anonymousId"] = f"{user}-device"
    else:
        found["userId"] = user
        if devices and draw(st.booleans()):  # signed in on the device: merges what it browsed
            found["anonymousId"] = f"{user}-device"
    if kind == "identify":
        traits: dict[str, Any] = {}
        if draw(st.booleans()):  # signed out, maybe an address of its own until a sign-in
            home = anonymous and draw(st.booleans())
            traits["email"] = f"{user}.home@example.com" if home else f"{user}@example.com"
        if draw(st.booleans()):
            traits["phone"] = f"+1415555{USERS.index(user):04d}"
        if draw(st.booleans()):
            traits["consent"] = {
                channel: draw(st.booleans()) for channel in ("email", "ads", "call")
            }
        if draw(st.booleans()):
            traits["first_name"] = user.title()
        if draw(st.booleans()):
            traits["timezone"] = draw(st.sampled_from(["Europe/Paris", "America/New_York"]))
        found.update(type="identify", traits=traits)
        return found
    properties: dict[str, Any] = {}
    if kind == "Product Added":
        properties = {"product_id": "p1", "price": draw(st.sampled_from([0, 20, 45]))}
    elif kind in ("Order Completed", "Order Refunded"):
        properties = {"order_id": f"o{number}", "revenue": draw(st.sampled_from([30, 80]))}
    elif kind == "Subscribed":
        properties = {"list": draw(st.sampled_from(["newsletter", "offers"]))}
    elif kind == "Call Completed":
        properties = {"outcome": draw(st.sampled_from(["interested", "busy"]))}
    found.update(type="track", event=kind, properties=properties)
    return found


@st.composite
def _stream(draw: st.DrawFn, devices: bool, span: timedelta = SPAN) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 30))
    return [draw(_message(number, devices, span)) for number in range(count)]


# gaps between passes, in minutes: a minute to three days (a backlog; timers fall due in
# between). Hypothesis starts from, and shrinks towards, the first: a day, not a pass a minute
# for months (10,000 passes)
_GAPS = st.lists(st.sampled_from([1440, 4320, 720, 60, 1, 240, 17, 2880]), min_size=40, max_size=40)
# how many partitions each pass is split in (one after another; a merge can join two)
_PARTITIONS = st.sampled_from([1, 2, 3])


def _mondays_nine_paris(first: datetime, last: datetime) -> list[datetime]:
    """The weekly newsletter's ticks (Mondays 09:00 Europe/Paris) between the two times."""
    paris = ZoneInfo("Europe/Paris")
    day = first.astimezone(paris).date()
    ticks = []
    while (tick := datetime.combine(day, time(9), paris).astimezone(UTC)) <= last:
        if day.weekday() == 0 and tick > first:
            ticks.append(tick)
        day += timedelta(days=1)
    return ticks


def _ticks(first: datetime, last: datetime) -> list[datetime]:
    """The ticks of both weekly schedules (Mondays 06:00 and 09:00 Europe/Paris) between the
    two times."""
    nine = _mondays_nine_paris(first, last)
    return sorted([*nine, *(tick - timedelta(hours=3) for tick in nine)])


def _pass_times(first: datetime, end: datetime, gaps: list[int]) -> list[datetime]:
    """Pass times from ``first`` to ``end``: the drawn gaps (repeated), and one pass soon
    after each schedule tick (within its hour of grace)."""
    times = {first, end}
    now, index = first, 0
    while now < end:
        now += timedelta(minutes=gaps[index % len(gaps)])
        index += 1
        times.add(min(now, end))
    for number, tick in enumerate(_mondays_nine_paris(first, end)):
        # 0 to 60 minutes late, drawn from the gaps: events ingested after the tick come first
        times.add(tick + timedelta(minutes=gaps[number % len(gaps)] % 61))
    return sorted(t for t in times if t <= end)


# A campaign with what the examples leave out (a split, an update step, ads and calls), and
# project policies (caps across campaigns, quiet hours, calling hours) that defer and skip
BROWSE_NUDGE = """campaign: browse-nudge
trigger: {event: Product Viewed}
audience: customer.consent.email or customer.consent.ads
entry: {cooldown: 2d}
exit:
  - event: Order Completed
steps:
  - update: {traits: {nudged: "true"}}  # an expression: the value true
  - split:
      - name: A
        weight: 50%
        steps:
          - send: email
            template: cross_sell.html
            subject: "Still thinking it over?"
      - name: B
        weight: 50%
        steps:
          - send: ads
            audience: browsers
  - wait: 2h
  - if: customer.traits.nudged and customer.orders.count == 0
    then:
      - send: call
        list: nudges
"""
# A second schedule, due in the newsletter's pass and sorting after it: the ticks of one pass go
# over the customers together, each seeing them as of its own instant (06:00, though the
# newsletter's tick, at 09:00, is decided first)
WEEKLY_OFFERS = """campaign: weekly-offers
trigger: {schedule: "0 6 * * 1", timezone: Europe/Paris, misfire_grace: 4h}
audience: customer.phone and (customer.consent.call or customer.consent.email)
steps:
  - send: call
    list: mondays
  - send: email
    template: newsletter.html
    subject: "This week's offers"
"""
POLICIES = {
    "frequency_caps": {"email": [{"max": 1, "per": "1d"}, {"max": 3, "per": "7d"}]},
    "quiet_hours": {"email": "21:00-08:00"},
}


def _project(folder: Path) -> Path:
    """The example campaigns, and the two above."""
    project = make_project(folder)
    (project / "campaigns" / "browse_nudge.yaml").write_text(BROWSE_NUDGE)
    (project / "campaigns" / "weekly_offers.yaml").write_text(WEEKLY_OFFERS)
    return project


def _durable(
    project: Path,
    events: Path,
    url: str,
    passes: Callable[[datetime], list[datetime]],
    partitions: int = 1,
) -> list[str]:
    """The decisions of passes at the ``passes`` times, each split in ``partitions`` (run one
    after another: a partition's pass goes to the end before the next one's starts)."""
    records = sorted(
        (r for r in read_jsonl(events) if getattr(r, "events", None)),
        key=lambda r: r.events[0].timestamp,
    )
    first = records[0].events[0].timestamp
    clock = Clock(first)
    config = ProjectConfig(database_url=url, policies=POLICIES)
    followup = Followup(Project(config, project), clock)
    try:
        taken = 0
        # first seen at the first event, as simulate starts
        split = [
            DurableProject(followup, partition=Partition(index, partitions))
            for index in range(partitions)
        ]
        for now in passes(first):
            clock.now = now
            taken = ingest_arrived(followup, records, taken, now)
            for durable in split:
                durable.run_once()
        return decision_lines(followup.engine)
    finally:
        followup.close()


def _check(
    messages: list[dict[str, Any]],
    gaps: list[int],
    url_of: Callable[[Path], str],
    partitions: int = 1,
) -> None:
    """The durable decisions, passes split in ``partitions``, equal the plan
    (``FOLLOWUP_DUMP_FAILING``: a file to keep the stream, the gaps and the partitions of a
    failing example in)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = _project(root / "project")
        events = write_messages(root / "events.jsonl", messages)
        last = max(datetime.fromisoformat(m["timestamp"]) for m in messages)
        try:
            expected = simulated_plan(project, events, ProjectConfig(policies=POLICIES))
            actual = _durable(
                project,
                events,
                url_of(root),
                lambda first: _pass_times(first, last + HORIZON, gaps),
                partitions,
            )
            assert actual == expected
        except BaseException:
            if dump := os.environ.get("FOLLOWUP_DUMP_FAILING"):
                Path(dump).write_bytes(
                    orjson.dumps({"messages": messages, "gaps": gaps, "partitions": partitions})
                )
            raise


def _settings(examples: int) -> settings:
    """``examples`` streams (``FOLLOWUP_PROPERTY_EXAMPLES`` for a longer search), the same ones
    every run unless ``FOLLOWUP_PROPERTY_RANDOM=1`` asks for new ones."""
    return settings(
        max_examples=int(os.environ.get("FOLLOWUP_PROPERTY_EXAMPLES", examples)),
        derandomize=os.environ.get("FOLLOWUP_PROPERTY_RANDOM") != "1",
        deadline=None,
        # shrinking a stream costs minutes of passes: FOLLOWUP_DUMP_FAILING keeps it instead
        phases=[Phase.explicit, Phase.generate]
        if os.environ.get("FOLLOWUP_DUMP_FAILING")
        else list(Phase),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )


@_settings(12)
@given(messages=_stream(devices=False), gaps=_GAPS)
def test_durable_on_sqlite_decides_the_simulated_plan(
    messages: list[dict[str, Any]], gaps: list[int]
) -> None:
    """Shoppers signed in."""
    _check(messages, gaps, lambda root: f"sqlite:///{root / 'followup.db'}")


@_settings(12)
@given(messages=_stream(devices=True), gaps=_GAPS, partitions=_PARTITIONS)
def test_durable_with_merges_decides_the_simulated_plan(
    messages: list[dict[str, Any]], gaps: list[int], partitions: int
) -> None:
    """Anonymous browsing and sign-ins that merge profiles, ingested ahead of the engine or
    not: the engine takes each event as the profile it was received as, until the merge;
    passes split in partitions (a merge joins profiles of two partitions)."""
    _check(messages, gaps, lambda root: f"sqlite:///{root / 'followup.db'}", partitions)


@pytest.mark.external_service
@_settings(6)
@given(messages=_stream(devices=True, span=SHORT_SPAN), gaps=_GAPS, partitions=_PARTITIONS)
def test_durable_on_postgresql_decides_the_simulated_plan(
    postgres_url: str, messages: list[dict[str, Any]], gaps: list[int], partitions: int
) -> None:
    def emptied(_root: Path) -> str:
        _empty_postgres(postgres_url)
        return postgres_url

    _check(messages, gaps, emptied, partitions)
