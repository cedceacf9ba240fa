"""What every handler of the service shares: the engine, keys, limits, links and metrics."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from engine.api import Followup
from engine.config import LimitsConfig
from engine.events import Event
from engine.ingest.pipeline import IngestSummary
from engine.service.keys import KeyStore
from engine.service.limits import RateLimiter
from engine.service.metrics import ServiceMetrics
from engine.unsubscribe import UnsubscribeLinks


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
        """Store ``events`` in one transaction (all or nothing); returns once committed."""
        if not events:
            return IngestSummary()
        with self._writer():
            summary = self.followup.ingestor.write_batch([(event, source) for event in events])
        for kind, count in Counter(event.type.value for event in events).items():
            self.metrics.events.labels(kind).inc(count)
        if summary.duplicates:
            self.metrics.duplicates.inc(summary.duplicates)
        return summary
