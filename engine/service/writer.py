"""Group commit: the events of concurrent requests written together, one transaction at a time.

Each request's events are submitted whole; one writer thread takes everything waiting (up to
``max_events``), writes it with the ingestor in one transaction, and answers every request once
that transaction has committed. So a ``200`` still means durable, but a burst of small requests
costs one commit (one fsync on SQLite) instead of one each, and writers of one process never
race each other for the same customers (PostgreSQL) or the write lock (SQLite).

If a combined write fails, each request is written again on its own, so one request's failure
is never another's. A request is never split: its events commit together or not at all.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.errors import FollowupError
from engine.events import Event
from engine.ingest.pipeline import Ingestor, IngestSummary, is_retryable

WRITE_ATTEMPTS = 8


class WriteConflict(FollowupError):
    """Concurrent writers kept conflicting; nothing was stored and the request may be retried."""


@dataclass
class _Submission:
    events: list[Event]
    source: str
    future: Future[IngestSummary] = field(default_factory=Future)


class GroupWriter:
    """The single writer thread of one service; :meth:`submit` from any thread."""

    def __init__(self, ingestor: Ingestor, max_events: int = 5000) -> None:
        self.ingestor = ingestor
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="followup-writer", daemon=True)
        self._thread.start()

    def submit(self, events: list[Event], source: str) -> Future[IngestSummary]:
        """Queue ``events`` (one request's) for writing; the future holds its own counts."""
        submission = _Submission(events, source)
        self._queue.put(submission)
        return submission.future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = len(first.events)
            while size < self.max_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write(group)
                    return
                group.append(more)
                size += len(more.events)
            self._write(group)

    def _write(self, group: list[_Submission]) -> None:
        try:
            written = self._commit([(e, s.source) for s in group for e in s.events])
            counts = _counts(group, written.logged)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) > 1:
                for submission in group:
                    self._write([submission])
            else:
                group[0].future.set_exception(exc)
            return
        for submission, summary in zip(group, counts, strict=True):
            submission.future.set_result(summary)

    def _commit(self, batch: list[tuple[Event, str]]) -> IngestSummary:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self.ingestor.write_batch(batch)
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                # another process won the race; it has committed by the next attempt
                if not is_retryable(exc):
                    raise
                if attempt == WRITE_ATTEMPTS:
                    raise WriteConflict("the database stayed busy; retry the request") from exc
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _counts(group: list[_Submission], logged: set[str]) -> list[IngestSummary]:
    """Accepted and duplicate events per request, in order: a messageId the committed write
    found logged already, or sent earlier in the group, is a duplicate (as the ingestor
    decided)."""
    seen = set(logged)
    counts = []
    for submission in group:
        summary = IngestSummary()
        for event in submission.events:
            if event.message_id in seen:
                summary.duplicates += 1
            else:
                seen.add(event.message_id)
                summary.accepted += 1
        counts.append(summary)
    return counts
