"""A condition evaluated over a stretch of time at once: is it the same all along?

A segment condition such as ``customer.orders.last_at < now - days(90)`` changes only as ``now``
moves while the customer's state stands still. Evaluated with ``now`` bound to an
:class:`Interval` of times, each comparison either holds for every time in it, for none, or
depends on the time, in which case :class:`Undetermined` is raised and the caller splits the
stretch (see :mod:`engine.journeys.wakeups`). Only monotone steps are followed (adding or
subtracting a fixed amount, subtracting from a fixed time, ``.days``, ``.total_seconds()``), and
the calendar fields of ``now`` (``now.hour``, ``now.weekday()``), the same within one hour or day
and turning at the next; anything else (formatting) is undetermined, so the answer is exact or
absent, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.campaigns.expressions import Expression


class Undetermined(Exception):
    """The value differs across the interval (or cannot be followed through an operation);
    ``at``, when known, is the time at which the comparison that could not be decided turns."""

    def __init__(self, at: datetime | None = None) -> None:
        super().__init__()
        self.at = at


_ORDERED = (datetime, timedelta, int, float)


class Interval:
    """Every value from ``lo`` to ``hi`` (inclusive), of one ordered kind. A value that moves
    with ``now`` at the same pace (``now``, ``now - days(90)``, ``now - last_order``) keeps the
    time it starts from and its direction, so an undecided comparison can say when it turns."""

    __slots__ = ("_hi", "_lo", "_origin", "_sign")  # private: a condition cannot reach them

    def __init__(self, lo: Any, hi: Any, origin: datetime | None = None, sign: int = 0) -> None:
        self._lo = lo
        self._hi = hi
        self._origin = origin  # the time ``lo`` (sign 1) or ``hi`` (sign -1) is the value at
        self._sign = sign  # 1: moves with now, -1: against it, 0: not followed

    # arithmetic that keeps the order (or reverses it)
    def __add__(self, other: Any) -> Interval:
        if isinstance(other, Interval):
            return Interval(self._lo + other._lo, self._hi + other._hi)
        if isinstance(other, _ORDERED) and not isinstance(other, bool):
            return Interval(self._lo + other, self._hi + other, self._origin, self._sign)
        raise Undetermined

    __radd__ = __add__

    def __sub__(self, other: Any) -> Interval:
        if isinstance(other, Interval):
            return Interval(self._lo - other._hi, self._hi - other._lo)
        if isinstance(other, _ORDERED) and not isinstance(other, bool):
            return Interval(self._lo - other, self._hi - other, self._origin, self._sign)
        raise Undetermined

    def __rsub__(self, other: Any) -> Interval:
        if isinstance(other, _ORDERED) and not isinstance(other, bool):
            return Interval(other - self._hi, other - self._lo, self._origin, -self._sign)
        raise Undetermined

    def _turns_at(self, other: Any) -> datetime | None:
        """When the value equals ``other``, for a value that moves with ``now``."""
        if self._origin is None or not self._sign:
            return None
        start = self._lo if self._sign > 0 else self._hi
        try:
            moved = other - start
            return self._origin + (moved if self._sign > 0 else -moved)  # type: ignore[no-any-return]
        except (TypeError, OverflowError):
            return None

    # comparisons: decided only when the whole interval is on one side
    def _compare(self, other: Any, below: bool, strict: bool) -> bool:
        if isinstance(other, Interval):
            raise Undetermined
        # a TypeError (comparing with a missing value) escapes, as for a single time
        if below:  # self < other (strict) or self <= other
            if (self._hi < other) if strict else (self._hi <= other):
                return True
            if (self._lo >= other) if strict else (self._lo > other):
                return False
        else:  # self > other (strict) or self >= other
            if (self._lo > other) if strict else (self._lo >= other):
                return True
            if (self._hi <= other) if strict else (self._hi < other):
                return False
        raise Undetermined(self._turns_at(other))

    def __lt__(self, other: Any) -> bool:
        return self._compare(other, below=True, strict=True)

    def __le__(self, other: Any) -> bool:
        return self._compare(other, below=True, strict=False)

    def __gt__(self, other: Any) -> bool:
        return self._compare(other, below=False, strict=True)

    def __ge__(self, other: Any) -> bool:
        return self._compare(other, below=False, strict=False)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Interval):
            raise Undetermined
        try:
            outside = other < self._lo or other > self._hi
        except TypeError:
            return False  # a value of another kind is never equal
        if outside:
            return False
        raise Undetermined

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:  # a set or a dict key would see one value for every time
        raise Undetermined

    def __bool__(self) -> bool:
        if isinstance(self._lo, datetime):
            return True
        zero = timedelta(0) if isinstance(self._lo, timedelta) else 0
        if self._lo > zero or self._hi < zero:
            return True
        if self._lo == self._hi == zero:
            return False
        raise Undetermined

    # the monotone attributes of durations
    @property
    def days(self) -> Interval:
        if isinstance(self._lo, timedelta):
            return Interval(self._lo.days, self._hi.days)
        raise Undetermined

    def total_seconds(self) -> Interval:
        if isinstance(self._lo, timedelta):
            return Interval(self._lo.total_seconds(), self._hi.total_seconds())
        raise Undetermined

    def __getattr__(self, name: str) -> Any:
        """A calendar field of ``now`` (``now.hour``, ``now.weekday()``): the same all along
        when the interval lies in one hour, day, month or year; else it turns at the next."""
        period = _CALENDAR.get(name)
        lo, hi = self._lo, self._hi
        if period is None or not isinstance(lo, datetime) or not isinstance(lo.tzinfo, timezone):
            raise Undetermined
        following = _next_period(lo, period)
        if hi < following and hi.utcoffset() == lo.utcoffset():
            return getattr(lo, name)
        raise Undetermined(self._turns_at(following) if self._sign > 0 else None)

    # what would make one number or text of every time: a filter catching a TypeError (``|int``)
    # would answer its default for all of them
    def __str__(self) -> str:
        raise Undetermined

    def __repr__(self) -> str:
        raise Undetermined

    def __int__(self) -> int:
        raise Undetermined

    def __float__(self) -> float:
        raise Undetermined

    def __index__(self) -> int:
        raise Undetermined

    def __round__(self, digits: int | None = None) -> Any:
        raise Undetermined


# the calendar fields of a time, by the period over which each stays the same
_CALENDAR = {
    "minute": "minute",
    "hour": "hour",
    "day": "day",
    "weekday": "day",
    "isoweekday": "day",
    "date": "day",
    "month": "month",
    "year": "year",
}
CALENDAR_FIELDS = frozenset(_CALENDAR)  # the fields of ``now`` an interval follows


def _next_period(at: datetime, period: str) -> datetime:
    """The start of the minute, hour, day, month or year after the one ``at`` is in (on a
    fixed offset from UTC, where every one of them is as long as on the calendar)."""
    if period == "minute":
        return at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if period == "hour":
        return at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight + timedelta(days=1)
    if period == "month":
        return (midnight.replace(day=28) + timedelta(days=4)).replace(day=1)
    return midnight.replace(year=at.year + 1, month=1, day=1)


def holds_throughout(
    condition: Expression, names: Mapping[str, Any], start: datetime, end: datetime
) -> bool | datetime | None:
    """The value of ``condition`` at every time from ``start`` to ``end`` when it is the same
    all along; else when a comparison in it turns, if that is known, else ``None``. ``names``
    are the condition's names but ``now``. Errors count as false, as in
    :meth:`Expression.holds`."""
    if start == end:
        return condition.holds({**names, "now": start})
    try:
        return bool(condition.evaluate({**names, "now": Interval(start, end, start, 1)}))
    except Undetermined as undecided:
        return undecided.at
    except Exception:  # noqa: BLE001 - an error to look at time by time
        return None
