"""The ``followup`` command line: the contract scripts and CI rely on (CAMPAIGN_FORMAT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.context import console, fail, open_engine
from engine.cli.customers_command import customers_app
from engine.cli.ingest_command import ingest
from engine.cli.keys_command import keys_app
from engine.cli.plugins import add_plugin_commands
from engine.cli.preview_command import preview
from engine.cli.providers_command import providers_app
from engine.cli.rejects_command import rejects_app
from engine.cli.report_command import report
from engine.cli.run_command import run, tick
from engine.cli.serve_command import serve
from engine.cli.simulate_command import simulate
from engine.cli.status_command import explain, status
from engine.cli.validate_command import validate
from engine.cli.worker_command import enqueue_pass, worker
from engine.errors import FollowupError

app = typer.Typer(
    name="followup",
    help="Marketing automation and retargeting: one unified state per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state_app = typer.Typer(help="The derived customer state.", no_args_is_help=True)
samples_app = typer.Typer(
    help="The real sample data sets, as Segment events.", no_args_is_help=True
)
app.add_typer(state_app, name="state")
app.add_typer(customers_app, name="customers")
app.add_typer(samples_app, name="samples")
app.add_typer(providers_app, name="providers")
add_plugin_commands(app)
app.add_typer(keys_app, name="keys")
app.add_typer(rejects_app, name="rejects")
app.command()(ingest)
app.command()(validate)
app.command()(simulate)
app.command()(preview)
app.command()(tick)
app.command()(run)
app.command()(serve)
app.command()(status)
app.command()(explain)
app.command()(report)
app.command()(worker)
app.command("enqueue-pass")(enqueue_pass)


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option(help="The project config (default: ./followup.yaml).", show_default=False),
    ] = None,
) -> None:
    """followup reads followup.yaml from the current folder unless --config names another."""


@state_app.command("rebuild")
def rebuild(ctx: typer.Context) -> None:
    """Recompute every profile from the event log (the log is the truth)."""
    with open_engine(ctx) as followup:
        summary = followup.rebuild_states()
    console.print(
        f"rebuilt {summary.customers:,} profiles from the event log; "
        f"{summary.changed:,} differed from the stored state"
    )


@samples_app.command("build")
def build_samples(
    source: Annotated[Path, typer.Option("--from", help="Folder with the shared data sets.")],
    out: Annotated[Path, typer.Option(help="The JSONL file to write.")],
) -> None:
    """Convert the Taobao and CDNOW data sets into Segment JSONL, sorted by time."""
    from engine.sample_data import build_sample

    try:
        summary = build_sample(source, out)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"wrote {summary.events:,} events of {summary.customers:,} customers to {summary.path}"
    )


@samples_app.command("contacts")
def build_sample_contacts(
    sample: Annotated[Path, typer.Option("--from", help="The sample JSONL file.")],
    out: Annotated[Path, typer.Option(help="The JSONL file of identify messages to write.")],
    email_share: Annotated[
        float, typer.Option(help="The share of customers who consent to email (0 to 1).")
    ] = 0.05,
) -> None:
    """Synthetic contacts (example.com addresses, consent for a stable share) for the demo."""
    from engine.sample_contacts import build_contacts

    try:
        summary = build_contacts(sample, out, email_share)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"wrote {summary.customers:,} synthetic contacts ({summary.consented:,} consenting to "
        f"email) to {summary.path}"
    )


def main() -> None:
    """Entry point of the ``followup`` console script."""
    app()
