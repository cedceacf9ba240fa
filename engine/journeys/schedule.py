"""When schedule ticks and segment sweeps fall, for every clock that books them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.campaigns.schema import ScheduleTrigger
from engine.policies import next_local_time

SEGMENT_SWEEP = timedelta(hours=1)
"""Segment triggers are looked at on an hourly grid: the hours of UTC (:func:`sweep_hour`)."""


def sweep_hour(moment: datetime) -> datetime:
    """The sweep of the hourly grid at or before ``moment``. Sweeps fall on the hours of UTC,
    whatever the clock's first moment: a customer's entry never hangs on when another
    customer's first event came, or when the first durable pass ran."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def first_sweep_from(moment: datetime) -> datetime:
    """The first sweep of the hourly grid at or after ``moment``."""
    hour = sweep_hour(moment)
    return hour if hour == moment else hour + SEGMENT_SWEEP


SWEEP_RANK = 2**21
"""The rank of a segment sweep among the actions of one instant
(:meth:`~engine.journeys.runtime.JourneyEngine.call_at`): after the schedule ticks, which rank by
their campaign's place (simulate's clock), or are booked first, in that order (the durable
runtime books a batch's ticks in campaign order, and a customer's due looks after them)."""


def next_tick(trigger: ScheduleTrigger, after: datetime, default_timezone: str) -> datetime:
    """The first tick of ``trigger`` after ``after``, on local wall time (so the night the
    clocks go back ticks once)."""
    zone = ZoneInfo(trigger.timezone or default_timezone)
    wall = after.astimezone(zone).replace(tzinfo=None)
    ticks = croniter(trigger.schedule, wall)
    while True:
        following = ticks.get_next(datetime)
        midnight = datetime.combine(following.date(), time(0), tzinfo=zone)
        due = next_local_time(max(after, midnight), following.time(), zone.key)
        if due > after:
            return due
