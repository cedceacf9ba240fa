"""``followup simulate --events FILE``: the plan the campaigns would make, as JSON lines."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from engine.cli.context import (
    EXIT_ERROR,
    EXIT_PROBLEMS,
    ConfigOption,
    config_path,
    console,
    errors,
    writable_output,
)
from engine.journeys.plan import PlanLine, plan_text

if TYPE_CHECKING:
    from engine.campaigns.loader import CampaignSet
    from engine.campaigns.schema import Campaign
    from engine.config import ProjectConfig
    from engine.events import Event
    from engine.journeys.simulate import Simulation
    from engine.reports.settings import ReportSettings


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
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the report of the plan (REPORTS.md) to this .json or .html file.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes to split the customers between, for the same plan (default: one "
            "per CPU, at most 8, as free memory allows; under 50,000 events, one).",
        ),
    ] = None,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            help="Instead of the plan, say why this customer (id, userId, email, phone or "
            "anonymousId) did or didn't get a message, as `followup explain` does.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --explain: the explanation as a JSON document.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Replay events on a virtual clock and print the plan; nothing is sent or written."""
    from engine.campaigns.double_opt_in_checks import reserved_id_problems
    from engine.campaigns.loader import display_path, load_campaigns
    from engine.campaigns.validate import (
        check_webhook_urls,
        configured_webhook_urls,
        load_config,
        missing_templates,
    )
    from engine.cli.report_command import settings_of
    from engine.double_opt_in import with_confirmation
    from engine.events import EventInvalid, parse_timestamp
    from engine.gc_pauses import no_full_collections
    from engine.ingest.jsonl import read_jsonl
    from engine.ingest.pipeline import Accepted
    from engine.journeys.simulate import simulation as run_simulation

    if explain is not None and (summary or report is not None):
        errors.print("--explain prints one customer's decisions: leave out --summary and --report")
        raise typer.Exit(EXIT_ERROR)
    if as_json and explain is None:
        errors.print("--json goes with --explain (the plan is JSON lines already)")
        raise typer.Exit(EXIT_ERROR)
    if report is not None and report.suffix not in (".json", ".html"):
        errors.print(f"--report {report}: name a .json or .html file", markup=False)
        raise typer.Exit(EXIT_ERROR)
    if report is not None:
        writable_output("--report", report)
    # the config as validate checks it (provider settings too: a plan is no use on a config
    # the runtime refuses), but no provider is needed: a plan sends nothing
    project, _channels, findings = load_config(config_path(ctx), check_providers=True)
    loaded = load_campaigns([campaigns or project.path(project.config.campaigns)])
    reserved = reserved_id_problems(loaded.campaigns.values(), project.config.policies)
    urls = configured_webhook_urls(project.config.providers)
    problems = [finding for finding in findings if finding.severity == "error"]
    problems += [*loaded.problems, *reserved]
    for item in loaded.campaigns.values():
        problems += check_webhook_urls(item, urls)
    if problems:
        for problem in problems:
            errors.print(str(problem), markup=False)
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
    with no_full_collections():  # every event is kept: a full collection would free nothing
        for record in read_jsonl(events, phone_region=project.config.phone_region):
            if isinstance(record, Accepted):
                accepted.extend(record.events)
            else:
                rejected += 1
                errors.print(f"{record.describe()} (line skipped)", markup=False)
    if end is not None:
        accepted = [event for event in accepted if event.timestamp <= end]
    campaign_models = [item.campaign for item in loaded.campaigns.values()]
    templates = project.path(project.config.templates)
    missing: set[str] = set()  # said at the step that names it, not again after the run
    for item in loaded.campaigns.values():
        for name, problem in missing_templates(item, templates):
            missing.add(name)
            errors.print(
                f"{problem.as_warning()}\n    its sends are skipped (render_error)", markup=False
            )
    if explain is not None:
        _explain(explain, events, loaded, accepted, project.config, end, templates, as_json)
        raise typer.Exit(EXIT_PROBLEMS if rejected else 0)
    settings = settings_of(project.config.reports) if report is not None else None
    watch = frozenset({settings.conversion}) if settings is not None else frozenset()
    simulated = run_simulation(
        campaign_models, accepted, project.config, end, templates, watch, workers=workers
    )
    for template, fault in simulated.render_problems.items():
        if template in missing:
            continue
        shown = replace(fault, file=display_path(Path(fault.file)))
        errors.print(
            f"warning: {shown}\n    sends with this template are skipped (render_error)",
            markup=False,
        )
    if report is not None and settings is not None:
        _write_report(report, simulated, accepted, campaign_models, project.config, settings)
    if summary:
        every = with_confirmation(campaign_models, project.config.policies)  # the built-in too
        print_summary(simulated.plan, campaigns=every, simulated=simulated)
    else:
        sys.stdout.write(plan_text(simulated.plan))
    if rejected:
        raise typer.Exit(EXIT_PROBLEMS)


def _explain(
    reference: str,
    events: Path,
    loaded: CampaignSet,
    accepted: list[Event],
    config: ProjectConfig,
    end: datetime | None,
    templates: Path,
    as_json: bool,
) -> None:
    """Print why the customer known as ``reference`` did or didn't get a message (as
    ``followup explain`` does, or its ``--json`` document)."""
    import orjson

    from engine.durable.explain_text import (
        current_campaigns,
        explanation_document,
        explanation_lines,
        why_nothing,
    )
    from engine.journeys.simulate_explain import explain_simulated

    models = [item.campaign for item in loaded.campaigns.values()]
    found = explain_simulated(models, accepted, config, reference, None, end, templates)
    if found is None:
        errors.print(
            f"error: no customer is known as {reference!r} in {events} "
            "(id, userId, email, phone or anonymousId)",
            markup=False,
        )
        raise typer.Exit(EXIT_ERROR)
    explanation = found.explanation
    files = {cid: item.campaign for cid, item in loaded.campaigns.items()}
    hints = [] if explanation.decisions else why_nothing(explanation, files, None, simulated=True)
    current = current_campaigns(loaded, config.policies)
    if as_json:
        document = explanation_document(
            found.customer_id, found.state, explanation, hints, current, simulated=True
        )
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    lines = explanation_lines(
        found.customer_id, found.state, explanation, hints, current, simulated=True
    )
    sys.stdout.write("".join(line + "\n" for line in lines))


def _write_report(
    path: Path,
    simulated: Simulation,
    events: list[Event],
    campaigns: list[Campaign],
    config: ProjectConfig,
    settings: ReportSettings,
) -> None:
    """The report of the simulated plan, as JSON or HTML by the file's suffix."""
    from engine.cli.report_command import report_text
    from engine.double_opt_in import with_confirmation
    from engine.journeys.simulate import received_order
    from engine.reports.from_plan import plan_report

    every = {c.id: c for c in with_confirmation(campaigns, config.policies)}
    found, days = plan_report(simulated, received_order(events), every, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_text(found, days, path.suffix[1:]))
    errors.print(f"wrote the report of the plan to {path}", markup=False)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count:,}" for key, count in sorted(counter.items())) or "-"


def print_summary(
    plan: list[PlanLine],
    title: str = "simulated plan, per campaign",
    campaigns: Sequence[Campaign] = (),
    simulated: Simulation | None = None,
) -> None:
    """Figures per campaign of ``plan``: entered, held out, sent and skipped, exits, conversions
    and revenue; with ``campaigns``, a row for each, and for one that nobody entered, why (from
    ``simulated``). Never an empty table: with no row, a sentence saying why."""
    from engine.journeys.summary import summarize

    figures = summarize(plan)
    quiet = {c.id: _why_none(c, simulated) for c in campaigns if c.id not in figures}
    if not figures and not quiet:
        console.print(f"{title}: no campaign acted (no campaigns, or no events)")
        return
    table = Table(title=title, title_justify="left")
    columns = ["campaign", "entered", "held out", "sent", "skipped", "exited", "converted"]
    for column in [*columns, "revenue", *(["why none"] if quiet else [])]:
        table.add_column(column)
    for campaign, found in sorted({**figures, **dict.fromkeys(quiet)}.items()):
        if found is None:
            table.add_row(campaign, "0", "0", "-", "-", "-", "0", "0.00", quiet[campaign])
            continue
        table.add_row(
            campaign,
            f"{found.entered:,}",
            f"{found.held_out:,}",
            _counts(found.sent),
            _counts(found.skipped),
            _counts(found.exited),
            f"{found.converted:,}",
            f"{found.revenue:,.2f}",
            *([""] if quiet else []),
        )
    console.print(table)


def _why_none(campaign: Campaign, simulated: Simulation | None) -> str:
    """Why ``campaign`` has no line in the plan, in a few words."""
    from engine.campaigns.schema import (
        CampaignStatus,
        EventTrigger,
        ScheduleTrigger,
        SegmentTrigger,
    )

    if campaign.status is CampaignStatus.PAUSED:
        return "paused: not simulated"
    if simulated is None:
        return "no entries"
    trigger = campaign.trigger
    refused = simulated.refused.get(campaign.id, Counter())
    if isinstance(trigger, EventTrigger) and not simulated.triggered[campaign.id]:
        return f"no entries: no {trigger.event!r} events"
    reasons = []
    if simulated.where_refused[campaign.id]:
        reasons.append(f"`where:` refused {simulated.where_refused[campaign.id]:,}")
    reasons += [f"{reason} refused {count:,}" for reason, count in sorted(refused.items())]
    if not reasons:
        reasons.append(
            "no tick in the simulated period"
            if isinstance(trigger, ScheduleTrigger)
            else f"the segment held for nobody: `{trigger.segment.source}`"
            if isinstance(trigger, SegmentTrigger)
            else "every trigger came while a journey ran (restart)"
        )
    return "no entries: " + ", ".join(reasons)
