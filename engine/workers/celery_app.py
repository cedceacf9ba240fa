"""The durable engine on Celery: the same passes as ``followup run``, taken from a broker by any
number of workers on any number of machines.

Tasks:

- ``followup.pass`` — one pass of :meth:`DurableProject.run_once`: new events, due timers,
  schedule ticks and segment sweeps, then the outbox; given a partition (``"i/N"``), for that
  partition's customers only (:mod:`engine.drive.partitions`). Passes are safe to run side by
  side: on PostgreSQL, each batch claims its customers with ``FOR UPDATE SKIP LOCKED``, so two
  workers never decide or send the same thing, never reorder a customer's events and never wait
  on each other; passes over different partitions do not even page over the same rows, and a
  partition another pass holds is left to it (see docs/scale.md).
- ``followup.ingest`` — a list of Segment messages into the event log (what the HTTP API or a
  shop's queue hands over), validated and deduplicated like any ingest.

Celery beat enqueues ``followup.pass`` every ``interval`` seconds, one per partition with
``partitions`` above 1 (``followup worker --beat`` runs it inside one worker; run it in exactly
one place). Tasks are acknowledged late and a lost
worker's task goes back to the queue: a pass is idempotent, so running one again is harmless.
The broker is Redis or RabbitMQ: ``--broker``, ``FOLLOWUP_BROKER_URL``, else local Redis.

A worker process opens the project at its first task and keeps it for the next ones, whatever
their partitions (one set of provider connections a process); when the
process ends (``worker_shutdown`` for the solo pool, ``worker_process_shutdown`` for each prefork
child), it closes what the project opened: the providers' connections and the database pool.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

from engine.api import Followup
from engine.config import load_project
from engine.drive.partitions import WHOLE, Partition
from engine.durable.project import DurableProject

BROKER_ENV = "FOLLOWUP_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
PASS_TASK = "followup.pass"
INGEST_TASK = "followup.ingest"
DEFAULT_QUEUE = "followup"


class _ProjectHolder:
    """One open project per worker process, opened at its first task and closed when the
    process shuts down; its passes over every partition share its providers."""

    def __init__(self, config: Path | None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._followup: Followup | None = None
        self._durable: DurableProject | None = None

    def durable(self) -> DurableProject:
        """The project's durable runtime, opened at its first task."""
        with self._lock:
            if self._followup is None:
                self._followup = Followup(load_project(self.config))
            if self._durable is None:
                self._durable = DurableProject(self._followup)
            return self._durable

    def close(self, **_signal: object) -> None:
        """Close the providers and the database of the project this process opened, if any
        (a Celery signal receiver: its keyword arguments are ignored)."""
        with self._lock:
            followup, self._followup = self._followup, None
            durable, self._durable = self._durable, None
        try:
            if durable is not None:
                durable.close()
        finally:
            if followup is not None:
                followup.close()


def pass_arguments(partitions: int) -> list[tuple[str, ...]]:
    """The arguments of one round of passes: none for the whole, else each partition's."""
    if partitions == 1:
        return [()]
    return [(str(Partition(index, partitions)),) for index in range(partitions)]


def beat_schedule(interval: float, partitions: int) -> dict[str, dict[str, Any]]:
    """Beat's entries: a pass every ``interval`` seconds, one per partition."""
    return {
        "followup-pass" + (f"-{args[0]}" if args else ""): {
            "task": PASS_TASK,
            "schedule": interval,
            "args": args,
        }
        for args in pass_arguments(partitions)
    }


def broker_url(broker: str | None = None) -> str:
    """The broker to use: the argument, then ``FOLLOWUP_BROKER_URL``, then local Redis."""
    return broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER


def create_app(
    config: Path | None = None,
    broker: str | None = None,
    interval: float = 60.0,
    queue: str = DEFAULT_QUEUE,
    partitions: int = 1,
) -> Celery:
    """The Celery app of the project at ``config`` (default ``./followup.yaml``); its tasks go
    to ``queue`` (one queue per project on a shared broker); beat enqueues a pass per each of
    ``partitions``."""
    app = Celery("followup", broker=broker_url(broker))
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(interval, partitions),
    )
    holder = _ProjectHolder(config)
    # Weak receivers (bound methods): they go when this app and its tasks do. Both signals
    # fire in the process that ran the tasks, and closing twice is harmless.
    worker_shutdown.connect(holder.close)
    worker_process_shutdown.connect(holder.close)

    @app.task(name=PASS_TASK)  # type: ignore[untyped-decorator]
    def run_pass(partition: str | None = None) -> dict[str, Any]:
        split = WHOLE if partition is None else Partition.parse(partition)
        result = holder.durable().run_once(split)
        return {
            "partition": str(split),
            "partition_taken": result.engine.partition_taken,
            "tick_left": result.engine.tick_left,
            "events": result.engine.events,
            "decisions": dict(result.engine.decisions),
            "outbox": dict(result.outbox),
        }

    @app.task(name=INGEST_TASK)  # type: ignore[untyped-decorator]
    def ingest(messages: list[dict[str, Any]]) -> dict[str, int]:
        summary = holder.durable().followup.ingest_messages(messages, source="celery")
        return {
            "accepted": summary.accepted,
            "duplicates": summary.duplicates,
            "rejected": summary.rejected_total,
        }

    return app
