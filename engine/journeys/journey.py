"""A journey and its timers, as the engine holds them and the durable store keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.campaigns.schema import Campaign, WaitForEvent
from engine.events import Event, OrderKey
from engine.journeys import steps as position
from engine.journeys.outcomes import JourneyStatus, NotEntered, TimerKind

_ACTIVE, _EXITED = JourneyStatus.ACTIVE, JourneyStatus.EXITED  # looked up once (hot paths)


@dataclass(slots=True)
class Journey:
    """One customer in one campaign from one entry."""

    id: str
    campaign: Campaign
    customer_id: str
    entered_at: datetime
    held_out: bool
    entry_key: OrderKey  # exit and goal events must come after this, in event order
    at: position.Position
    generation: int = 0
    status: JourneyStatus = JourneyStatus.ACTIVE
    waiting_for: WaitForEvent | None = None
    converted: bool = False
    trigger: Event | None = None  # what `event` means in later steps
    parked: bool = False  # on a send deferred by quiet or calling hours, resumed once it goes
    # what brought that send due, in event order: an event's key, or (time, LAST_ARRIVAL) for a
    # timer, tick or sweep (after every event of its instant)
    parked_key: OrderKey | None = None
    audiences: dict[str, str] = field(default_factory=dict)  # audience -> step that added it
    # audiences added with ``remove_on_exit: false``: kept after the journey, left only when
    # the customer withdraws ads consent
    kept_audiences: dict[str, str] = field(default_factory=dict)


@dataclass(order=True, slots=True)
class Timer:
    """A wait, a wait-for timeout, a deferred send, or a caller's action at a time."""

    due: datetime
    sequence: int
    kind: TimerKind = field(compare=False)
    payload: Any = field(compare=False)


@dataclass(frozen=True, slots=True)
class EntryRefused:
    """A trigger that did not start a journey, and why (for ``followup explain``)."""

    at: datetime
    campaign: str
    customer_id: str
    reason: NotEntered


def finished(journey: Journey, at: datetime) -> bool:
    """Whether no event or timer from ``at`` on can change ``journey`` any more: it ended,
    shows no ad, and has no conversion to wait for (an exited journey converts nothing; a
    journey converts at each goal event in its window, so only the window's end ends that)."""
    if journey.status is _ACTIVE or journey.audiences or journey.kept_audiences:
        return False
    if journey.status is _EXITED:
        return True
    goal = journey.campaign.goal
    return goal is None or (goal.within is not None and journey.entered_at + goal.within < at)


def entry_order(journey: Journey) -> tuple[datetime, OrderKey, str]:
    """The order journeys were entered in: by time, then the entering event's place among the
    events (a tick's or sweep's entry after the events of its instant), then id. Which of a
    customer's journeys of a campaign is the latest entry (a goal event converts that one)."""
    return (journey.entered_at, journey.entry_key, journey.id)
