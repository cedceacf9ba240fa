"""Passes split in partitions of the customers: each decides and delivers for its own customers only, every
row of due work carries its customer's bucket, a schedule's rows follow a change in the count
of partitions without running a tick twice, and a partition another pass holds is left to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.drive.partitions import BUCKETS, WHOLE, Partition, bucket_of
from engine.drive.status_model import CurrentCampaign, status_report
from engine.durable.partition_lease import PARTITION_LEASES, partition_lease
from engine.durable.project import DurableProject
from engine.durable.sql_status import SqlStatusReads
from engine.ingest.jsonl import read_jsonl
from engine.storage.tables import (
    customers,
    decisions,
    events,
    journey_inbox,
    journey_timers,
    outbox,
    schedule_ticks,
    segment_looks,
)
from tests.durable.harness import STORIES, Clock, make_project, open_followup

MONDAY = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)  # 09:00 in Paris: the newsletter's tick
READERS = [f"reader-{n:02d}" for n in range(24)]


def _entered(db: sa.Engine) -> list[str]:
    query = sa.select(decisions.c.customer_id).where(decisions.c.action == "enter")
    with db.connect() as conn:
        return sorted(conn.scalars(query))


def _delivered_to(db: sa.Engine) -> list[str]:
    query = sa.select(outbox.c.customer_id).where(outbox.c.status == "delivered")
    with db.connect() as conn:
        return sorted(conn.scalars(query))


def _customers(db: sa.Engine, partition: Partition = WHOLE) -> list[str]:
    """The ids of the live customers ``partition`` holds."""
    query = sa.select(customers.c.id).where(customers.c.merged_into.is_(None))
    with db.connect() as conn:
        return sorted(c for c in conn.scalars(query) if partition.holds(c))


def _newsletter(folder: Path, database_url: str, clock: Clock) -> Followup:
    """The newsletter's project with :data:`READERS` subscribed since Sunday."""
    followup = open_followup(make_project(folder, ["weekly_newsletter"]), database_url, clock)
    for reader in READERS:
        followup.identify(
            user_id=reader,
            traits={"email": f"{reader}@example.com", "consent": {"email": True}},
            timestamp=MONDAY - timedelta(days=1),
        )
    return followup


def _split(followup: Followup, count: int, batch_size: int = 500) -> list[DurableProject]:
    """A pass per partition of ``count``, in batches of ``batch_size`` customers."""
    split = [DurableProject(followup, partition=Partition(i, count)) for i in range(count)]
    for durable in split:
        durable.runtime.batch_size = batch_size
    return split


def test_each_partition_decides_for_its_own_customers_only(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, database_url, clock)
    try:
        first, *others = split = _split(followup, 3, batch_size=2)  # a tick in many batches
        for durable in split:  # first seen: each partition's row is due at this Monday's tick
            durable.run_once()
        clock.now = MONDAY + timedelta(minutes=5)
        summary = first.run_once().engine
        ours = _customers(followup.engine, Partition(0, 3))
        assert 0 < len(ours) < len(READERS)
        assert summary.scheduled_customers == len(ours)
        assert _entered(followup.engine) == ours
        assert _delivered_to(followup.engine) == ours  # its own rows, none of the others
        for durable in others:
            durable.run_once()
        assert _entered(followup.engine) == _customers(followup.engine)  # each reader once
        assert _delivered_to(followup.engine) == _customers(followup.engine)
        with followup.engine.connect() as conn:
            rows = dict(
                conn.execute(sa.select(schedule_ticks.c.name, schedule_ticks.c.due_at)).all()
            )
        next_monday = MONDAY + timedelta(weeks=1)
        assert {name: due for name, due in rows.items() if name.startswith("schedule:")} == {
            f"schedule:weekly-newsletter#{i}/3": next_monday for i in range(3)
        }
        with followup.engine.connect() as conn:  # what followup status says
            current = {"weekly-newsletter": CurrentCampaign("active", "v")}
            (report,) = status_report(SqlStatusReads(conn), current, clock.now).campaigns
        assert report.next_tick_at == next_monday
    finally:
        followup.close()


def test_one_project_passes_by_every_partition_with_one_set_of_providers(
    tmp_path: Path,
) -> None:
    """What a Celery worker process does: one project, a pass over whichever partition its
    task names; each partition's customers get the tick once, through the same providers."""
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        durable = DurableProject(followup)
        split = [Partition(i, 3) for i in range(3)]
        for partition in split:
            durable.run_once(partition)
        clock.now = MONDAY + timedelta(minutes=5)
        for partition in [*split, *split]:  # the second round finds nothing due
            durable.run_once(partition)
        assert _entered(followup.engine) == _customers(followup.engine)
        assert _delivered_to(followup.engine) == _customers(followup.engine)
        dispatchers = [durable.over(partition)[1] for partition in split]
        assert [d.store.partition for d in dispatchers] == split  # type: ignore[attr-defined]
        assert all(d.providers is durable.dispatcher.providers for d in dispatchers)
        assert durable.over(split[0]) == durable.over(Partition(0, 3))  # made once
    finally:
        followup.close()


def test_a_partitions_schedule_row_gone_is_made_again_as_new(tmp_path: Path) -> None:
    """One partition's row deleted by hand: its next pass makes it again at the next tick
    (as a new schedule would be), without touching the other partitions' rows."""
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        split = _split(followup, 2)
        for durable in split:
            durable.run_once()
        gone = "schedule:weekly-newsletter#1/2"
        with followup.engine.begin() as conn:
            conn.execute(schedule_ticks.delete().where(schedule_ticks.c.name == gone))
        clock.now = MONDAY + timedelta(minutes=5)
        split[0].run_once()  # partition 0 runs Monday's tick and makes the row of 1 again
        with followup.engine.connect() as conn:
            query = sa.select(schedule_ticks.c.name, schedule_ticks.c.due_at)
            due = {row.name: row.due_at for row in conn.execute(query)}
        next_monday = MONDAY + timedelta(weeks=1)
        assert due["schedule:weekly-newsletter#0/2"] == next_monday
        assert due[gone] == next_monday  # Monday's tick is past for it: a new schedule's first
        split[1].run_once()
        assert _entered(followup.engine) == _customers(followup.engine, Partition(0, 2))
    finally:
        followup.close()


def test_a_new_count_of_partitions_goes_on_where_the_last_got_to(tmp_path: Path) -> None:
    """Workers added or taken away between ticks: the rows of the new count start at the next
    tick the old ones were at; none runs a tick again."""
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        for durable in _split(followup, 2):
            durable.run_once()
        clock.now = MONDAY + timedelta(minutes=5)
        for durable in _split(followup, 2):
            durable.run_once()
        everyone = _customers(followup.engine)
        assert _entered(followup.engine) == everyone and len(everyone) == len(READERS)
        clock.now = MONDAY + timedelta(minutes=20)  # now three workers, then one
        for durable in [*_split(followup, 3), DurableProject(followup)]:
            assert durable.run_once().engine.scheduled_customers == 0
        assert _entered(followup.engine) == everyone
        clock.now = MONDAY + timedelta(weeks=1, minutes=5)  # the whole, a week on
        assert DurableProject(followup).run_once().engine.scheduled_customers == len(READERS)
        clock.now = MONDAY + timedelta(weeks=1, minutes=10)  # back to two: the whole was ahead
        for durable in _split(followup, 2):
            assert durable.run_once().engine.scheduled_customers == 0
        assert _entered(followup.engine) == sorted(everyone * 2)
    finally:
        followup.close()


def test_a_count_changed_in_the_middle_of_a_tick_waits_for_the_old_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review: the rows of a new count started at the latest row of the old count,
    so the customers of an old partition still behind never got the tick. A new count now
    leaves the schedule until every partition of the old one has run the tick."""
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        first, second = _split(followup, 2)
        for durable in (first, second):
            durable.run_once()
        clock.now = MONDAY + timedelta(minutes=5)
        first.run_once()  # partition 0/2 runs the tick; 1/2 has not yet
        done_first = _customers(followup.engine, Partition(0, 2))
        assert _entered(followup.engine) == done_first
        clock.now = MONDAY + timedelta(minutes=10)  # now four workers, then one
        for durable in [*_split(followup, 4), DurableProject(followup)]:
            assert durable.run_once().engine.scheduled_customers == 0
        assert "in the middle of a tick" in caplog.text
        assert _entered(followup.engine) == done_first
        second.run_once()  # the old count's last partition runs the tick
        assert _entered(followup.engine) == _customers(followup.engine)
        clock.now = MONDAY + timedelta(minutes=20)  # the four take over: nothing twice
        for durable in _split(followup, 4):
            assert durable.run_once().engine.scheduled_customers == 0
        # a lone pass split in another count, the four's tick due: the four give way to it
        clock.now = MONDAY + timedelta(weeks=1, minutes=5)
        lone = DurableProject(followup, partition=Partition(0, 3))
        ticked = lone.run_once().engine.scheduled_customers
        assert ticked == len(_customers(followup.engine, Partition(0, 3)))
        for durable in _split(followup, 4):  # leave it: the three are in the middle
            assert durable.run_once().engine.scheduled_customers == 0
        for durable in _split(followup, 3)[1:]:
            durable.run_once()
        everyone = _customers(followup.engine)
        assert _entered(followup.engine) == sorted(everyone * 2)  # each reader once a week
    finally:
        followup.close()


def test_every_row_of_due_work_carries_its_customers_bucket(
    database_url: str, tmp_path: Path
) -> None:
    """Inbox rows (those a sign-in moved to the shopper too), timers and segment looks: a
    partition finds each customer's work by their bucket."""
    clock = Clock(datetime(2024, 5, 1, tzinfo=UTC))
    followup = open_followup(make_project(tmp_path), database_url, clock)
    try:
        followup.ingestor.ingest(list(read_jsonl(STORIES / "events.jsonl")))
        # a device browses, then its shopper signs in on it: its waiting events are theirs now
        at = datetime(2024, 5, 2, tzinfo=UTC)
        viewed = {"productId": "p1", "price": 30}
        followup.ingest_messages(
            [
                {
                    "type": "identify",
                    "userId": "bea",
                    "messageId": "b1",
                    "timestamp": at.isoformat(),
                    "traits": {"email": "bea@example.com"},
                },
                *(
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "anonymousId": f"dev-{n}",
                        "messageId": f"v{n}",
                        "timestamp": at.isoformat(),
                        "properties": viewed,
                    }
                    for n in range(8)
                ),
            ],
            source="test",
        )
        followup.ingest_messages(
            [
                {
                    "type": "identify",
                    "userId": "bea",
                    "anonymousId": f"dev-{n}",
                    "messageId": f"s{n}",
                    "timestamp": (at + timedelta(minutes=1)).isoformat(),
                }
                for n in range(8)
            ],
            source="test",
        )
        with followup.engine.connect() as conn:
            inbox = conn.execute(
                sa.select(journey_inbox.c.bucket, events.c.customer_id).join(
                    events, events.c.message_id == journey_inbox.c.message_id
                )
            ).all()
            moved = conn.scalar(
                sa.select(sa.func.count()).where(
                    journey_inbox.c.customer_id.is_not(None),
                    journey_inbox.c.customer_id != events.c.customer_id,
                    events.c.message_id == journey_inbox.c.message_id,
                )
            )
        assert inbox and all(bucket == bucket_of(owner) for bucket, owner in inbox)
        assert moved  # the stories sign in after browsing anonymously
        clock.now = datetime(2024, 5, 12, tzinfo=UTC)
        DurableProject(followup).run_once()
        with followup.engine.connect() as conn:
            timers = conn.execute(sa.select(journey_timers.c.bucket, journey_timers.c.customer_id))
            looks = conn.execute(sa.select(segment_looks.c.bucket, segment_looks.c.customer_id))
            sends = conn.execute(sa.select(outbox.c.bucket, outbox.c.customer_id))
            rows = [*timers, *looks, *sends]
        assert rows and all(bucket == bucket_of(owner) for bucket, owner in rows)
    finally:
        followup.close()


@pytest.mark.external_service
def test_a_partition_another_pass_holds_is_left_to_it(empty_postgres: str, tmp_path: Path) -> None:
    clock = Clock(MONDAY - timedelta(minutes=30))
    followup = _newsletter(tmp_path, empty_postgres, clock)
    try:
        durable = DurableProject(followup, partition=Partition(1, 2))
        durable.run_once()
        clock.now = MONDAY + timedelta(minutes=5)
        with partition_lease(followup.engine, Partition(1, 2)) as held:
            assert held
            with followup.engine.connect() as conn:  # the lease is a session advisory lock
                locks = conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                        " AND classid = CAST(:space AS oid) AND objid = :key AND granted"
                    ),
                    {"space": PARTITION_LEASES, "key": 2 * BUCKETS + 1},
                )
            assert locks == 1
            summary = durable.run_once().engine
            assert summary.partition_taken and summary.scheduled_customers == 0
            assert _entered(followup.engine) == []
        summary = durable.run_once().engine  # let go: the next pass takes it
        assert not summary.partition_taken
        assert _entered(followup.engine) == _customers(followup.engine, Partition(1, 2))
    finally:
        followup.close()
