"""The pieces of ``make bench-service`` that decide its figures: the two orders of the workload,
the windows of a run, and where a profile sample is counted (benchmarks/service/)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from benchmarks.service.stacks import Sample, step
from benchmarks.service.windows import flatness, window_rates
from benchmarks.service.workload import LateSpec, ensure_late


def test_both_orders_hold_the_same_events_sorted_and_shuffled(tmp_path: Path) -> None:
    files = ensure_late(LateSpec(30, 10), tmp_path)
    ordered, shuffled = (
        [orjson.loads(line) for line in files[order].read_bytes().splitlines()]
        for order in ("sorted", "shuffled")
    )
    assert len(ordered) == 300
    assert sorted(m["messageId"] for m in ordered) == sorted(m["messageId"] for m in shuffled)
    assert [m["timestamp"] for m in ordered] == sorted(m["timestamp"] for m in ordered)
    assert Counter(m["userId"] for m in ordered) == Counter({f"u{i:06d}": 10 for i in range(30)})
    late = 0  # events that arrive after a later one of the same customer
    newest: dict[str, str] = {}
    for message in shuffled:
        user = message["userId"]
        late += message["timestamp"] < newest.get(user, "")
        newest[user] = max(newest.get(user, ""), message["timestamp"])
    assert late > 100


def test_windows_spread_batches_and_count_requests_when_answered() -> None:
    # a batch of 100 over 0-2 s and one of 300 over 2-4 s: 50/s then 150/s
    assert window_rates([(2.0, 100), (4.0, 300)], 4.0, 2.0, spread=True) == [50.0, 150.0]
    # two requests answered at 0.5 s and 3.9 s, 10 events each
    assert window_rates([(0.5, 10), (3.9, 10)], 4.0, 2.0, spread=False) == [5.0, 5.0]
    # a 5.4 s run is cut into equal windows (no short last one)
    assert len(window_rates([(5.4, 54)], 5.4, 2.0, spread=True)) == 3
    shape = flatness([(2.0, 100), (4.0, 25)], 4.0, 2.0, spread=True)
    assert (shape["first"], shape["last"], shape["last_over_first"]) == (50.0, 12.5, 0.25)
    assert flatness([(1.0, 10)], 1.0, 5.0, spread=False)["last_over_first"] is None


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("GroupWriter._loop",), "waiting (idle)"),
        (
            ("GroupWriter._write", "Ingestor.write_in", "CustomerStore.history", "x"),
            "refold: reading the history",
        ),
        (
            ("Ingestor.write_in", "Ingestor.write_in.<locals>.<listcomp>", "identity_keys"),
            "identity resolution",
        ),
        (("Ingestor.write_batch", "Connection.commit", "DefaultDialect.do_commit"), "commit"),
        (
            ("GroupWriter._counts", "CustomerStore.existing_message_ids"),
            "dedupe: group writer's count",
        ),
        (("_accept", "parse_batch", "parse_message"), "parsing and validation"),
    ],
)
def test_samples_are_counted_in_the_step_that_made_the_call(
    names: tuple[str, ...], expected: str
) -> None:
    assert step(Sample("followup-writer", ("Thread.run", *names), 1)) == expected
