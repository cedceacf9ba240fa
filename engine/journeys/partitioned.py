"""``simulate`` over customer partitions in parallel processes.

No decision of the journey engine reads another customer: a journey, its timers, consent,
caps, holdout and body checks are one customer's, and a schedule tick or a segment sweep looks
at each customer on their own. So the events of a set of customers, run alone on the same clock,
make exactly those customers' plan lines of the whole run, decided in the same order. Only
identity links customers: an event naming an anonymousId and an email may merge two profiles.
A first pass finds the groups of events whose identity keys are linked, directly or through
other events (a union-find over the keys: it may group more than the resolver merges, never
less), and deals whole groups out to the partitions; each partition runs in a process forked
from this one (the events are shared, not copied), and the caller merges their results.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import resource
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from engine.events import Event
from engine.identity import identity_keys, ids_only

T = TypeVar("T")

PARALLEL_FROM = 50_000  # fewer events than this run in one process: forking would not pay
MAX_WORKERS = 8

# what the forked processes run: set by run_forked just before it forks, read by each child
_job: tuple[Callable[[list[Event]], Any], list[list[Event]]] | None = None


def default_workers() -> int:
    """As many processes as this process may use CPUs (at most :data:`MAX_WORKERS`) and the
    free memory holds: a forked process ends up with its own copy of most of what this one holds
    (touching a shared object writes its reference count), so each needs about this process's
    resident size again. One where processes cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fits = 1 + _available_bytes() // max(_resident_bytes(), 1)
    return max(1, min(MAX_WORKERS, cpus or 1, fits))


def _available_bytes() -> int:
    """Memory the system can give without swapping (``MemAvailable``; else the free pages)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    """This process's resident size now (its peak where the system does not say)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class LinkedKeys:
    """The identity keys of ``events``, linked: the keys one event carries are one group, and
    groups that share a key are one (union-find). Events without a key are one group."""

    def __init__(self, events: Sequence[Event], phone_region: str = "US") -> None:
        self._parent: dict[str, str] = {}
        by_ids: dict[tuple[str | None, str | None], str] = {}  # the ids of events with no traits
        self._firsts: list[str] = []  # each event's first key
        for event in events:
            ids = ids_only(event)
            first = by_ids.get(ids) if ids is not None else None
            if first is None:
                keys = identity_keys(event, phone_region) or [""]
                first = keys[0]
                top = self.root(first)
                for key in keys[1:]:
                    other = self.root(key)
                    if other != top:
                        self._parent[other] = top
                if ids is not None:
                    by_ids[ids] = first
            self._firsts.append(first)

    def carried(self, key: str) -> bool:
        """Whether an event carries ``key``."""
        return key in self._parent

    def root(self, key: str) -> str:
        """The group of ``key``: one of its keys, the same for every key linked to it."""
        parent = self._parent
        top = parent.setdefault(key, key)
        if top == key:
            return key
        while (up := parent[top]) != top:
            top = up
        while key != top:  # path compression
            parent[key], key = top, parent[key]
        return top

    def groups(self) -> list[str]:
        """For each event, in order, the group of its customer."""
        return [self.root(first) for first in self._firsts]


def identity_groups(events: Sequence[Event], phone_region: str = "US") -> list[str]:
    """For each event, the group of its customer: one of its identity keys, the same for every
    event whose keys are linked to its own. Events without a key are one group."""
    return LinkedKeys(events, phone_region).groups()


def split(events: Sequence[Event], parts: int, phone_region: str = "US") -> list[list[Event]]:
    """``events`` dealt out to at most ``parts`` lists, each in the order given, the events of
    one identity group in one list; the biggest groups first, each to the lightest list."""
    groups = identity_groups(events, phone_region)
    sizes = Counter(groups)
    loads = [(0, index) for index in range(parts)]
    part_of: dict[str, int] = {}
    for group, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        load, index = heapq.heappop(loads)
        part_of[group] = index
        heapq.heappush(loads, (load + size, index))
    split_events: list[list[Event]] = [[] for _ in range(parts)]
    for event, group in zip(events, groups, strict=True):
        split_events[part_of[group]].append(event)
    return [part for part in split_events if part]


def run_forked(run: Callable[[list[Event]], T], parts: list[list[Event]]) -> list[T]:
    """``run`` of each part, the first here and the others each in a process forked from this
    one; the results in the parts' order. A failure in any raises here."""
    global _job
    if len(parts) < 2:
        return [run(part) for part in parts]
    _job = (run, parts)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(parts) - 1, mp_context=context) as pool:
            # a fork context starts every process at the first submit, before its own thread
            futures = [pool.submit(_run_part, index) for index in range(1, len(parts))]
            results = [run(parts[0])]
            results.extend(future.result() for future in futures)
        return results
    finally:
        _job = None


def _run_part(index: int) -> Any:
    """In a forked process: the job's ``run`` of part ``index``."""
    assert _job is not None, "run_forked sets the job before it forks"
    run, parts = _job
    return run(parts[index])
