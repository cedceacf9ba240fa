"""Time comes from a clock that is passed in: the wall clock at the edges, a virtual one in
simulations and tests. The core never calls ``datetime.now()`` itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, tz-aware UTC."""
    return datetime.now(UTC)
