"""A closed-loop load generator on loopback: ``concurrency`` asyncio workers, each posting the
next request as soon as its last one is answered (httpx, keep-alive connections), until the
requests run out or the time is up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class LoadResult:
    """What one run of requests did: wall time, per-request latencies and statuses, and when
    each answered request's events were stored (``completions``: seconds since the start, events
    accepted or found duplicate)."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    completions: list[tuple[float, int]] = field(default_factory=list)

    @property
    def stored(self) -> int:
        """Events the ``200`` answers said were stored (or were there already)."""
        return self.accepted + self.duplicates

    def percentile(self, share: float) -> float:
        """The latency (seconds) below which ``share`` of the requests finished."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self, events: int) -> dict[str, Any]:
        """Requests and events a second, p50/p99 latency in ms, statuses, accepted counts."""
        requests = len(self.latencies)
        return {
            "requests": requests,
            "events": events,
            "seconds": self.seconds,
            "requests_per_second": requests / self.seconds,
            "events_per_second": events / self.seconds,
            "p50_ms": self.percentile(0.50) * 1000,
            "p99_ms": self.percentile(0.99) * 1000,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "accepted": self.accepted,
            "duplicates": self.duplicates,
        }


async def _drive(
    url: str,
    key: str,
    requests: list[tuple[str, bytes]],
    concurrency: int,
    duration: float | None,
) -> LoadResult:
    queue = iter(requests)
    result = LoadResult(seconds=0.0)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=url, auth=(key, ""), limits=limits, timeout=120, headers=headers
    ) as client:

        async def worker() -> None:
            for path, body in queue:
                sent = time.perf_counter()
                answer = await client.post(path, content=body)
                done = time.perf_counter()
                result.latencies.append(done - sent)
                result.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    counts = answer.json()
                    result.accepted += counts["accepted"]
                    result.duplicates += counts["duplicates"]
                    events = counts["accepted"] + counts["duplicates"]
                    result.completions.append((done - started, events))
                if deadline is not None and done >= deadline:
                    return

        started = time.perf_counter()
        deadline = None if duration is None else started + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def drive(
    url: str,
    key: str,
    requests: list[tuple[str, bytes]],
    concurrency: int,
    duration: float | None = None,
) -> LoadResult:
    """Post every ``(path, body)`` with ``concurrency`` workers, or as many as ``duration``
    seconds allow (the requests in flight then are still answered); the measured result."""
    return asyncio.run(_drive(url, key, requests, concurrency, duration))
