"""Attribution of an order to the touches before it: which touches are in their channel's window,
and what share of the order each one earns under a model (../shared/design/REPORTS.md,
"Attribution of orders to touches")."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


class Model(enum.StrEnum):
    """How the credit of one order is shared among its eligible touches."""

    LAST_TOUCH = "last_touch"
    FIRST_TOUCH = "first_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION = "position"


DEFAULT_WINDOWS: dict[str, timedelta] = {
    "email": timedelta(days=5),
    "sms": timedelta(days=1),
    "call": timedelta(days=3),
    "ads": timedelta(days=1),
    "webhook": timedelta(0),
}
DEFAULT_HALF_LIFE = timedelta(days=7)

_GRID = float(2**53)
"""Shares but the last are rounded to multiples of 2**-53, so every partial sum is exact and the
shares of an order add up to exactly 1.0 in any order of summation."""


@dataclass(frozen=True, slots=True)
class Touch:
    """A send that went out to the customer."""

    at: datetime
    """When it went out (tz-aware UTC)."""
    channel: str
    campaign: str
    sequence: int
    """The plan order: a later plan line has a larger number (breaks ties of equal ``at``)."""


def _order(touch: Touch) -> tuple[datetime, int]:
    return (touch.at, touch.sequence)


def eligible(
    order_at: datetime, touches: Iterable[Touch], windows: Mapping[str, timedelta]
) -> list[Touch]:
    """The touches at or before ``order_at`` and within their channel's window of it, sorted by
    (at, sequence). A channel with a window of 0, or with none, is never credited."""
    found = []
    for touch in touches:
        window = windows.get(touch.channel, timedelta(0))
        if window > timedelta(0) and touch.at <= order_at and order_at - touch.at <= window:
            found.append(touch)
    return sorted(found, key=_order)


def _last_touch(touches: list[Touch], half_life: timedelta) -> list[float]:
    return [0.0] * (len(touches) - 1) + [1.0]


def _first_touch(touches: list[Touch], half_life: timedelta) -> list[float]:
    return [1.0] + [0.0] * (len(touches) - 1)


def _linear(touches: list[Touch], half_life: timedelta) -> list[float]:
    return [1.0] * len(touches)


def _time_decay(touches: list[Touch], half_life: timedelta) -> list[float]:
    if half_life <= timedelta(0):
        raise ValueError(f"half_life must be positive, not {half_life}")
    # Relative to the newest touch (weight 1): the same proportions, and no underflow to 0.
    newest = touches[-1].at
    return [2.0 ** (-((newest - touch.at) / half_life)) for touch in touches]


def _position(touches: list[Touch], half_life: timedelta) -> list[float]:
    n = len(touches)
    if n <= 2:
        return [1.0] * n
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


_WEIGHTS: dict[Model, Callable[[list[Touch], timedelta], list[float]]] = {
    Model.LAST_TOUCH: _last_touch,
    Model.FIRST_TOUCH: _first_touch,
    Model.LINEAR: _linear,
    Model.TIME_DECAY: _time_decay,
    Model.POSITION: _position,
}


def _shares(weights: list[float]) -> list[float]:
    """``weights`` normalised to shares whose sum is exactly 1.0 (the last takes the rest)."""
    total = sum(weights)
    head = [round(weight / total * _GRID) / _GRID for weight in weights[:-1]]
    return [*head, 1.0 - sum(head)]


def credit(
    order_at: datetime,
    touches: Iterable[Touch],
    model: Model,
    windows: Mapping[str, timedelta] = DEFAULT_WINDOWS,
    half_life: timedelta = DEFAULT_HALF_LIFE,
) -> list[tuple[Touch, float]]:
    """The share of the order at ``order_at`` each eligible touch earns under ``model``, one pair
    per eligible touch in (at, sequence) order (0.0 for those a single-touch model passes over);
    ``[]`` when no touch is eligible (the order is unattributed). The shares add up to exactly
    1.0."""
    found = eligible(order_at, touches, windows)
    if not found:
        return []
    weights = _WEIGHTS[Model(model)](found, half_life)
    return list(zip(found, _shares(weights), strict=True))
