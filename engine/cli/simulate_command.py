"""``followup simulate --events FILE``: the plan the campaigns would make, as JSON lines."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.campaigns.loader import load_campaigns
from engine.campaigns.validate import load_config
from engine.cli.context import (
    EXIT_ERROR,
    EXIT_PROBLEMS,
    ConfigOption,
    config_path,
    console,
    errors,
)
from engine.events import Event, EventInvalid, parse_timestamp
from engine.ingest.jsonl import read_jsonl
from engine.ingest.pipeline import Accepted
from engine.journeys.plan import PlanLine, plan_text
from engine.journeys.simulate import simulate as run_simulation
from engine.journeys.summary import summarize


def simulate(
    ctx: typer.Context,
    events: Annotated[Path, typer.Option("--events", help="JSONL file of Segment events.")],
    campaigns: Annotated[
        Path | None,
        typer.Option(help="Campaign file or folder (default: the config's campaigns)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Run the clock to this ISO 8601 time (default: a week after the last event)."
        ),
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print figures per campaign instead of the plan.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Replay events on a virtual clock and print the plan; nothing is sent or written."""
    project, _channels, problems = load_config(config_path(ctx))
    loaded = load_campaigns([campaigns or project.path(project.config.campaigns)])
    problems = [*problems, *loaded.problems]
    if problems:
        for problem in problems:
            errors.print(str(problem), soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_PROBLEMS)
    end: datetime | None = None
    if until is not None:
        try:
            end = parse_timestamp(until, "--until")
        except EventInvalid as exc:
            errors.print(f"--until: {exc.message}", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
    if not events.is_file():
        errors.print(f"{events}: no such file", markup=False)
        raise typer.Exit(EXIT_ERROR)
    accepted: list[Event] = []
    rejected = 0
    for record in read_jsonl(events, phone_region=project.config.phone_region):
        if isinstance(record, Accepted):
            accepted.extend(record.events)
        else:
            rejected += 1
            errors.print(f"{record.describe()} (line skipped)", soft_wrap=True, markup=False)
    if end is not None:
        accepted = [event for event in accepted if event.timestamp <= end]
    campaign_models = [item.campaign for item in loaded.campaigns.values()]
    plan = run_simulation(campaign_models, accepted, project.config, end)
    if summary:
        print_summary(plan)
    else:
        sys.stdout.write(plan_text(plan))
    if rejected:
        raise typer.Exit(EXIT_PROBLEMS)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count:,}" for key, count in sorted(counter.items())) or "-"


def print_summary(plan: list[PlanLine], title: str = "simulated plan, per campaign") -> None:
    """Figures per campaign of ``plan``: entered, held out, sent and skipped, exits, conversions
    and revenue."""
    table = Table(title=title, title_justify="left")
    for column in (
        "campaign",
        "entered",
        "held out",
        "sent",
        "skipped",
        "exited",
        "converted",
        "revenue",
    ):
        table.add_column(column)
    for campaign, figures in summarize(plan).items():
        table.add_row(
            campaign,
            f"{figures.entered:,}",
            f"{figures.held_out:,}",
            _counts(figures.sent),
            _counts(figures.skipped),
            _counts(figures.exited),
            f"{figures.converted:,}",
            f"{figures.revenue:,.2f}",
        )
    console.print(table)
