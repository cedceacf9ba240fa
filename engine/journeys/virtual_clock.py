"""``simulate``'s clock: schedule ticks and hourly segment sweeps on the engine's timer queue.

The journey engine keeps no clock of its own: it fires the timers its journeys set (waits, wait
timeouts, deferred sends) when told to advance, and the caller's own actions booked with
:meth:`~engine.journeys.runtime.JourneyEngine.call_at`. The durable runtime books ticks and
sweeps from its ``schedule_ticks`` rows; :class:`VirtualClock` books them for ``simulate``: every
tick of every scheduled campaign from the first event on (none missed), and a segment sweep
at each hour of UTC (:func:`~engine.journeys.schedule.sweep_hour`), each looking only at the customers
who need a look (:mod:`engine.journeys.audience_memo`, :mod:`engine.journeys.wakeups`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.campaigns.intervals import holds_throughout
from engine.campaigns.schema import Campaign, ScheduleTrigger, SegmentTrigger
from engine.journeys.audience_memo import TickAudience
from engine.journeys.context import CustomerView
from engine.journeys.runtime import JourneyEngine
from engine.journeys.schedule import SEGMENT_SWEEP, SWEEP_RANK, next_tick, sweep_hour
from engine.journeys.wakeups import SweepGrid

AUDIENCE_HORIZON = timedelta(days=365)  # how far ahead simulate trusts an audience found false


class VirtualClock:
    """Books on ``engine`` every schedule tick and segment sweep from ``start`` on."""

    def __init__(self, engine: JourneyEngine, start: datetime) -> None:
        self.engine = engine
        # who each scheduled campaign with an audience must look at, told of every change
        self._audiences = {
            c.id: TickAudience()
            for c in engine.campaigns
            if isinstance(c.trigger, ScheduleTrigger) and c.audience is not None
        }
        if self._audiences:
            engine.watch_states(self._changed)
        # at one instant the ticks go first, in campaign order, then the segment sweep, as the
        # durable runtime takes them (a schedule's ticks, then the sweeps)
        self._rank = {c.id: n for n, c in enumerate(engine.campaigns)}
        for campaign in engine.campaigns:
            if isinstance(campaign.trigger, ScheduleTrigger):
                self._book_tick(campaign, start)
        self._grid: SweepGrid | None = None
        if any(isinstance(c.trigger, SegmentTrigger) for c in engine.campaigns):
            self._grid = SweepGrid(sweep_hour(start), SEGMENT_SWEEP)
            engine.book_segment_looks(self._grid, search_when_saved=False)
            engine.call_at(self._grid.time(1), self._sweep, SWEEP_RANK)

    def _changed(self, customer_id: str) -> None:
        for audience in self._audiences.values():
            audience.changed(customer_id)

    def _book_tick(self, campaign: Campaign, after: datetime) -> None:
        trigger = campaign.trigger
        assert isinstance(trigger, ScheduleTrigger)
        due = next_tick(trigger, after, self.engine.default_timezone)
        self.engine.call_at(due, lambda at: self._tick(campaign, at), self._rank[campaign.id])

    def _tick(self, campaign: Campaign, at: datetime) -> None:
        audience = self._audiences.get(campaign.id)
        if audience is None:
            self.engine.enter_scheduled(campaign, at, self.engine.customers.ids())
        else:
            self._enter_audience(campaign, audience, at)
        self._book_tick(campaign, at)

    def _enter_audience(self, campaign: Campaign, audience: TickAudience, at: datetime) -> None:
        """A tick for the customers not known to be outside the campaign's audience."""
        condition = campaign.audience
        assert condition is not None
        customers = self.engine.customers
        until = at + AUDIENCE_HORIZON
        for customer_id in audience.due(at):
            if not customers.has(customer_id):
                continue  # merged away
            scope = {"customer": CustomerView(customer_id, customers.state(customer_id))}
            if holds_throughout(condition, {**scope, "event": None}, at, until) is False:
                audience.outside(customer_id, until)
                continue
            audience.inside(customer_id)
            self.engine.enter_scheduled(campaign, at, [customer_id])

    def _sweep(self, at: datetime) -> None:
        assert self._grid is not None
        self.engine.sweep_segments(at, self._grid.due(at))
        self.engine.call_at(at + SEGMENT_SWEEP, self._sweep, SWEEP_RANK)
