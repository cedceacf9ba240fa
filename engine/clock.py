"""Time comes from a clock that is passed in: the wall clock at the edges, a virtual one in
simulations and tests. The core never calls ``datetime.now()`` itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, tz-aware UTC."""
    return datetime.now(UTC)


def check_time_zone(value: str) -> str:
    """``value`` when it names an IANA time zone; else a ``ValueError`` saying what to write."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone; write e.g. Europe/Paris or America/New_York"
        ) from None
    return value
