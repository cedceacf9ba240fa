"""What every handler of the service shares: the engine, keys, limits, links, metrics and the
dashboard's sessions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from engine.api import Followup
from engine.config import LimitsConfig
from engine.confirm_links import ConfirmLinks
from engine.events import Event, Rejection, RejectReason
from engine.ingest.pipeline import IngestSummary
from engine.ingest.rejects import RejectStore
from engine.service.dashboard.session import Sessions
from engine.service.keys import KeyStore
from engine.service.limits import RateLimiter
from engine.service.metrics import ServiceMetrics
from engine.service.parsing import Refused
from engine.service.writer import GroupWriter
from engine.unsubscribe import UnsubscribeLinks


@dataclass
class ServiceContext:
    """The service's state; built once by :func:`engine.service.app.create_app`."""

    followup: Followup
    links: UnsubscribeLinks
    confirm_links: ConfirmLinks
    environ: Mapping[str, str]
    signing_key: bytes
    keys: KeyStore = field(init=False)
    sessions: Sessions = field(init=False)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    metrics: ServiceMetrics = field(init=False)
    writer: GroupWriter = field(init=False)
    rejects: RejectStore = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.followup.engine)
        base_url = self.followup.project.config.server.base_url
        self.sessions = Sessions.of(self.signing_key, self.keys, base_url)
        self.rejects = RejectStore(self.followup.engine)
        self.metrics = ServiceMetrics(self.followup.engine, self.followup.clock)
        self.writer = GroupWriter(self.followup.ingestor)

    @property
    def limits(self) -> LimitsConfig:
        """``server.limits`` of the project."""
        return self.followup.project.config.server.limits

    def submit(self, events: list[Event], source: str) -> Future[IngestSummary]:
        """Queue ``events`` for the group writer; the future resolves once they are committed."""
        return self.writer.submit(events, source)

    def keep_rejects(self, source: str, refused: list[Refused]) -> None:
        """Keep a request's bad events in the rejects store (``followup rejects list``)."""
        self.rejects.record(
            (
                Rejection(
                    source,
                    r.problem.index,
                    RejectReason(r.problem.reason),
                    r.problem.field,
                    r.problem.message,
                    r.raw,
                )
                for r in refused
            ),
            self.followup.clock(),
        )

    def count(self, events: list[Event], summary: IngestSummary) -> None:
        """Count a stored request's events in the metrics."""
        for kind, number in Counter(event.type.value for event in events).items():
            self.metrics.events.labels(kind).inc(number)
        if summary.duplicates:
            self.metrics.duplicates.inc(summary.duplicates)

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        self.writer.close()

    def write(self, events: list[Event], source: str) -> IngestSummary:
        """Store ``events`` in one transaction (all or nothing); returns once committed."""
        if not events:
            return IngestSummary()
        summary = self.submit(events, source).result()
        self.count(events, summary)
        return summary
