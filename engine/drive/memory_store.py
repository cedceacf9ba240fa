"""``simulate``'s journey store: every customer in one engine for the whole run, in memory.

The events are given up front, in event order; the engine, its journeys and its timers live as
long as the store, so loading hands out the same engine and keeping what it decided writes
nothing (the plan stays in the engine, read whole at the end). One piece of work takes every
event due by the pass's time; the timers of every customer fire as the engine advances.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from engine.drive.port import Work
from engine.events import Event
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import JourneyEngine


@dataclass(frozen=True, slots=True)
class MemoryWork:
    """Events due, of every customer (``ids`` is empty: the work is not split by customer)."""

    events: Sequence[Event]
    ids: Sequence[str] = ()


class MemoryStore:
    """One engine over ``events`` (in event order), for the store port."""

    def __init__(self, engine: JourneyEngine, events: Sequence[Event]) -> None:
        self.engine = engine
        self._events = events
        self._taken = 0  # how many of the events the engine has taken
        self._kept = 0  # how many of the engine's plan lines a save has returned

    @contextmanager
    def events(self, now: datetime) -> Iterator[MemoryWork | None]:
        """Every event not yet taken that is due by ``now``."""
        first = end = self._taken
        events = self._events
        while end < len(events) and events[end].timestamp <= now:
            end += 1
        if end == first:
            yield None
            return
        self._taken = end
        yield MemoryWork(events[first:end] if first or end < len(events) else events)

    @contextmanager
    def timers(self, now: datetime) -> Iterator[MemoryWork | None]:
        """Work for the engine's timers due by ``now``, if any are left."""
        due = self.engine.next_due()
        yield MemoryWork(()) if due is not None and due <= now else None

    def load(self, work: Work, now: datetime, decides_from: datetime) -> JourneyEngine:
        """The one engine: it holds every customer already."""
        return self.engine

    def save(self, work: Work, engine: JourneyEngine, now: datetime) -> list[PlanLine]:
        """Nothing to write: the plan stays in the engine; the lines decided since the last."""
        lines = engine.plan[self._kept :]
        self._kept = len(engine.plan)
        return lines
