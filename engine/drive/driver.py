"""The one pass loop over a journey store: ``simulate``, ``tick``, ``run`` and the workers.

A pass at ``now`` takes the store's work until none is left: first every customer with events
waiting, then every customer with timers due. For each piece of work the engine takes the
customers' events in event order, each after the timers due before it (an event comes before
the timers due at its very instant), then the timers due by ``now``; a caller's action at a time
(a schedule tick, a segment sweep) goes in at its place. What the engine decided is kept by the
store with the work, in one transaction where the store has them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.drive.crash_points import CrashPoint, no_crash
from engine.drive.port import JourneyStore, Work
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import JourneyEngine

# an action on the engine at a moment of the work (a tick's entries, a segment sweep)
Act = Callable[[JourneyEngine], None]


@dataclass
class TickSummary:
    """What one pass did."""

    events: int = 0
    timer_customers: int = 0
    scheduled_customers: int = 0
    swept_customers: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    lines: list[PlanLine] = field(default_factory=list)
    ticks_skipped: Counter[str] = field(default_factory=Counter)  # by schedule, past the grace
    partition_taken: bool = False  # the pass's partition was another pass's: nothing done
    # a tick stopped at a customer another pass held: no other events or timers were taken
    tick_left: bool = False

    def count(self, lines: list[PlanLine]) -> None:
        """Keep the plan lines decided, and count them by action and status."""
        self.lines.extend(lines)
        for line in lines:
            label = line.action.value + (f":{line.status}" if line.status else "")
            self.decisions[label] += 1


class Driver:
    """Runs passes of the journey engine over ``store``."""

    def __init__(self, store: JourneyStore, crash: CrashPoint = no_crash) -> None:
        self.store = store
        self.crash = crash

    def run_pass(self, now: datetime, summary: TickSummary) -> None:
        """Every event due by ``now``, then every timer due by ``now``."""
        while (taken := self.event_batch(summary, now)) > 0:
            summary.events += taken
        while (taken := self.timer_batch(summary, now)) > 0:
            summary.timer_customers += taken

    def event_batch(self, summary: TickSummary, now: datetime) -> int:
        """Decide the store's next work with events due; how many events it took."""
        with self.store.events(now) as work:
            if work is None:
                return 0
            self.decide(work, now, summary)
        self.committed(work)
        return len(work.events)

    def timer_batch(self, summary: TickSummary, now: datetime) -> int:
        """Decide the store's next work with timers due; how many customers it held."""
        with self.store.timers(now) as work:
            if work is None:
                return 0
            self.decide(work, now, summary)
        self.committed(work)
        summary.events += len(work.events)
        return max(len(work.ids), 1)  # the memory store's work names no customer: one round

    def decide(
        self,
        work: Work,
        now: datetime,
        summary: TickSummary,
        acts: Sequence[tuple[datetime, Act]] = (),
        first: Sequence[Act] = (),
    ) -> None:
        """Decide everything due for ``work``, in time order: each event after the timers due
        before it, each of ``acts`` at its time (after the events of that instant, before the
        journeys' timers due at it; acts of one instant in the order given), then the timers
        due by ``now``; and have the store keep it. ``first`` set the engine up once loaded."""
        events = work.events
        # the earliest decision: the first event, or an act (the store adds the due timers)
        decides_from = min([now, *(at for at, _act in acts), *(e.timestamp for e in events[:1])])
        engine = self.store.load(work, now, decides_from)
        for setup in first:
            setup(engine)
        for at, act in acts:
            engine.call_at(at, _on(engine, act))
        for event in events:
            if event.timestamp > now:  # a store that hands out events ahead: timers by now
                engine.advance_to(now)
            else:
                engine.advance_before(event.timestamp)
            engine.on_event(event)
        engine.advance_to(now)
        if events:
            self.crash("events_decided")
        summary.count(self.store.save(work, engine, now))

    def committed(self, work: Work) -> None:
        """The store committed ``work`` (a crash point once it held events)."""
        if work.events:
            self.crash("events_committed")


def _on(engine: JourneyEngine, act: Act) -> Callable[[datetime], None]:
    """``act`` on ``engine``, as the engine calls an action booked at a time."""
    return lambda _at: act(engine)
