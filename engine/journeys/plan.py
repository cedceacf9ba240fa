"""The plan: one line per action a campaign takes, as ``followup simulate`` prints it.

A line is JSON with ``at`` (ISO 8601 UTC), ``campaign``, ``journey``, ``step``, ``channel``,
``action`` (``send``, ``audience_add``, ``audience_remove``, ``enter``, ``exit``, ``convert``),
``status`` (``sent`` or ``skipped``, on channel actions), ``reason`` (why skipped, or why a
journey exited), ``customer`` (``id``, ``user_id``, ``email``, ``phone``) and the channel fields.
Lines sort by time, then journey, then the order they were decided in.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from engine.values import quick_init


class PlanAction(enum.StrEnum):
    """What a plan line records."""

    SEND = "send"
    AUDIENCE_ADD = "audience_add"
    AUDIENCE_REMOVE = "audience_remove"
    ENTER = "enter"
    EXIT = "exit"
    CONVERT = "convert"


@quick_init
@dataclass(frozen=True, slots=True)
class CustomerRef:
    """The customer as plan lines name them."""

    id: str
    user_id: str | None
    email: str | None
    phone: str | None

    def __reduce__(self) -> tuple[type[CustomerRef], tuple[Any, ...]]:
        # pickled as the arguments of a call (a split simulate's parts come back pickled)
        return (CustomerRef, (self.id, self.user_id, self.email, self.phone))


@quick_init
@dataclass(frozen=True, slots=True)
class PlanLine:
    """One decision of the engine."""

    at: datetime
    campaign: str
    journey: str
    action: PlanAction
    customer: CustomerRef
    sequence: int
    step: str | None = None
    channel: str | None = None
    status: str | None = None
    reason: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[PlanLine], tuple[Any, ...]]:
        # pickled as the arguments of a call, not field by field through setattr: a third of
        # the time to send a split simulate's plan between processes
        return (PlanLine, _plan_line_values(self))

    @property
    def sort_key(self) -> tuple[datetime, str, int]:
        """Time, then journey, then decision order."""
        return (self.at, self.journey, self.sequence)

    def to_json(self) -> dict[str, Any]:
        """The line as the plan prints it (keys in a fixed order; empty ones left out)."""
        line: dict[str, Any] = {
            "at": format_time(self.at),
            "campaign": self.campaign,
            "journey": self.journey,
            "step": self.step,
            "channel": self.channel,
            "action": self.action.value,
        }
        if self.status is not None:
            line["status"] = self.status
        if self.reason is not None:
            line["reason"] = self.reason
        customer = self.customer
        line["customer"] = {
            "id": customer.id,
            "user_id": customer.user_id,
            "email": customer.email,
            "phone": customer.phone,
        }
        line.update(self.fields)
        return line


_plan_line_values = attrgetter(*(f.name for f in dataclasses.fields(PlanLine)))


def format_time(value: datetime) -> str:
    """``2024-05-01T10:00:00Z``: UTC, to the second, with a fraction only when there is one, in
    milliseconds when that says it all (``.249Z``, as an event stamped ``.249Z`` wrote it),
    else microseconds."""
    value = value.astimezone(UTC).replace(tzinfo=None)
    micro = value.microsecond
    if micro == 0:
        return value.isoformat(timespec="seconds") + "Z"
    if micro % 1000 == 0:
        return value.isoformat(timespec="milliseconds") + "Z"
    return value.isoformat(timespec="microseconds") + "Z"


def format_optional_time(value: datetime | None) -> str | None:
    """:func:`format_time`, or ``None`` for no time."""
    return format_time(value) if value is not None else None


def plan_text(lines: list[PlanLine]) -> str:
    """The plan as JSON lines, sorted."""
    return "".join(
        orjson.dumps(line.to_json()).decode() + "\n"
        for line in sorted(lines, key=lambda line: line.sort_key)
    )
