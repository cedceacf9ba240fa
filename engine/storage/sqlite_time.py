"""A UTC time as SQLite keeps it (the text SQLAlchemy's ``DateTime`` writes there), with the
standard library alone: the bulk and driver writes store it, and ``followup tick``'s quiet check
compares with it before SQLAlchemy is loaded."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=4096)  # batch-wide times (received_at, updated_at) repeat on every row
def sqlite_time(value: datetime | None) -> str | None:
    """``value`` as ``2024-05-01 10:00:00.000000`` in UTC; ``None`` as ``None``."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")
