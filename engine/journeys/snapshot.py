"""Journeys and timers as JSON, so the durable runtime can keep them in the database.

A position is kept as its frames' ``(prefix, index, variant)``: the prefix (``"3.then."``) names
the branch in the campaign's step tree, so the steps themselves are found again in the campaign
version the journey entered with. Events and deferred sends are kept whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.campaigns.schema import AnyStep, Campaign, IfStep, SplitStep, WaitForEvent, WaitStep
from engine.events import LAST_ARRIVAL, Event, EventType, OrderKey, parse_timestamp
from engine.journeys import steps as position
from engine.journeys.dispatch import PendingSend
from engine.journeys.journey import Journey
from engine.journeys.outcomes import JourneyStatus, TimerKind


def _time(value: datetime) -> str:
    return value.isoformat()


def _parse(value: str) -> datetime:
    return parse_timestamp(value)


def steps_at(campaign: Campaign, prefix: str) -> tuple[AnyStep, ...]:
    """The list of steps whose plan paths start with ``prefix`` (``""`` is the root)."""
    steps = campaign.steps
    tokens = prefix.rstrip(".").split(".") if prefix else []
    for index_text, label in zip(tokens[::2], tokens[1::2], strict=True):
        step = steps[int(index_text)]
        if isinstance(step, SplitStep):
            steps = next(v.steps for v in step.split if v.name == label)
        elif isinstance(step, IfStep | WaitStep):
            steps = step.then if label == "then" else step.else_
        else:
            raise TypeError(f"step {index_text} of {campaign.id} has no branch {label!r}")
    return steps


def encode_position(at: position.Position) -> list[list[Any]]:
    """``at`` as ``[prefix, index, variant]`` frames."""
    return [[frame.prefix, frame.index, frame.variant] for frame in at]


def decode_position(campaign: Campaign, frames: list[list[Any]]) -> position.Position:
    """The position ``frames`` names in ``campaign``."""
    return tuple(
        position.Frame(steps_at(campaign, prefix), index, prefix, variant)
        for prefix, index, variant in frames
    )


def encode_event(event: Event) -> dict[str, Any]:
    """An event as JSON."""
    return {
        "message_id": event.message_id,
        "type": event.type.value,
        "name": event.name,
        "timestamp": _time(event.timestamp),
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "channel": event.channel,
        "arrival": event.arrival,
        **event.payload(),
    }


def decode_event(data: dict[str, Any]) -> Event:
    """The event :func:`encode_event` wrote."""
    return Event(
        message_id=data["message_id"],
        type=EventType(data["type"]),
        name=data["name"],
        timestamp=_parse(data["timestamp"]),
        user_id=data.get("user_id"),
        anonymous_id=data.get("anonymous_id"),
        previous_id=data.get("previousId"),
        channel=data.get("channel", "web"),
        properties=data.get("properties") or {},
        traits=data.get("traits") or {},
        context=data.get("context") or {},
        arrival=data.get("arrival", 0),
    )


def encode_journey(journey: Journey) -> dict[str, Any]:
    """Where a journey is and what it holds, as JSON (campaign and customer are columns)."""
    return {
        "held_out": journey.held_out,
        "entry_key": _key(journey.entry_key),
        "at": encode_position(journey.at),
        "generation": journey.generation,
        "waiting": journey.waiting_for is not None,
        "converted": journey.converted,
        "trigger": encode_event(journey.trigger) if journey.trigger is not None else None,
        "parked": journey.parked,
        "parked_key": _key(journey.parked_key) if journey.parked_key is not None else None,
        "audiences": dict(journey.audiences),
        "kept_audiences": dict(journey.kept_audiences),
    }


def decode_journey(
    journey_id: str,
    campaign: Campaign,
    customer_id: str,
    status: str,
    entered_at: datetime,
    data: dict[str, Any],
) -> Journey:
    """The journey :func:`encode_journey` wrote, in the campaign version it entered with."""
    at = decode_position(campaign, data["at"])
    waiting_for = None
    if data["waiting"]:
        step = position.current(at).step
        assert isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent)
        waiting_for = step.wait
    trigger = data["trigger"]
    return Journey(
        id=journey_id,
        campaign=campaign,
        customer_id=customer_id,
        entered_at=entered_at,
        held_out=data["held_out"],
        entry_key=_entry_key(data["entry_key"]),
        at=at,
        generation=data["generation"],
        status=JourneyStatus(status),
        waiting_for=waiting_for,
        converted=data["converted"],
        trigger=decode_event(trigger) if trigger is not None else None,
        parked=data["parked"],
        parked_key=_entry_key(parked) if (parked := data.get("parked_key")) else None,
        audiences=dict(data["audiences"]),
        kept_audiences=dict(data.get("kept_audiences") or {}),  # none before it was kept
    )


def encode_timer_payload(kind: TimerKind, payload: Any) -> dict[str, Any]:
    """A journey timer's payload as JSON: a deferred send, or the journey and its generation."""
    if kind == TimerKind.SEND:
        assert isinstance(payload, PendingSend)
        return {
            "journey": payload.journey,
            "step": payload.step,
            "channel": payload.channel,
            "action": payload.action,
            "fields": dict(payload.fields),
            "due": _time(payload.due),
            "holds_audience": payload.holds_audience,
        }
    journey, generation = payload
    return {"journey": journey, "generation": generation}


def decode_timer_payload(kind: TimerKind, data: dict[str, Any]) -> Any:
    """The payload :func:`encode_timer_payload` wrote."""
    if kind == TimerKind.SEND:
        return PendingSend(
            data["journey"],
            data["step"],
            data["channel"],
            data["action"],
            data["fields"],
            _parse(data["due"]),
            data["holds_audience"],
        )
    return (data["journey"], data["generation"])


def timer_journey(kind: TimerKind, payload: Any) -> str:
    """The journey a timer belongs to."""
    return payload.journey if kind == TimerKind.SEND else str(payload[0])


def _key(key: OrderKey) -> list[Any]:
    return [_time(key[0]), key[1]]


def _entry_key(data: list[Any]) -> OrderKey:
    """A journey's entry key as kept. Before arrival order (migration 0009) the second part was
    the trigger's messageId, or U+FFFF for a scheduled entry: every event logged since then
    arrived later, so a messageId reads as 0."""
    at, arrival = data
    if isinstance(arrival, str):
        arrival = LAST_ARRIVAL if arrival == "\uffff" else 0
    return (_parse(at), arrival)
