"""Prometheus metrics of the service: counters kept as requests go by, and gauges read from the
database at each scrape (journeys, sends, outbox lag), so they hold for every process writing it.

Each app has its own registry, so two apps in one process (tests) never share a count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.clock import Clock
from engine.durable.sql_service import SqlServiceReads


class GaugeReads(Protocol):
    """What a store tells the gauges (the tables': ``engine.durable.sql_service``)."""

    def active_journeys(self) -> Iterable[tuple[str, int]]:
        """``(campaign, journeys in progress)``."""
        ...

    def outbox_by_channel(self) -> Iterable[tuple[str, str, int]]:
        """``(channel, status, rows)`` of the whole outbox."""
        ...

    def oldest_due(self, now: datetime) -> datetime | None:
        """When the oldest row pending and due by ``now`` was due."""
        ...


class DatabaseCollector(Collector):
    """Journeys active per campaign, outbox rows by channel and status, and the outbox lag."""

    def __init__(self, db: sa.Engine, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now: datetime = self.clock()
        active = GaugeMetricFamily(
            "followup_journeys_active", "Journeys in progress, by campaign", labels=["campaign"]
        )
        sends = GaugeMetricFamily(
            "followup_sends",
            "Outbox rows by channel and outcome (pending, sending, delivered, skipped, ...)",
            labels=["channel", "outcome"],
        )
        lag = GaugeMetricFamily(
            "followup_outbox_lag_seconds", "How long the oldest due outbox row has been waiting"
        )
        try:
            with self.db.connect() as conn:
                reads: GaugeReads = SqlServiceReads(conn)
                for campaign, count in reads.active_journeys():
                    active.add_metric([campaign], count)
                for channel, status, count in reads.outbox_by_channel():
                    sends.add_metric([channel, status], count)
                oldest = reads.oldest_due(now)
        except sa.exc.SQLAlchemyError:
            return  # /readyz says why; a scrape still gets the counters
        lag.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield from (active, sends, lag)


class ServiceMetrics:
    """The registry of one app and the counters the handlers update."""

    def __init__(self, db: sa.Engine, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "followup_events_received",
            "Events in accepted requests, by type",
            ["type"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "followup_events_duplicate",
            "Events accepted but stored before (same messageId)",
            registry=self.registry,
        )
        self.rejects = Counter(
            "followup_rejects",
            "Rejected requests by reason (unauthorized, rate_limited, too_large, invalid, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.event_rejects = Counter(
            "followup_events_rejected",
            "Events in rejected requests, by reason (missing_field, invalid_field, too_large, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "followup_http_request_seconds",
            "Request latency by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(db, clock))
