"""Named points of a pass where tests kill the process (``tests/durable/test_crashes.py``):
``events_decided``, ``events_committed``, ``outbox_claimed``, ``outbox_delivered``."""

from __future__ import annotations

from collections.abc import Callable

CrashPoint = Callable[[str], None]


def no_crash(point: str) -> None:
    """The default: nothing happens at any point."""
