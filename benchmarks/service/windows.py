"""Throughput through a run, not only its average: events/s per window of time.

A timeline is ``[(seconds since the start, events)]``, one entry per unit of work as it
committed: a request (counted at its answer) or a file batch (spread evenly from the previous
batch's commit to its own, since a batch of 5,000 events takes seconds). The run is cut into
equal windows of about ``width`` seconds, so there is no short last window to mislead.
"""

from __future__ import annotations

from typing import Any


def window_rates(
    timeline: list[tuple[float, int]], seconds: float, width: float, spread: bool
) -> list[float]:
    """Events/s in each window of the run (``seconds`` long); ``spread`` spreads each entry
    over the time since the entry before it (file batches) instead of counting it at its end."""
    count = max(1, round(seconds / width))
    size = seconds / count if seconds > 0 else 1.0
    events = [0.0] * count
    previous = 0.0
    for end, number in sorted(timeline):
        begin = previous if spread else end
        previous = end
        if end <= begin:
            events[min(count - 1, int(end / size))] += number
            continue
        for index in range(int(begin / size), min(count - 1, int(end / size)) + 1):
            low, high = max(begin, index * size), min(end, (index + 1) * size)
            if index == count - 1:
                high = end  # anything after the nominal end belongs to the last window
            if high > low:
                events[index] += number * (high - low) / (end - begin)
    return [number / size for number in events]


def flatness(
    timeline: list[tuple[float, int]], seconds: float, width: float, spread: bool
) -> dict[str, Any]:
    """The windows' rates, the first and the last, and last/first (``None`` with one window)."""
    rates = window_rates(timeline, seconds, width, spread)
    return {
        "window_seconds": seconds / len(rates) if rates else width,
        "windows": rates,
        "first": rates[0],
        "last": rates[-1],
        "last_over_first": rates[-1] / rates[0] if len(rates) > 1 and rates[0] else None,
    }
