"""Sorting py-spy samples of a service into the steps of ingest, and printing the shares.

A sample is one line of py-spy's raw (collapsed) output, ``thread (tid): name;frame;...;leaf
count``, with frames ``qualname (file:line)`` from the root to the leaf. Threads are the group
writer (``followup-writer``, the floor's ``floor-writer``), the event loop (``MainThread``:
uvicorn, Starlette, FastAPI) and the thread pool (``AnyIO worker thread``: auth and parsing).

In the writer, a sample under ``Ingestor.write_in`` belongs to the step that ``write_in`` called
(its first frame below, comprehensions skipped); outside it, to the commit, the group writer's
own duplicate count, or waiting for requests. Elsewhere a sample belongs to the first step any
of its frames names, from the leaf up. The rules name engine functions: when the engine changes,
the unnamed steps show up as ``other`` and the tables here need a line more.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WAITING = "waiting (idle)"
WRITER_THREADS = ("followup-writer", "floor-writer")

# what Ingestor.write_in called -> step
_WRITE_IN_STEPS = {
    "CustomerStore.existing_message_ids": "dedupe: messageIds already logged",
    "CustomerStore.arrived": "arrival order: sequence numbers",
    "identity_keys": "identity resolution",
    "CustomerStore.owners": "identity resolution",
    "IdentityResolver.__init__": "identity resolution",
    "IdentityResolver.resolve": "identity resolution",
    "Resolution.final": "identity resolution",
    "CustomerStore.insert_identities": "identity resolution",
    "CustomerStore.versioned_states": "loading states",
    "StateReducer.extend": "folding: extend (events after the state)",
    "CustomerStore.history": "refold: reading the history",
    "StateReducer.fold": "refold: folding the history (and new customers)",
    "event_row": "writing events and inbox",
    "CustomerStore.insert_events": "writing events and inbox",
    "CustomerStore.save_states": "writing states",
    "CustomerStore.reassign": "merges",
    "CustomerStore.record_merges": "merges",
}
# anywhere in a stack, from the leaf up -> step
_ANYWHERE = (
    ("GroupWriter._counts", "dedupe: group writer's count"),
    ("KeyStore.authenticate", "auth: write key lookup"),
    ("parse_batch", "parsing and validation"),
    ("parse_single", "parsing and validation"),
    ("message_row", "parsing and validation"),
    ("create_floor_app.<locals>.batch", "parsing and validation"),
    ("SqliteSink.write", "writing events and inbox"),
    ("PostgresSink.write", "writing events and inbox"),
    ("StateCache.update", "state cache"),
    ("do_commit", "commit"),
    ("Connection.commit", "commit"),
    ("SqliteSink.commit", "commit"),
    ("Transaction.__exit__", "commit"),
    ("Future.set_result", "answering the requests"),
)
# leaves that are a thread waiting, whatever py-spy says about it
_WAIT_LEAVES = {
    "Condition.wait",
    "EpollSelector.select",
    "Event.wait",
    "GroupWriter._loop",
    "GroupInsert._loop",
}
_COMPREHENSIONS = ("<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>", "<lambda>")


@dataclass(frozen=True, slots=True)
class Sample:
    """One collapsed stack: its thread, frame names (root first) and how often it was seen."""

    thread: str
    names: tuple[str, ...]
    count: int


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def read_samples(path: Path) -> list[Sample]:
    """The samples of a py-spy ``--format raw --threads`` file."""
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        name = thread.partition(": ")[2] or "unnamed"
        samples.append(Sample(name, tuple(_name(f) for f in frames), int(count)))
    return samples


def thread_kind(thread: str) -> str:
    """``writer``, ``event loop``, ``thread pool`` or ``other``."""
    if thread in WRITER_THREADS:
        return "writer"
    if thread == "MainThread":
        return "event loop"
    if thread.startswith("AnyIO worker"):
        return "thread pool"
    return "other"


def step(sample: Sample) -> str:
    """The step of ingest ``sample`` was in."""
    names = sample.names
    if not names or names[-1] in _WAIT_LEAVES:
        return WAITING
    if "Ingestor.write_in" in names:
        below = names[names.index("Ingestor.write_in") + 1 :]
        called = [n for n in below if not n.endswith(_COMPREHENSIONS)]
        if not called:
            return "ingest's own lines"
        return _WRITE_IN_STEPS.get(called[0], f"other: {called[0]}")
    for name in reversed(names):
        for known, found in _ANYWHERE:
            if name == known or name.endswith(known):
                return found
    kind = thread_kind(sample.thread)
    if kind == "event loop":
        return "HTTP: uvicorn, Starlette, FastAPI, middleware"
    if kind == "thread pool":
        return "HTTP: thread pool hand-offs"
    if kind == "writer":
        return "transaction begin/end"
    return f"other thread: {sample.thread}"


def _shares(counts: Counter[str], rate: int, events: int) -> list[dict[str, Any]]:
    total = sum(counts.values()) or 1
    return [
        {
            "step": name,
            "samples": number,
            "share": number / total,
            "us_per_event": number / rate / events * 1e6 if events else 0.0,
        }
        for name, number in counts.most_common()
    ]


def breakdown(wall: Path, cpu: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The writer thread's wall time by step, and every thread's CPU by step (waits left out),
    each step with its share and its time per event stored."""
    rate, events = result["rate"], result["events"]
    writer: Counter[str] = Counter()
    for sample in read_samples(wall):
        if thread_kind(sample.thread) == "writer":
            writer[step(sample)] += sample.count
    busy: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for sample in read_samples(cpu):
        found = step(sample)
        if found != WAITING:
            busy[found] += sample.count
            by_thread[thread_kind(sample.thread)] += sample.count
    return {
        "writer_wall": _shares(writer, rate, events),
        "cpu": _shares(busy, rate, events),
        "cpu_by_thread": _shares(by_thread, rate, events),
    }


def _table(title: str, rows: list[dict[str, Any]], share: str) -> list[str]:
    lines = [f"\n{title}\n", f"| step | {share} | µs per event |", "| --- | ---: | ---: |"]
    lines += [
        f"| {row['step']} | {row['share']:.1%} | {row['us_per_event']:,.0f} |" for row in rows
    ]
    total = sum(row["us_per_event"] for row in rows)
    lines.append(f"| **total** | 100% | {total:,.0f} |")
    return lines


def render(result: dict[str, Any]) -> str:
    """The profile as markdown: the run, then the three tables."""
    shares = result["breakdown"]
    title = (
        f"{result['system']} on {result['backend']}, {result['order']} events: "
        f"{result['events']:,} events in {result['seconds']:.1f} s "
        f"({result['events_per_second']:,.0f}/s under py-spy at {result['rate']} Hz)"
    )
    lines = [title]
    lines += _table("The writer thread, wall clock:", shares["writer_wall"], "share of wall")
    lines += _table("Every thread, CPU (waits left out):", shares["cpu"], "share of CPU")
    lines += _table("CPU by thread:", shares["cpu_by_thread"], "share of CPU")
    return "\n".join(lines)
