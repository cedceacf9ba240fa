"""What every handler of the service shares: the engine, keys, limits, links and metrics."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.api import Followup
from engine.config import LimitsConfig
from engine.errors import FollowupError
from engine.events import Event
from engine.ingest.pipeline import IngestSummary
from engine.service.keys import KeyStore
from engine.service.limits import RateLimiter
from engine.service.metrics import ServiceMetrics
from engine.unsubscribe import UnsubscribeLinks

WRITE_ATTEMPTS = 8


class WriteConflict(FollowupError):
    """Concurrent writers kept conflicting; nothing was stored and the request may be retried."""


@dataclass
class ServiceContext:
    """The service's state; built once by :func:`engine.service.app.create_app`."""

    followup: Followup
    links: UnsubscribeLinks
    environ: Mapping[str, str]
    keys: KeyStore = field(init=False)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    metrics: ServiceMetrics = field(init=False)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.followup.engine)
        self.metrics = ServiceMetrics(self.followup.engine, self.followup.clock)

    @property
    def limits(self) -> LimitsConfig:
        """``server.limits`` of the project."""
        return self.followup.project.config.server.limits

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        # SQLite has one writer at a time: queueing here beats retrying on "database is locked"
        if self.followup.engine.dialect.name == "sqlite":
            with self._write_lock:
                yield
        else:
            yield

    def write(self, events: list[Event], source: str) -> IngestSummary:
        """Store ``events`` in one transaction (all or nothing); returns once committed.

        Concurrent requests with the same messageIds or customers can keep losing the race the
        ingestor retries; they are retried here again after a short random pause (the winner
        has committed by then), and :class:`WriteConflict` past that."""
        if not events:
            return IngestSummary()
        batch = [(event, source) for event in events]
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._writer():
                    summary = self.followup.ingestor.write_batch(batch)
                break
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise WriteConflict("the database stayed busy; retry the request") from exc
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        for kind, count in Counter(event.type.value for event in events).items():
            self.metrics.events.labels(kind).inc(count)
        if summary.duplicates:
            self.metrics.duplicates.inc(summary.duplicates)
        return summary
