"""``followup report``: what the campaigns achieved and which touch earned each order
(../shared/design/REPORTS.md), over the project database; and the file ``simulate --report``
writes for a simulated plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from engine.cli.context import (
    ConfigOption,
    console,
    fail,
    open_engine,
    time_option,
    writable_output,
)
from engine.reports.attribution import Model

if TYPE_CHECKING:
    from engine.reports.html import Timeline
    from engine.reports.settings import ReportSettings


FORMATS = ("table", "json", "html")


def report(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="From this ISO 8601 time on.")] = None,
    until: Annotated[str | None, typer.Option(help="Before this ISO 8601 time.")] = None,
    campaign: Annotated[str | None, typer.Option(help="This campaign alone.")] = None,
    model: Annotated[
        Model | None, typer.Option(help="The attribution model (default: reports.model).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, json or html.")] = "table",
    out: Annotated[Path | None, typer.Option(help="Write to this file, not the terminal.")] = None,
    config: ConfigOption = None,
) -> None:
    """What the campaigns brought in: orders, attribution, lift, variants and funnels."""
    from pydantic import ValidationError

    from engine.reports.journey_counts import Period
    from engine.reports.project import project_campaigns, project_report

    if format not in FORMATS:
        raise fail(f"--format {format!r}: use one of {', '.join(FORMATS)}")
    period = Period(time_option(since, "--since"), time_option(until, "--until"))
    if period.since is not None and period.until is not None and period.since >= period.until:
        raise fail(f"--since {since} is not before --until {until}: the period would be empty")
    if out is not None:
        writable_output("--out", out)
    with open_engine(ctx) as followup:
        campaigns = project_campaigns(followup.project)
        if campaign is not None and campaign not in campaigns:
            raise fail(f"no campaign {campaign!r} (the campaigns: {', '.join(sorted(campaigns))})")
        try:
            found, days = project_report(followup, period, model, campaign, campaigns)
        except ValidationError as exc:
            raise fail(
                f"reports: in followup.yaml is invalid (run followup validate): {exc}"
            ) from None
    emit(found, days, format, out)


def settings_of(reports: dict[str, Any]) -> ReportSettings:
    """``reports:`` of the config (``followup validate`` names a problem's line)."""
    from pydantic import ValidationError

    from engine.reports.settings import report_settings

    try:
        return report_settings(reports)
    except ValidationError as exc:
        raise fail(f"reports: in followup.yaml is invalid (run followup validate): {exc}") from None


def emit(found: dict[str, Any], days: Timeline, format: str, out: Path | None) -> None:
    """The report as ``format`` to ``out`` or the terminal."""
    if format == "table" and out is None:
        print_tables(found)
        return
    text = report_text(found, days, "json" if format == "table" else format)
    if out is None:
        console.out(text, highlight=False, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"wrote the {format} report to {out}", highlight=False)


def report_text(found: dict[str, Any], days: Timeline, format: str) -> str:
    """The report as JSON or HTML text."""
    from engine.reports.html import render_html

    if format == "html":
        return render_html(found, days)
    return orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def print_tables(found: dict[str, Any]) -> None:
    """The report as tables in the terminal."""
    orders = found["orders"]
    period = found["period"]
    shown = f"{period['since'] or 'the start'} to {period['until'] or 'now'}"
    console.print(
        f"orders {shown}: {orders['count']:,}, revenue {_money(orders['revenue'])}; attributed "
        f"({found['model']}): {orders['attributed_count']:,.2f} orders, "
        f"{_money(orders['attributed_revenue'])}",
        highlight=False,
    )
    sources = Table(title="orders by source", title_justify="left")
    for column in ("source", "orders", "revenue", "attributed orders", "attributed revenue"):
        sources.add_column(column)
    for source, figures in orders["by_source"].items():
        sources.add_row(
            source,
            f"{figures['count']:,}",
            _money(figures["revenue"]),
            f"{figures['attributed_count']:,.2f}",
            _money(figures["attributed_revenue"]),
        )
    console.print(sources)
    table = Table(title="campaigns", title_justify="left")
    columns = ["campaign", "journeys", "held out", "touches", "converted", "value"]
    for column in [*columns, "attributed", "attributed revenue", "lift (95% interval)"]:
        table.add_column(column)
    for row in found["campaigns"]:
        touches = ", ".join(f"{c} {n:,}" for c, n in row["touches"].items()) or "-"
        table.add_row(
            row["campaign"],
            f"{row['journeys']:,}",
            f"{row['held_out']:,}",
            touches,
            f"{row['converted']:,}",
            _money(row["conversion_value"]),
            f"{row['attributed_count']:,.2f}",
            _money(row["attributed_revenue"]),
            _lift(row["holdout"]),
        )
    console.print(table)


def _lift(holdout: dict[str, Any] | None) -> str:
    if holdout is None:
        return "no holdout"
    for group in ("control", "treatment"):
        if not holdout[group]["journeys"]:
            return f"no {group} journeys yet"
    lift = holdout["lift"]
    low, high = lift["ci95"]
    verdict = "significant" if lift["significant"] else "not significant"
    return f"{lift['absolute'] * 100:+.1f} pts ({low * 100:+.1f} to {high * 100:+.1f}), {verdict}"
