"""A partition whose passes lag behind another's (its worker down) and a profile merged across
the two meanwhile: each tick and segment look acts once on each profile, as ``simulate`` plans
(it has one clock: at 09:00 the device's profile and Eve are two customers, each entered; the
sign-in merges them after).

The device's profile (partition 0) and Eve (partition 1) consent and order before the daily
newsletter's 09:00 tick and the 09:30 one; both turn "lapsed" by the 09:00 segment sweep. The
device signs in as Eve at 09:10. One partition runs its passes on time (09:15, 09:35), the other
lags both ticks and passes at 09:50 only: the survivor's partition, or the merged profile's. A
batch that takes a profile's work before its own partition's run has come to it (the run that
meets the device's profile merged ahead takes Eve's work; Eve's pass takes the merge) first acts
on the tick that run is on and marks it, and the run passes the marked profile over
(``engine/durable/tick_marks.py``): Eve, carrying the device's journeys after the merge, is not
entered again at 09:00.

Then the count of partitions changed while a partition of the old count lags its tick: a pass
of the new count leaves the schedule to the old count (``test_partitions.py``), but must not
take the lagging partition's customers' events before their tick.
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
    make_project,
    open_followup,
    simulated_plan,
    write_messages,
)
from tests.durable.test_merged_before_its_tick import DAILY, LAPSED, NINE, _message

EIGHT = NINE - timedelta(hours=1)
END = NINE + timedelta(minutes=50)
SECOND = DAILY.replace("daily", "second").replace('"0 9', '"30 9')
EVE = customer_id_for("user:eve")
DEVICE = customer_id_for("email:ann@home.example")
HALVES = [Partition(0, 2), Partition(1, 2)]


def _ordered(message_id: str, at: datetime, **ids: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "properties": {"order_id": message_id, "revenue": 5},
        **ids,
    }


# every pair of the three choices, in four runs of the eight (an orthogonal array): which
# partition lags, whether the sign-in comes before the 09:15 or the 09:35 pass, which of the two
# passes at 09:50 goes first
@pytest.mark.parametrize(
    ("lagging", "arrives", "lagging_first"),
    [(1, 0, True), (1, 1, False), (0, 0, False), (0, 1, True)],
    ids=[
        "survivor-lags-signin-before-0915-lagger-first",
        "survivor-lags-signin-before-0935-ontime-first",
        "merged-lags-signin-before-0915-ontime-first",
        "merged-lags-signin-before-0935-lagger-first",
    ],
)
def test_a_profile_merged_into_a_lagging_partition_is_ticked_once(
    database_url: str, tmp_path: Path, lagging: int, arrives: int, lagging_first: bool
) -> None:
    assert HALVES[0].holds(DEVICE) and HALVES[1].holds(EVE)
    project = make_project(tmp_path / "project", [])
    for name, text in {"daily": DAILY, "second": SECOND, "lapsed": LAPSED}.items():
        (project / "campaigns" / f"{name}.yaml").write_text(text)
    consent = {"consent": {"email": True}}
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _message("known", EIGHT - timedelta(hours=1), userId="eve", email="e@x.org", **consent),
            _message("signup", EIGHT, anonymousId="device-1", email="ann@home.example", **consent),
            _ordered("o-dev", EIGHT, anonymousId="device-1"),
            _ordered("o-eve", EIGHT + timedelta(minutes=5), userId="eve"),
            _message(
                "signed-in", NINE + timedelta(minutes=10), userId="eve", anonymousId="device-1"
            ),
        ],
    )
    expected = simulated_plan(project, events, until=END + timedelta(hours=2))
    entered = sorted(line.split()[1] for line in expected if " enter " in line)
    # each of the two profiles in each tick and sweep before the merge; Eve alone at 09:30
    assert entered == ["daily", "daily", "lapsed", "lapsed", "second"]
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)
    try:
        followup.ingestor.ingest(records[:4])
        passes = [DurableProject(followup, partition=half) for half in HALVES]
        for half_pass in passes:
            half_pass.run_once()
        on_time = passes[1 - lagging]
        for k, minutes in enumerate((15, 35)):  # the lagging partition's worker is down
            if k == arrives:
                followup.ingestor.ingest(records[4:])
            clock.now = NINE + timedelta(minutes=minutes)
            on_time.run_once()
        clock.now = END
        for half_pass in (
            (passes[lagging], on_time) if lagging_first else (on_time, passes[lagging])
        ):
            half_pass.run_once()
        clock.now = END + timedelta(hours=2)
        for half_pass in passes:
            half_pass.run_once()
        assert decision_lines(followup.engine) == expected
        with followup.engine.connect() as conn:  # every run went over its partition: no marks
            assert conn.scalar(sa.select(sa.func.count()).select_from(tick_marks)) == 0
    finally:
        followup.close()


@pytest.mark.parametrize("second", [False, True], ids=["events", "own-run"])
@pytest.mark.parametrize("consents", [True, False], ids=["opts-in", "opts-out"])
def test_a_new_count_leaves_the_lagging_partitions_events_to_after_their_tick(
    database_url: str, tmp_path: Path, consents: bool, second: bool
) -> None:
    """Passes split in two; partition 0 runs the 09:00 tick at 09:15, partition 1 (Eve's) lags.
    Eve changes her consent at 09:05; a pass of the whole (workers reconfigured) at 09:40
    leaves the schedule to the two, which are in the middle of the tick, and takes Eve's event.
    Partition 1 runs the tick at 09:45: it saw Eve with the consent of 09:05, an extra send
    (``opts-in``) or a missing one (``opts-out``) against simulate's plan. Unless the pass of
    the whole acted on that tick for Eve first and marked it: in a batch of her events, or
    (``own-run``) in a batch of its own run of a second newsletter at 09:30 that no partition
    had begun, which it takes over and runs over everyone."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "daily.yaml").write_text(DAILY)
    if second:
        (project / "campaigns" / "second.yaml").write_text(SECOND)
    early = EIGHT - timedelta(hours=1)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _message("eve", early, userId="eve", email="e@x.org", consent={"email": not consents}),
            _message("bob", early, userId="bob", email="b@x.org", consent={"email": True}),
            _message(
                "change", NINE + timedelta(minutes=5), userId="eve", consent={"email": consents}
            ),
        ],
    )
    expected = simulated_plan(project, events, until=NINE + timedelta(hours=2))
    entered = sorted(line.split()[1] for line in expected if " enter " in line)
    eve_at_nine = [] if consents else ["daily"]
    eve_later = ["second"] if second and consents else []
    bob = ["daily", "second"] if second else ["daily"]
    assert entered == sorted(bob + eve_at_nine + eve_later)
    assert HALVES[1].holds(EVE) and HALVES[0].holds(customer_id_for("user:bob"))
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)
    try:
        followup.ingestor.ingest(records[:2])
        passes = [DurableProject(followup, partition=half) for half in HALVES]
        for half_pass in passes:
            half_pass.run_once()
        clock.now = NINE + timedelta(minutes=15)
        passes[0].run_once()  # the 09:00 tick for Bob; Eve's partition lags
        followup.ingestor.ingest(records[2:])
        clock.now = NINE + timedelta(minutes=40)
        DurableProject(followup).run_once()  # the whole: leaves daily to the two
        clock.now = NINE + timedelta(minutes=45)
        passes[1].run_once()  # partition 1's 09:00 tick: Eve was marked, passed over
        clock.now = NINE + timedelta(hours=2)
        DurableProject(followup).run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()


def test_a_new_count_sweeps_the_hours_a_lagging_partition_missed(
    database_url: str, tmp_path: Path
) -> None:
    """The hourly segment sweeps of two partitions, then the passes of the whole: partition 0
    swept 10:00, partition 1 (Eve's) was down. The whole takes the sweeps over from the
    earliest of the two (10:00), so Eve, lapsed since 09:50, enters at 10:00 as in simulate,
    not at 11:00; Bob, swept at 10:00 by partition 0, is not swept again."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "lapsed.yaml").write_text(LAPSED)
    bob = customer_id_for("user:bob")
    assert HALVES[1].holds(EVE) and HALVES[0].holds(bob)
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            _message("eve", EIGHT, userId="eve", email="e@x.org", consent={"email": True}),
            _message("bob", EIGHT, userId="bob", email="b@x.org", consent={"email": True}),
            _ordered("o-eve", NINE + timedelta(minutes=20), userId="eve"),
            _ordered("o-bob", NINE + timedelta(minutes=20), userId="bob"),
        ],
    )
    end = NINE + timedelta(hours=3)
    expected = simulated_plan(project, events, until=end)
    assert [line.split()[0] for line in expected if " enter " in line] == [
        (NINE + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    ] * 2
    records = sorted(read_jsonl(events), key=lambda r: r.events[0].timestamp)
    clock = Clock(EIGHT)
    followup = open_followup(project, database_url, clock)
    try:
        followup.ingestor.ingest(records[:2])
        passes = [DurableProject(followup, partition=half) for half in HALVES]
        for half_pass in passes:
            half_pass.run_once()  # the look at everyone; the hourly grid from 08:00
        followup.ingestor.ingest(records[2:])
        clock.now = NINE + timedelta(minutes=30)
        for half_pass in passes:
            half_pass.run_once()  # the orders; the 09:00 sweep found no look due
        clock.now = NINE + timedelta(minutes=65)
        passes[0].run_once()  # the 10:00 sweep: Bob
        clock.now = NINE + timedelta(minutes=100)
        DurableProject(followup).run_once()  # the whole, from 10:00: Eve at 10:00
        clock.now = end
        DurableProject(followup).run_once()
        assert decision_lines(followup.engine) == expected
    finally:
        followup.close()
