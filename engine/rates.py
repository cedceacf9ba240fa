"""Send rates a provider is held to: ``rate: 20/s`` (or ``/m``, ``/h``) under a provider in
``followup.yaml``. The rate is a bucket of that many calls, refilled evenly: 20/s lets 20 calls
go at once, then one every 50 ms."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SLEEP = 1.0  # seconds a dispatcher waits for its turn; longer, the row is put off

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``calls`` provider calls per ``seconds``."""

    calls: int
    seconds: int

    @property
    def interval(self) -> float:
        """Seconds between two calls once the bucket is empty."""
        return self.seconds / self.calls

    def __str__(self) -> str:
        unit = {1: "s", 60: "m", 3600: "h"}[self.seconds]
        return f"{self.calls}/{unit}"


def parse_rate(text: object) -> Rate:
    """``20/s``, ``600/m``, ``10000/h`` as a :class:`Rate`; :class:`ValueError` saying what to
    write otherwise."""
    found = _RATE.match(str(text).lower()) if isinstance(text, str) else None
    seconds = _UNITS.get(found.group(2)) if found else None
    if found is None or seconds is None or int(found.group(1)) < 1:
        raise ValueError(
            f"{text!r} is not a rate; write calls per second, minute or hour, e.g. 20/s, 600/m"
        )
    return Rate(int(found.group(1)), seconds)


def take_turn(tat: float | None, now: float, rate: Rate, max_wait: float) -> tuple[float, float]:
    """A turn of a bucket kept as one time, ``tat`` (when it would be full again; ``None``
    before its first call): the generic cell rate algorithm. Returns the seconds to wait before
    the call and the bucket's ``tat`` after it; a wait over ``max_wait`` is not taken, and the
    ``tat`` returned is then the one given (``now`` for a new bucket).

    A call at ``now`` may go when ``tat`` is at most one bucket ahead (the bucket holding
    ``calls`` calls), and moves it on by one interval. ``tat`` is never more than a bucket and
    the longest wait ahead: a slower rate before (or another host's clock) must not hold a
    faster one back for long."""
    known = now if tat is None else tat
    start = min(max(known, now), now + rate.seconds + max_wait)
    wait = max(0.0, start + rate.interval - rate.seconds - now)
    if wait > max_wait:
        return wait, known
    return wait, start + rate.interval
