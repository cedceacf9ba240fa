"""Send rates a provider is held to: ``rate: 20/s`` (or ``/m``, ``/h``) under a provider in
``followup.yaml``. The rate is a bucket of that many calls, refilled evenly: 20/s lets 20 calls
go at once, then one every 50 ms."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
