"""The journey store port: what the driver asks of the place journeys are kept.

In the spirit of APScheduler 4's ``DataStore``: the store hands out *work* (some customers with
everything of theirs due: their events in order, their timers), loads it into a journey engine,
and keeps what the engine decided, in one transaction per piece of work where it has them. The
driver (:mod:`engine.drive.driver`) decides; the store never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from engine.events import Event
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import JourneyEngine


class Work(Protocol):
    """Some customers and their due events, in the order the engine takes them."""

    @property
    def ids(self) -> Sequence[str]:
        """The customers this work holds (none: every customer the store has)."""
        ...

    @property
    def events(self) -> Sequence[Event]:
        """Their events due, in event order (time, then arrival)."""
        ...


class CustomersWork(Work, Protocol):
    """Customers taken in id order by a run over every customer (a schedule's tick)."""

    @property
    def run(self) -> Sequence[str]:
        """The profiles of the run this work goes over, in id order: the live customers, and
        the profiles merged into them at ingest by an event the engine has yet to take (until
        it does, the engine knows them apart: a tick before that event acts on them too)."""
        ...

    @property
    def place(self) -> str:
        """The last profile of :attr:`run`: the run's place once the work is done."""
        ...

    def profiles_for(self, name: str) -> Sequence[str]:
        """The profiles of :attr:`run` the schedule ``name``'s tick acts on: those a batch has
        not acted on first."""
        ...


class JourneyStore(Protocol):
    """Hands out work, loads it into an engine, keeps what the engine decided."""

    def events(self, now: datetime) -> AbstractContextManager[Work | None]:
        """The next work with events due by ``now`` (``None``: no event waits)."""
        ...

    def timers(self, now: datetime) -> AbstractContextManager[Work | None]:
        """The next work with timers due by ``now`` and no event waiting (``None``: none)."""
        ...

    def load(self, work: Work, now: datetime, decides_from: datetime) -> JourneyEngine:
        """An engine holding the work's customers, their journeys, timers (those due before
        ``decides_from`` too) and the sends the caps count."""
        ...

    def save(self, work: Work, engine: JourneyEngine, now: datetime) -> list[PlanLine]:
        """Keep what ``engine`` decided for the work and mark its events taken; returns the
        plan lines decided."""
        ...


class ScheduleRow(Protocol):
    """A named schedule's row, held by one pass: when it is due and how far it got."""

    @property
    def due_at(self) -> datetime:
        """When the schedule is next due."""
        ...

    @property
    def under_way(self) -> bool:
        """Whether a run over the customers is under way (a crash or another pass left it)."""
        ...

    @property
    def place(self) -> str | None:
        """The last customer the run under way went over (``None``: none yet)."""
        ...

    def next_customers(
        self, now: datetime, through: str | None = None, runs: Mapping[str, datetime] | None = None
    ) -> CustomersWork | None:
        """The next customers of the run, in id order (up to ``through`` if given), with all
        they have due by ``now``, up to the first one another pass holds (``None``: none to
        take now, see :attr:`finished`); ``runs``: the schedules whose runs go together, with
        their due times."""
        ...

    @property
    def finished(self) -> bool:
        """Whether the last :meth:`next_customers` found no customer left."""
        ...

    def advance(self, last_customer: str) -> None:
        """The run went over the customers up to ``last_customer``."""
        ...

    def move(self, due_at: datetime) -> None:
        """Due next at ``due_at``, from the first customer."""
        ...


class ScheduleStore(JourneyStore, Protocol):
    """A store that keeps schedule ticks and segment looks between passes."""

    def record_schedule(self, name: str, first: datetime, exact: bool = True) -> datetime | None:
        """Record the schedule ``name`` as due at ``first`` when new; when it is due (``None``:
        this pass must leave it, see :meth:`SqlJourneyStore.record_schedule`)."""
        ...

    def schedule(self, name: str) -> AbstractContextManager[ScheduleRow | None]:
        """The row of schedule ``name``, held until the block ends (``None``: there is none)."""
        ...

    def schedules(self, names: Sequence[str]) -> AbstractContextManager[Mapping[str, ScheduleRow]]:
        """The rows of ``names`` there are, by name, held together until the block ends
        (waiting for a pass that holds them), in one transaction: the work of one row's
        :meth:`~ScheduleRow.next_customers` is kept with what every row records."""
        ...

    def set_schedule(self, name: str, due_at: datetime) -> None:
        """Set the schedule ``name`` due at ``due_at``, from the first customer (waiting for a
        pass that holds it)."""
        ...

    def forget_schedules(self, prefix: str, keep: str | None) -> None:
        """Drop the schedules whose names start with ``prefix``, except ``keep``."""
        ...

    def earliest_look(self) -> datetime | None:
        """When the first segment look booked is due (``None``: none booked)."""
        ...

    def looks(self, at: datetime, now: datetime) -> AbstractContextManager[LooksWork | None]:
        """The next customers whose segment look is due by ``at``, with all they have due by
        ``now``; their looks are taken (``None``: none due)."""
        ...


class LooksWork(Work, Protocol):
    """Customers whose segment look is due; some looks may belong to profiles merged away."""

    @property
    def looks_taken(self) -> int:
        """How many looks this work took (the customers', and the merged-away profiles')."""
        ...
