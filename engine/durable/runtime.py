"""The durable runtime: the one driver over the SQL journey store, with the stored schedules.

A pass (``followup tick``, each round of ``followup run``, a Celery task) takes every new event,
every due timer, the due schedule ticks and segment sweeps, in batches of customers that are
each one transaction (:mod:`engine.durable.sql_store`), decided by the same driver and engine as
``simulate`` (:mod:`engine.drive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from engine.clock import Clock
from engine.config import ProjectConfig
from engine.drive.crash_points import CrashPoint, no_crash
from engine.drive.driver import Driver, TickSummary
from engine.drive.partitions import WHOLE, Partition
from engine.drive.stored_schedules import StoredSchedules
from engine.durable.book import CampaignBook
from engine.durable.partition_lease import partition_lease
from engine.durable.sql_store import SqlJourneyStore
from engine.durable.store import Enrich
from engine.gc_pauses import frozen_heap
from engine.ingest.pipeline import Ingestor
from engine.journeys.runtime import RendersBody
from engine.policies import Policies, SendPolicies

__all__ = ["DurableRuntime", "TickSummary"]


class DurableRuntime:
    """The journey engine over the database: one project's campaigns, exactly once."""

    def __init__(
        self,
        db: sa.Engine,
        book: CampaignBook,
        config: ProjectConfig,
        ingestor: Ingestor,
        enrich: Enrich,
        clock: Clock,
        batch_size: int = 500,
        crash: CrashPoint = no_crash,
        consent_channels: frozenset[str] = frozenset(),
        synced_events: Mapping[str, frozenset[str]] | None = None,
        check_body: RendersBody | None = None,
        partition: Partition = WHOLE,
    ) -> None:
        self.book = book
        self.clock = clock
        self.policies = SendPolicies(
            Policies.model_validate(config.policies), config.timezone, config.phone_region
        )
        with db.begin() as conn:
            book.record(conn, clock())
        self.store = SqlJourneyStore(
            db,
            book,
            self.policies,
            ingestor,
            enrich,
            config.timezone,
            batch_size,
            consent_channels,
            synced_events,
            check_body,
            partition,
        )
        self.driver = Driver(self.store, crash)
        self.schedules = StoredSchedules(self.store, self.driver, book, config.timezone)

    # the store's settings, as tests and the composition root set them
    @property
    def batch_size(self) -> int:
        return self.store.batch_size

    @batch_size.setter
    def batch_size(self, size: int) -> None:
        self.store.batch_size = size

    @property
    def consent_channels(self) -> frozenset[str]:
        return self.store.consent_channels

    @consent_channels.setter
    def consent_channels(self, channels: frozenset[str]) -> None:
        self.store.consent_channels = channels

    @property
    def synced_events(self) -> dict[str, frozenset[str]]:
        return self.store.synced_events

    @synced_events.setter
    def synced_events(self, synced: Mapping[str, frozenset[str]]) -> None:
        self.store.synced_events = dict(synced)

    @property
    def partition(self) -> Partition:
        return self.store.partition

    def tick(self) -> TickSummary:
        """One pass over this runtime's partition of the customers: the schedule ticks and
        segment sweeps due, then every other event and timer due. A tick or sweep runs first
        because its work on a customer takes their events and timers in time order around it:
        taken first, an event after a tick a late pass runs would have been applied before the
        tick (and a tick left half-way ends the pass: ``summary.tick_left``). A partition
        another pass holds is left to it (``summary.partition_taken``)."""
        summary = TickSummary()
        with frozen_heap(), partition_lease(self.store.db, self.partition) as held:
            if not held:
                summary.partition_taken = True
                return summary
            now = self.clock()
            self.schedules.run(now, summary)
            if not summary.tick_left:
                self.driver.run_pass(now, summary)
            self.store.refresh_statistics()
        return summary

    def sweep_looks(self, summary: TickSummary, now: datetime, at: datetime) -> int:
        """One batch of the segment looks due by ``at`` (see :meth:`StoredSchedules.looks`)."""
        return self.schedules.looks(summary, now, at)
