"""``followup worker``: a Celery worker of the durable engine (scale-out on Redis or RabbitMQ);
``followup enqueue-pass``: ask the workers for one pass now (what cron or beat would do)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from engine.cli.context import ConfigOption, config_path, console

QueueOption = Annotated[str, typer.Option(help="The project's queue on the broker.")]
PartitionsOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=1024,
        help="Split each round into this many passes, one per partition of the customers "
        "(see docs/scale.md).",
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(help="Broker URL (redis://... or amqp://...); default $FOLLOWUP_BROKER_URL."),
]


def worker(
    ctx: typer.Context,
    config: ConfigOption = None,
    broker: BrokerOption = None,
    beat: Annotated[
        bool, typer.Option(help="Also run Celery beat here (in exactly one worker).")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes (beat).")] = 60.0,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    queue: QueueOption = "followup",
    partitions: PartitionsOption = 1,
) -> None:
    """Take engine passes and ingest batches from the broker until stopped (SIGTERM, Ctrl-C)."""
    from engine.workers.celery_app import create_app

    app = create_app(config_path(ctx), broker, interval, queue, partitions)
    # a node name of its own: two workers on one machine must not share a control queue
    argv = ["worker", "--loglevel=INFO", f"--concurrency={concurrency}"]
    argv.append(f"--hostname=followup-{os.getpid()}@%h")
    # gossip (and mingle, its start-up sync) serve Celery's own coordination, which followup
    # does not use: passes coordinate in the database. A solo worker in a long pass sends no
    # heartbeat meanwhile, and every peer's gossip logged "missed heartbeat" for it. Heartbeat
    # events stay on for monitors (Flower).
    argv += ["--without-gossip", "--without-mingle"]
    argv += ["--pool=solo"] if concurrency == 1 else ["--pool=prefork"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def enqueue_pass(
    ctx: typer.Context,
    config: ConfigOption = None,
    broker: BrokerOption = None,
    queue: QueueOption = "followup",
    partitions: PartitionsOption = 1,
) -> None:
    """Put one round of engine passes on the queue for the workers (one per partition)."""
    from engine.workers.celery_app import PASS_TASK, create_app, pass_arguments

    app = create_app(config_path(ctx), broker, queue=queue)
    for args in pass_arguments(partitions):
        result = app.send_task(PASS_TASK, args=args)
        console.print(f"queued {PASS_TASK}{'(' + args[0] + ')' if args else ''} ({result.id})")
