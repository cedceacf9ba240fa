"""``followup tick`` (one pass, for cron) and ``followup run`` (the embedded engine).

Both decide everything due (new events, timers, schedule ticks, segment sweeps) and deliver the
outbox through the providers ``followup.yaml`` names. ``run`` repeats that on an APScheduler
interval and ingests the JSONL files dropped into ``--watch`` (moved to ``done/`` once ingested),
until it is stopped (Ctrl-C or SIGTERM finish the pass under way first). A pass that fails (the
database restarting, a dropped connection) is reported and the next one tries again: every batch
is a transaction, so nothing is half done. After :data:`FAILED_PASSES_TO_STOP` failures in a
row, ``run`` stops with exit 1 for its supervisor to see.
"""

from __future__ import annotations

import fcntl
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from engine.cli.context import ConfigOption, config_path, console, errors, fail
from engine.clock import Clock, utc_now
from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.api import Followup
    from engine.cli.quiet_tick import QuietProject
    from engine.drive.partitions import Partition
    from engine.durable.project import DurableProject, PassResult
    from engine.service.server import BackgroundServer

FAILED_PASSES_TO_STOP = 5

NowOption = Annotated[
    str | None,
    typer.Option(help="The clock for this pass, ISO 8601 (default: now); for replays and tests."),
]


def _partition(text: str | None) -> Partition:
    """``--partition i/N`` (default: the whole), checked."""
    from engine.drive.partitions import WHOLE, Partition

    if text is None:
        return WHOLE
    try:
        return Partition.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


PartitionOption = Annotated[
    str | None,
    typer.Option(
        "--partition",
        metavar="I/N",
        callback=lambda text: text if text is None else str(_partition(text)),
        help="Decide for the I-th of N partitions of the customers only (counted from 0): "
        "N workers, one partition each, share a pass without sharing a customer. "
        "See docs/scale.md.",
    ),
]


def _clock(now: str | None) -> Clock:
    if now is None:
        return utc_now
    from engine.events import EventInvalid, parse_timestamp

    try:
        fixed = parse_timestamp(now, "--now")
    except EventInvalid as exc:
        raise fail(f"--now: {exc.message}") from None
    return lambda: fixed


def _open(
    ctx: typer.Context, clock: Clock, partition: str | None = None
) -> tuple[Followup, DurableProject]:
    from engine.api import Followup
    from engine.config import load_project
    from engine.durable.project import DurableProject

    try:
        followup = Followup(load_project(config_path(ctx)), clock)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    try:
        return followup, DurableProject(followup, partition=_partition(partition))
    except FollowupError as exc:
        followup.close()
        raise fail(str(exc)) from exc


def _quiet_project(ctx: typer.Context) -> QuietProject | None:
    """The project's SQLite file and fingerprint, for the quiet answer of later ticks."""
    from engine.cli.quiet_tick import quiet_project

    try:
        return quiet_project(config_path(ctx))
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # the full pass reports it, if it matters


def _mark_quiet(followup: Followup, quiet: QuietProject) -> None:
    """Keep the fingerprint this full pass ran with: a later tick with the same one and
    nothing due answers without loading the engine (:mod:`engine.cli.quiet_tick`)."""
    from engine.cli.quiet_tick import MARK
    from engine.project_files import SQLITE
    from engine.storage.tables import engine_marks
    from engine.storage.upserts import upsert

    if followup.project.database_url != SQLITE + str(quiet.database):
        return
    row = {"name": MARK, "value": quiet.fingerprint, "updated_at": followup.clock()}
    with followup.engine.begin() as conn:
        upsert(conn, engine_marks, [row], ["name"])


def _report(result: PassResult, at: datetime) -> None:
    from engine.journeys.plan import format_time

    engine = result.engine
    if engine.partition_taken:
        console.print(f"{format_time(at)}: the partition is another pass's: left to it")
    if engine.tick_left:
        console.print(
            f"{format_time(at)}: a tick stopped at a customer another pass holds: its other"
            " events and timers wait for the next pass"
        )
    decided = ", ".join(f"{k} {v:,}" for k, v in sorted(engine.decisions.items())) or "nothing"
    delivered = ", ".join(f"{k} {v:,}" for k, v in sorted(result.outbox.items())) or "nothing"
    console.print(
        f"{format_time(at)}: {engine.events:,} events, timers of {engine.timer_customers:,} "
        f"customers, {engine.scheduled_customers:,} scheduled, {engine.swept_customers:,} swept; "
        f"decided {decided}; outbox {delivered}",
    )
    for schedule, count in sorted(engine.ticks_skipped.items()):
        console.print(
            f"{schedule}: {count:,} missed tick(s) skipped: coalesced into the latest within"
            " its misfire_grace, or later than it",
        )


def tick(
    ctx: typer.Context,
    now: NowOption = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Also print figures per campaign for this pass.")
    ] = False,
    partition: PartitionOption = None,
    config: ConfigOption = None,
) -> None:
    """One pass for cron: decide what is due, deliver the outbox, exit."""
    quiet = _quiet_project(ctx) if partition is None else None  # the files as this pass reads them
    followup, durable = _open(ctx, _clock(now), partition)
    try:
        result = durable.run_once()
        if quiet is not None:
            _mark_quiet(followup, quiet)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    finally:
        durable.close()
        followup.close()
    _report(result, followup.clock())
    if summary:
        from engine.cli.simulate_command import print_summary

        print_summary(result.engine.lines, "this pass, per campaign")
        for channel, provider in sorted(durable.dispatcher.providers.items()):
            where = getattr(provider, "path", None)
            if where is not None:
                console.print(f"{channel} outbox: {where}")


def _ingest_dropped(followup: Followup, folder: Path) -> None:
    from engine.ingest.jsonl import read_jsonl
    from engine.ingest.rejects import RejectStore

    done = folder / "done"
    for file in sorted(folder.glob("*.jsonl")):
        records = read_jsonl(file, phone_region=followup.phone_region)
        summary = followup.ingestor.ingest(records)
        RejectStore(followup.engine).record(summary.rejections, followup.clock())
        done.mkdir(exist_ok=True)
        file.replace(done / file.name)
        console.print(
            f"{file.name}: {summary.accepted:,} events, {summary.duplicates:,} duplicates, "
            f"{summary.rejected_total:,} rejected"
        )
        for rejection in summary.rejections:
            errors.print(rejection.describe(), markup=False)


WATCH_LOCK = ".followup-watch.lock"


def _watch_alone(folder: Path) -> IO[bytes]:
    """A lock on ``folder``, held while this process watches it (released when it ends): two
    processes watching one folder raced for its files, one moving a file the other read."""
    handle = (folder / WATCH_LOCK).open("a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise fail(
            f"another followup run is watching {folder}: watch a folder from one process"
            " (the runs of the other partitions go without --watch)"
        ) from None
    return handle


def _start_http(followup: Followup) -> BackgroundServer:
    from engine.service.app import create_app
    from engine.service.logs import configure_logging
    from engine.service.server import BackgroundServer

    server = followup.project.config.server
    try:
        http = BackgroundServer(create_app(followup), server.host, server.port)
    except OSError as exc:
        followup.close()
        raise fail(f"cannot listen on {server.host}:{server.port}: {exc.strerror}") from exc
    configure_logging()
    console.print(f"followup run: serving the HTTP API on {http.url}")
    return http.start()


def run(
    ctx: typer.Context,
    watch: Annotated[
        Path | None, typer.Option(help="A folder of JSONL files to ingest as they appear.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 30.0,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Also serve the HTTP API (followup serve).")
    ] = False,
    partition: PartitionOption = None,
    config: ConfigOption = None,
) -> None:
    """The embedded engine: a pass every --interval seconds until stopped."""
    from apscheduler.schedulers.background import BackgroundScheduler

    watching = None
    if watch is not None:
        watch.mkdir(parents=True, exist_ok=True)
        watching = _watch_alone(watch)
    followup, durable = _open(ctx, utc_now, partition)
    http = _start_http(followup) if serve else None
    stop = threading.Event()
    failures: list[BaseException] = []  # the passes failed in a row

    def one_pass() -> None:
        try:
            if watch is not None:
                _ingest_dropped(followup, watch)
            result = durable.run_once()
        except Exception as exc:  # noqa: BLE001 - reported; the next pass tries again
            failures.append(exc)
            errors.print(
                f"followup run: the pass failed ({len(failures)} in a row): "
                f"{type(exc).__name__}: {exc}",
                markup=False,
            )
            if len(failures) >= FAILED_PASSES_TO_STOP:
                stop.set()
            return
        failures.clear()
        engine = result.engine
        if engine.events or result.outbox or engine.timer_customers or engine.tick_left:
            _report(result, followup.clock())

    def ask_to_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        one_pass,
        "interval",
        seconds=interval,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now().astimezone(),
    )
    console.print(
        f"followup run: a pass every {interval:g}s" + (f", watching {watch}" if watch else "")
    )
    scheduler.start()
    try:
        stop.wait()
    finally:
        if http is not None:
            http.stop()  # requests in flight finish first
        scheduler.shutdown(wait=True)  # the pass under way finishes first
        durable.close()
        followup.close()
        if watching is not None:
            watching.close()
    if len(failures) >= FAILED_PASSES_TO_STOP:
        last = failures[-1]
        raise fail(f"stopped after {len(failures)} failed passes: {type(last).__name__}: {last}")
    console.print("followup run: stopped")
