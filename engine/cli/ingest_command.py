"""``followup ingest FILE``: JSONL or CSV events into the database, with a progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.cli.context import EXIT_OK, EXIT_PROBLEMS, ConfigOption, console, fail, open_engine
from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.events import Rejection
    from engine.ingest.pipeline import IngestSummary


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _write_rejects(path: Path, rejections: list[Rejection]) -> None:
    with path.open("wb") as handle:
        for r in rejections:
            record = {
                "source": r.source,
                "line": r.line,
                "reason": r.reason.value,
                "field": r.field,
                "message": r.message,
                "raw": r.raw,
            }
            handle.write(orjson.dumps(record) + b"\n")


def _print_summary(summary: IngestSummary, rejects_path: Path | None, seconds: float) -> None:
    rate = summary.accepted / seconds if seconds > 0 else 0.0
    console.print(f"ingest: {seconds:.1f}s, {rate:,.0f} events/s accepted")
    table = Table(show_header=False)
    table.add_row("accepted", f"{summary.accepted:,}")
    table.add_row("duplicates", f"{summary.duplicates:,}")
    table.add_row("rejected", f"{summary.rejected_total:,}")
    for reason, count in sorted(summary.rejected.items()):
        table.add_row(f"  {reason.value}", f"{count:,}")
    table.add_row("new customers", f"{summary.customers_created:,}")
    table.add_row("profiles merged", f"{summary.merges:,}")
    console.print(table)
    for rejection in summary.rejections[:10]:
        console.print(f"rejected {rejection.describe()}")
    if summary.rejected_total > 10:
        console.print(f"... and {summary.rejected_total - 10:,} more")
    if rejects_path is not None:
        console.print(f"rejected records kept in {rejects_path} and in followup rejects list")


def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL (Segment spec) or CSV file of events.")],
    mapping: Annotated[
        Path | None, typer.Option(help="Column mapping (YAML) for a CSV file.")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where rejected records go (default: FILE.rejects.jsonl beside FILE)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Ingest events; exit 1 if any record was rejected (the rest is still ingested)."""
    from engine.ingest.csv_mapping import load_mapping, read_csv
    from engine.ingest.jsonl import read_jsonl
    from engine.ingest.rejects import RejectStore

    if not file.is_file():
        raise fail(f"{file}: no such file")
    is_csv = file.suffix.lower() == ".csv"
    if is_csv and mapping is None:
        raise fail(f"{file}: a CSV file needs --mapping FILE.yaml (see docs/ingest.md)")
    if not is_csv and file.suffix.lower() not in JSONL_SUFFIXES:
        raise fail(f"{file}: expected .jsonl, .ndjson or .csv")
    with open_engine(ctx) as followup:
        try:
            csv_mapping = load_mapping(mapping) if mapping is not None else None
        except FollowupError as exc:
            raise fail(str(exc)) from exc
        progress = Progress(
            TextColumn("[bold]ingest[/bold] {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        with progress:
            task = progress.add_task(file.name, total=file.stat().st_size)

            def advance(size: int) -> None:
                progress.advance(task, size)

            if csv_mapping is not None:
                records = read_csv(file, csv_mapping, advance, followup.phone_region)
            else:
                records = read_jsonl(file, on_progress=advance, phone_region=followup.phone_region)
            started = time.perf_counter()
            summary = followup.ingestor.ingest(records)
            seconds = time.perf_counter() - started
        RejectStore(followup.engine).record(summary.rejections, followup.clock())
    rejects_path = None
    if summary.rejections:
        rejects_path = rejects or file.with_name(file.name + ".rejects.jsonl")
        try:
            _write_rejects(rejects_path, summary.rejections)
        except OSError:
            if rejects is not None:
                raise fail(f"{rejects}: cannot write the rejected records there") from None
            # the input's folder is read-only (a shared data set): keep them here instead
            rejects_path = Path.cwd() / rejects_path.name
            _write_rejects(rejects_path, summary.rejections)
    _print_summary(summary, rejects_path, seconds)
    raise typer.Exit(EXIT_PROBLEMS if summary.rejected_total else EXIT_OK)
