"""Plan times: ISO 8601 UTC to the second, with a fraction only when there is one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.journeys.plan import format_time


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "2024-05-06T09:00:01Z"),
        (249_000, "2024-05-06T09:00:01.249Z"),  # as an event stamped .249Z wrote it
        (100_000, "2024-05-06T09:00:01.100Z"),
        (249_500, "2024-05-06T09:00:01.249500Z"),
        (1, "2024-05-06T09:00:01.000001Z"),
    ],
)
def test_a_fraction_is_shown_in_milliseconds_when_that_says_it_all(micro: int, text: str) -> None:
    assert format_time(datetime(2024, 5, 6, 9, 0, 1, micro, tzinfo=UTC)) == text


def test_a_time_with_an_offset_prints_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 5, 6, 11, 0, tzinfo=paris)) == "2024-05-06T09:00:00Z"
