"""``followup status`` and ``followup explain --customer ID``: what the engine is doing, and why.

``status`` shows, per campaign, the status and version of its file, the journeys running each
version (those still on an older one counted apart: a journey keeps the version it entered
with), completed and exited journeys, pending timers, the outbox by status and the inbox backlog;
outbox rows whose outcome is ``unknown`` are listed loudly, for a person to check by hand.

``explain`` answers "why did or didn't this customer get this message": every decision about the
customer (and every profile merged into them) in time order with its reason in plain English,
each send joined with its delivery outcome; with no decision, what may explain that.

Both exit 0 whatever they find, and 2 when they cannot run (bad config, unreachable database,
unknown customer or campaign). The read models are :mod:`engine.drive.status_model` and
:mod:`engine.drive.explanation`; their queries, :mod:`engine.durable.sql_status` and
:mod:`engine.durable.sql_reads`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import ConfigOption, console, errors, fail, open_engine
from engine.journeys.plan import format_optional_time, format_time

if TYPE_CHECKING:
    from engine.api import Followup
    from engine.campaigns.loader import CampaignSet
    from engine.drive.status_model import (
        CampaignStatus,
        CurrentCampaign,
        OutboxRow,
        StatusReport,
    )


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _dumps(document: Any) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def _campaigns(followup: Followup) -> CampaignSet:
    """The campaign files now; a file with problems is reported and left out."""
    from engine.campaigns.loader import load_campaigns

    folder = followup.project.path(followup.project.config.campaigns)
    loaded = load_campaigns([folder])
    if loaded.problems:
        errors.print(
            f"[yellow]warning:[/yellow] {len(loaded.problems)} problem(s) in the campaign files "
            f"(see `followup validate`); `followup tick` and `run` refuse to start until they are "
            f"fixed. First: {escape(str(loaded.problems[0]))}",
        )
    return loaded


def _current(followup: Followup, loaded: CampaignSet) -> dict[str, CurrentCampaign]:
    """Each campaign's status and version now (:func:`current_campaigns`)."""
    from engine.durable.explain_text import current_campaigns

    return current_campaigns(loaded, followup.project.config.policies)


# --- followup status -----------------------------------------------------------------------


def _campaign_json(campaign: CampaignStatus) -> dict[str, Any]:
    return {
        "campaign": campaign.campaign_id,
        "status": campaign.status,
        "version": campaign.current_version,
        "journeys": {
            "active": campaign.active,
            "active_on_older_versions": campaign.active_on_older,
            "completed": campaign.completed,
            "exited": campaign.exited,
        },
        "versions": [
            {
                "version": v.version,
                "current": v.current,
                "active": v.active,
                "completed": v.completed,
                "exited": v.exited,
                "first_seen_at": format_optional_time(v.first_seen_at),
            }
            for v in campaign.versions
        ],
        "timers": {
            "pending": campaign.timers,
            "overdue": campaign.timers_overdue,
            "next_due_at": format_optional_time(campaign.next_due_at),
        },
        "next_tick_at": format_optional_time(campaign.next_tick_at),
        "outbox": dict(campaign.outbox),
    }


def _row_json(row: OutboxRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "campaign": row.campaign_id,
        "journey": row.journey_id,
        "step": row.step,
        "customer": row.customer_id,
        "channel": row.channel,
        "action": row.action,
        "status": row.status,
        "detail": row.detail,
        "attempts": row.attempts,
        "decided_at": format_optional_time(row.decided_at),
        "updated_at": format_optional_time(row.updated_at),
    }


def status_json(report: StatusReport) -> dict[str, Any]:
    """The report as the JSON document ``followup status --json`` prints."""
    return {
        "at": format_optional_time(report.at),
        "campaigns": [_campaign_json(c) for c in report.campaigns],
        "inbox": {
            "backlog": report.inbox_backlog,
            "oldest_event_at": format_optional_time(report.inbox_oldest_at),
        },
        "outbox": report.outbox,
        "needs_check": [_row_json(row) for row in report.unknown],
        "failed": {"total": report.failed_total, "latest": [_row_json(r) for r in report.failed]},
        "next_segment_sweep_at": format_optional_time(report.next_sweep_at),
        "segment_looks": {
            "due": report.segment_looks_due,
            "next_at": format_optional_time(report.next_segment_look_at),
        },
        "throttles": {
            t.channel: {
                "rate": t.rate,
                "waiting": t.waiting,
                "full_at": format_optional_time(t.full_at),
            }
            for t in report.throttles
        },
    }


_STATUS_STYLE = {"active": "green", "paused": "yellow", "draft": "dim", "removed": "red"}
_OUTBOX_STYLE = {"failed": "red", "unknown": "bold red", "pending": "yellow", "sending": "yellow"}


def _outbox_cell(counts: Mapping[str, int]) -> str:
    parts = []
    for status, count in counts.items():
        if count:
            style = _OUTBOX_STYLE.get(status)
            text = f"{count:,} {status}"
            parts.append(f"[{style}]{text}[/{style}]" if style else text)
    return ", ".join(parts) or "-"


def _older_cell(campaign: CampaignStatus) -> str:
    count = campaign.active_on_older
    return f"[bold yellow]{count:,}[/bold yellow]" if count else "0"


def _print_row_list(rows: Sequence[OutboxRow]) -> None:
    for row in rows:
        console.print(
            f"  {escape(row.key)}  {row.campaign_id}  {row.channel} {row.action}  "
            f"customer {row.customer_id}  decided {format_time(row.decided_at)}, "
            f"attempts {row.attempts}, last {format_time(row.updated_at)}: "
            f"{escape(row.detail or 'no detail')}",
        )


def print_status(report: StatusReport) -> None:
    """The report for people: a table, then what needs attention."""
    from engine.drive.status_model import REMOVED

    at = format_time(report.at.replace(microsecond=0))
    table = Table(
        title=f"campaigns as of {at}", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False
    )
    table.add_column("campaign", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("running", justify="right")
    table.add_column("on older versions", justify="right")
    table.add_column("completed", justify="right")
    table.add_column("exited", justify="right")
    table.add_column("timers", justify="right")
    table.add_column("next step due", no_wrap=True)
    table.add_column("outbox")
    for c in report.campaigns:
        style = _STATUS_STYLE.get(c.status, "")
        due = format_optional_time(c.next_due_at) or "-"
        table.add_row(
            c.campaign_id,
            f"[{style}]{c.status}[/{style}]" if style else c.status,
            c.current_version or "-",
            f"{c.active:,}",
            _older_cell(c),
            f"{c.completed:,}",
            f"{c.exited:,}",
            f"{c.timers:,}",
            f"[red]{due}[/red]" if c.timers_overdue and c.status == "active" else due,
            _outbox_cell(c.outbox),
        )
    console.print(table)

    for c in report.campaigns:
        if c.active_on_older:
            for v in c.versions:
                if not v.current and v.active:
                    since = f", first run {format_time(v.first_seen_at)}" if v.first_seen_at else ""
                    now = (
                        f"the file is now {c.current_version}"
                        if c.current_version
                        else "the file is gone"
                    )
                    console.print(
                        f"{c.campaign_id}: {v.active:,} journey(s) still run older version "
                        f"{v.version}{since}; {now} (new entries only)",
                    )
        if c.status == "paused" and (c.active or c.timers):
            console.print(
                f"{c.campaign_id}: paused; its {c.active:,} running journey(s) are held until "
                f"it is active again",
            )
        if c.status == REMOVED and c.active:
            console.print(
                f"[red]{c.campaign_id}: the file is gone; its {c.active:,} running journey(s) "
                f"are held until it is back[/red]",
            )

    overdue = sum(c.timers_overdue for c in report.campaigns if c.status == "active")
    if overdue:
        console.print(
            f"[red]{overdue:,} timer(s) of active campaigns overdue at {at}[/red]: is "
            f"`followup run` (or a cron `followup tick`) running?",
        )
    for c in report.campaigns:
        if c.next_tick_at is not None and c.status == "active":
            console.print(f"{c.campaign_id}: next scheduled tick {format_time(c.next_tick_at)}")
    if report.inbox_backlog:
        oldest = (
            f" (oldest {format_time(report.inbox_oldest_at)})" if report.inbox_oldest_at else ""
        )
        console.print(
            f"inbox: {report.inbox_backlog:,} event(s) wait for the journey engine{oldest}: "
            f"the next `followup tick` or `followup run` pass takes them",
        )
    else:
        console.print("inbox: empty (every logged event has been taken by the journey engine)")
    totals = ", ".join(f"{n:,} {s}" for s, n in report.outbox.items() if n) or "empty"
    console.print(f"outbox: {totals}")
    for throttle in report.throttles:
        full = (
            f", bucket full again {format_time(throttle.full_at.replace(microsecond=0))}"
            if throttle.full_at is not None
            else ", bucket full"
        )
        console.print(
            f"throttle: {throttle.channel} at {throttle.rate} (providers.{throttle.channel}.rate)"
            f"; {throttle.waiting:,} row(s) put off for a turn{full}",
        )
    if report.next_sweep_at is not None:
        booked = f"{report.segment_looks_due:,} customers due"
        if report.next_segment_look_at is not None:
            booked += f", the next look after that at {format_time(report.next_segment_look_at)}"
        console.print(f"next segment sweep: {format_time(report.next_sweep_at)} ({booked})")

    if report.unknown:
        console.print(
            f"[bold red]NEEDS A HUMAN CHECK: {len(report.unknown):,} outbox row(s) have an "
            f"UNKNOWN outcome[/bold red]: the process stopped while their provider was called, "
            f"so they may or may not have reached the customer. They are never resent "
            f"automatically; check each with the provider:",
        )
        _print_row_list(report.unknown)
    if report.failed_total:
        shown = (
            f" (latest {len(report.failed)})" if len(report.failed) < report.failed_total else ""
        )
        console.print(
            f"[red]FAILED: {report.failed_total:,} outbox row(s) could not be delivered{shown}:"
            f"[/red]",
        )
        _print_row_list(report.failed)


def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    now: Annotated[
        str | None,
        typer.Option(
            help="The clock timers count as overdue against, ISO 8601 (default: now); "
            "for replays with `followup tick --now`.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per campaign: versions and running journeys, timers, outbox, inbox backlog."""
    from engine.drive.status_model import status_report
    from engine.durable.sql_status import SqlStatusReads
    from engine.events import EventInvalid, parse_timestamp
    from engine.providers import provider_rates

    at: datetime | None = None
    if now is not None:
        try:
            at = parse_timestamp(now, "--now")
        except EventInvalid as exc:
            raise fail(f"--now: {exc.message}") from None
    with open_engine(ctx) as followup:
        loaded = _campaigns(followup)
        current = _current(followup, loaded)
        with followup.engine.connect() as conn:
            rates = provider_rates(followup.project.config.providers)
            report = status_report(
                SqlStatusReads(conn), current, at or followup.clock(), rates=rates
            )
    if as_json:
        console.out(_dumps(status_json(report)), highlight=False)
        return
    print_status(report)


# --- followup explain ----------------------------------------------------------------------


def _say(text: str) -> None:
    """A line of plain text: names, subjects and details are never read as markup."""
    console.print(text, markup=False, emoji=False)


def explain(
    ctx: typer.Context,
    customer: Annotated[
        str, typer.Option(help="Customer id, userId, email, phone or anonymousId.")
    ],
    campaign: Annotated[
        str | None, typer.Option(help="Only this campaign's decisions.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Why did or didn't this customer get a message: every decision with its reason."""
    from engine.drive.explanation import explain_customer
    from engine.durable.explain_text import (
        explanation_document,
        explanation_lines,
        why_nothing,
    )
    from engine.durable.sql_reads import SqlExplainReads
    from engine.durable.sql_status import recorded_campaigns

    with open_engine(ctx) as followup:
        profile = followup.profile(customer, recent=0)
        if profile is None:
            raise fail(
                f"no customer is known as {customer!r} (id, userId, email, phone or anonymousId)"
            )
        loaded = _campaigns(followup)
        current = _current(followup, loaded)
        with followup.engine.connect() as conn:
            unknown = campaign is not None and campaign not in current
            if unknown and campaign not in recorded_campaigns(conn):
                known = ", ".join(sorted(current)) or "none"
                raise fail(f"no campaign {campaign!r} (the campaigns: {known})")
            explanation = explain_customer(SqlExplainReads(conn), profile.id, campaign)
    files = {cid: found.campaign for cid, found in loaded.campaigns.items()}
    hints = [] if explanation.decisions else why_nothing(explanation, files, campaign)
    state = profile.state
    if as_json:
        document = explanation_document(profile.id, state, explanation, hints, current)
        console.out(_dumps(document), highlight=False)
        return

    for line in explanation_lines(profile.id, state, explanation, hints, current):
        _say(line)
