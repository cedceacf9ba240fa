"""Customers hashed to buckets, and partitions as runs of buckets."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest

from engine.drive.partitions import (
    BUCKETS,
    WHOLE,
    Partition,
    bucket_of,
    next_due,
    split_row_name,
)


def test_a_bucket_is_the_same_in_every_process() -> None:
    """CRC-32 of the id, not ``hash`` (salted per process): rows written by one worker are
    found by another."""
    assert bucket_of("c1") == zlib.crc32(b"c1") % BUCKETS == 673
    assert bucket_of("ann") == zlib.crc32(b"ann") % BUCKETS


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 1000, BUCKETS])
def test_the_partitions_of_a_count_take_every_bucket_once(count: int) -> None:
    owners = [
        index
        for bucket in range(BUCKETS)
        for index in range(count)
        if Partition(index, count).lo <= bucket < Partition(index, count).hi
    ]
    assert len(owners) == BUCKETS
    assert sorted(set(owners)) == list(range(count))


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 16, 100, 333, 1000, 1023, BUCKETS])
def test_the_partition_of_a_customer_is_the_one_that_holds_it(count: int) -> None:
    """``Partition.of`` works the index out of the bucket at once (it ran over the partitions,
    a cost in every batch at a high count): for every bucket, the partition that holds it."""
    ids: dict[int, str] = {}
    n = 0
    while len(ids) < BUCKETS:  # an id in every bucket
        ids.setdefault(bucket_of(f"c{n}"), f"c{n}")
        n += 1
    for customer_id in ids.values():
        found = Partition.of(customer_id, count)
        assert found.holds(customer_id)
        assert found.count == count


def test_a_partition_holds_the_customers_of_its_buckets() -> None:
    ids = [f"customer-{n}" for n in range(2000)]
    halves = [[c for c in ids if Partition(i, 2).holds(c)] for i in range(2)]
    assert sorted(halves[0] + halves[1]) == sorted(ids)
    assert 800 < len(halves[0]) < 1200  # spread, not all in one
    assert all(WHOLE.holds(c) for c in ids)


def test_a_partition_is_written_i_of_n() -> None:
    assert Partition.parse("2/4") == Partition(2, 4)
    assert Partition.parse(" 0 / 1 ") == WHOLE and WHOLE.whole
    assert str(Partition(3, 8)) == "3/8"
    assert Partition(1, 2).row_name("schedule:news") == "schedule:news#1/2"
    assert WHOLE.row_name("schedule:news") == "schedule:news"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("4/4", "counted from 0 to 3"),
        ("0/0", "1 to 1024 partitions"),
        ("0/2000", "1 to 1024 partitions"),
        ("half", "written i/N"),
        ("-1/2", "written i/N"),
    ],
)
def test_a_wrong_partition_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Partition.parse(text)


def test_a_schedule_is_next_due_at_the_earliest_row_of_the_count_furthest_on() -> None:
    monday, next_monday = datetime(2024, 5, 6, tzinfo=UTC), datetime(2024, 5, 13, tzinfo=UTC)
    rows = {
        "schedule:news": monday,  # passes were not split, then were split in two
        "schedule:news#0/2": next_monday,
        "schedule:news#1/2": next_monday,
        "schedule:other#0/2": monday,
    }
    assert next_due(rows, "schedule:news") == next_monday
    rows["schedule:news#1/2"] = monday  # the second partition's tick not run yet
    assert next_due(rows, "schedule:news") == monday
    assert next_due(rows, "schedule:none") is None
    assert split_row_name("schedule:news#1/2") == ("schedule:news", Partition(1, 2))
