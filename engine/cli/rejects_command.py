"""``followup rejects list``: the events refused by file ingest and the HTTP API, in one place."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import ConfigOption, console, open_engine
from engine.journeys.plan import format_time

rejects_app = typer.Typer(
    help="Events refused by followup ingest and the HTTP API.", no_args_is_help=True
)


@rejects_app.command("list")
def list_rejects(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many rejects, newest first.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line, the raw event included.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The rejected events kept last, newest first: where each came from, the field at fault,
    the reason and the message (with --json, the raw event too)."""
    from engine.ingest.rejects import RejectStore

    with open_engine(ctx) as followup:
        found = RejectStore(followup.engine).latest(limit)
    if as_json:
        for reject in found:
            console.out(orjson.dumps(reject.as_json()).decode(), highlight=False)
        return
    table = Table(box=box.SIMPLE)
    for column in ("rejected", "source", "at", "reason", "field", "message"):
        table.add_column(column)
    for reject in found:
        table.add_row(
            format_time(reject.rejected_at),
            escape(reject.source),
            str(reject.position) if reject.position is not None else "-",
            reject.reason,
            escape(reject.field) or "-",
            escape(reject.message),
        )
    console.print(table)
