"""``followup calls``: the call lists of the ``calllist`` provider and the dialer round trip.

``export`` writes the CSV a dialer imports (entries whose calling window is open or opens later
today, in the customer's zone) and marks them exported; ``outcome`` and ``outcomes`` record how
calls ended and log a ``Call Completed`` event for each; ``dnc`` keeps the do-not-call list;
``lists`` counts entries by status. Exit codes: 0 done, 1 some outcomes could not be recorded,
2 the command could not run.

The call lists live in :mod:`integrations.calls`: this command is an edge, like the provider
registry, and the only part of ``engine/`` that names an integration.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import (
    EXIT_PROBLEMS,
    ConfigOption,
    config_path,
    console,
    errors,
    fail,
    time_option,
)
from engine.clock import Clock, utc_now
from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.api import Followup
    from engine.config import Project
    from integrations.calls import OutcomeReport


calls_app = typer.Typer(
    help="Call lists in the database: export for the dialer, outcomes back, do-not-call.",
    no_args_is_help=True,
)
dnc_app = typer.Typer(help="The company do-not-call list (E.164 phones).", no_args_is_help=True)
calls_app.add_typer(dnc_app, name="dnc")

PhonesArgument = Annotated[list[str], typer.Argument(help="Phone numbers, national or +E.164.")]


def _open(ctx: typer.Context, clock: Clock = utc_now) -> Followup:
    from engine.api import Followup
    from engine.config import load_project

    try:
        return Followup(load_project(config_path(ctx)), clock)
    except FollowupError as exc:
        raise fail(str(exc)) from exc


def _default_out(project: Project, list_name: str, now: datetime) -> Path:
    from engine.channels import ProviderContext
    from integrations.calls.provider import DEFAULT_PATH, export_folder
    from integrations.outbox._files import safe_name

    settings = project.config.providers.get("call")
    if isinstance(settings, dict) and settings.get("provider") == "calllist":
        context = ProviderContext("call", project.root, {}, project.database_url)
        folder = export_folder(settings, context)
    else:
        folder = project.root / DEFAULT_PATH
    return folder / f"{safe_name(list_name)}-{now:%Y%m%dT%H%M%SZ}.csv"


@calls_app.command("export")
def export(
    ctx: typer.Context,
    list_name: Annotated[str, typer.Option("--list", help="The call list to export.")],
    out: Annotated[
        Path | None,
        typer.Option(help="The CSV to write (default: <providers.call.path>/<list>-<time>.csv)."),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="The export's clock, ISO 8601 (default: now).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the dialer CSV of the entries callable today and mark them exported."""
    from integrations.calls import export_list

    at = time_option(now, "--now") or utc_now()
    followup = _open(ctx, lambda: at)
    try:
        target = out or _default_out(followup.project, list_name, at)
        summary = export_list(followup.engine, list_name, target, at)
        counts = _counts(followup)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    finally:
        followup.close()
    console.print(
        f"exported {summary.exported:,} entries of {escape(list_name)} to "
        f"{escape(str(summary.path))}; {summary.suppressed:,} suppressed (do-not-call), "
        f"{summary.waiting:,} waiting for their due time or tomorrow's window"
    )
    if list_name not in counts:
        errors.print(
            f"note: the list {escape(list_name)} has no entries; calls reach it when "
            "providers.call is {provider: calllist}",
        )


def _counts(followup: Followup) -> dict[str, Counter[str]]:
    from integrations.calls.entries import counts_by_list

    with followup.engine.connect() as conn:
        return counts_by_list(conn)


@calls_app.command("lists")
def lists(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Count the entries of each call list by status."""
    from integrations.calls import EntryStatus

    followup = _open(ctx)
    try:
        counts = _counts(followup)
    finally:
        followup.close()
    table = Table(box=box.SIMPLE)
    statuses = [status.value for status in EntryStatus]
    for column in ("list", *statuses, "total"):
        table.add_column(column, justify="left" if column == "list" else "right")
    for name, by_status in counts.items():
        cells = [f"{by_status.get(status, 0):,}" for status in statuses]
        table.add_row(escape(name), *cells, f"{sum(by_status.values()):,}")
    console.print(table if counts else "no call lists yet")


def _phones(followup: Followup, raw: list[str]) -> list[str]:
    from engine.contact import normalize_phone

    phones: list[str] = []
    bad: list[str] = []
    for text in raw:
        phone = normalize_phone(text, followup.phone_region)
        (phones if phone else bad).append(phone or text)
    if bad:
        followup.close()
        raise fail(f"not a possible phone number: {', '.join(bad)}")
    return phones


@dnc_app.command("add")
def dnc_add_command(
    ctx: typer.Context, phones: PhonesArgument, config: ConfigOption = None
) -> None:
    """Put phones on the do-not-call list: never exported, never added to a list again."""
    from integrations.calls.entries import dnc_add

    followup = _open(ctx)
    wanted = _phones(followup, phones)
    try:
        with followup.engine.begin() as conn:
            added = dnc_add(conn, wanted, "followup calls dnc add", followup.clock())
    finally:
        followup.close()
    already = [p for p in dict.fromkeys(wanted) if p not in added]
    console.print(
        f"added {', '.join(added) or 'none'}; already on the list: {', '.join(already) or 'none'}"
    )


@dnc_app.command("remove")
def dnc_remove_command(
    ctx: typer.Context, phones: PhonesArgument, config: ConfigOption = None
) -> None:
    """Take phones off the do-not-call list."""
    from integrations.calls.entries import dnc_remove

    followup = _open(ctx)
    wanted = _phones(followup, phones)
    try:
        with followup.engine.begin() as conn:
            removed = dnc_remove(conn, wanted)
    finally:
        followup.close()
    absent = [p for p in dict.fromkeys(wanted) if p not in removed]
    console.print(
        f"removed {', '.join(removed) or 'none'}; not on the list: {', '.join(absent) or 'none'}"
    )


@dnc_app.command("list")
def dnc_list_command(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Show the do-not-call list."""
    from integrations.calls.entries import dnc_entries

    followup = _open(ctx)
    try:
        with followup.engine.connect() as conn:
            entries = dnc_entries(conn)
    finally:
        followup.close()
    table = Table(box=box.SIMPLE)
    for column in ("phone", "added", "by"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.phone, entry.added_at.isoformat(), escape(entry.source))
    console.print(table if entries else "the do-not-call list is empty")


def _problem(where: str, message: str) -> None:
    errors.print(f"[red]problem:[/red] {escape(where + message)}")


def _record(followup: Followup, report: OutcomeReport, where: str = "") -> str | None:
    """``recorded`` or ``already recorded``; ``None`` after printing why it was refused."""
    from integrations.calls import OutcomeRejected, record_outcome

    try:
        return "recorded" if record_outcome(followup, report) else "already recorded"
    except OutcomeRejected as exc:
        _problem(where, str(exc))
        return None


@calls_app.command("outcome")
def outcome(
    ctx: typer.Context,
    entry: Annotated[str, typer.Argument(help="The entry_id of the exported row.")],
    result: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="answered, interested, not_interested, no_answer, voicemail, busy, "
            "wrong_number or do_not_call.",
        ),
    ],
    note: Annotated[str | None, typer.Option(help="What the agent noted.")] = None,
    agent: Annotated[str | None, typer.Option(help="Who called.")] = None,
    at: Annotated[str | None, typer.Option(help="When the call was, ISO 8601.")] = None,
    config: ConfigOption = None,
) -> None:
    """Record how one call ended and log its Call Completed event."""
    from integrations.calls import OutcomeReport
    from integrations.calls.outcomes import parse_outcome

    try:
        parsed = parse_outcome(result)
    except ValueError as exc:
        raise fail(f"--outcome: {exc}") from None
    when = time_option(at, "--at")
    followup = _open(ctx)
    try:
        report = OutcomeReport(entry, parsed, when or followup.clock(), agent, note)
        done = _record(followup, report)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    finally:
        followup.close()
    if done is None:
        raise typer.Exit(EXIT_PROBLEMS)
    console.print(f"{done} {parsed} for {escape(entry)}")


@calls_app.command("outcomes")
def outcomes(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Option("--from", help="The dialer's CSV: entry_id,outcome,called_at,agent,note."),
    ],
    config: ConfigOption = None,
) -> None:
    """Record the outcomes of a dialer's results file; the good rows even when some are not."""
    from integrations.calls import read_outcomes

    followup = _open(ctx)
    done: Counter[str] = Counter()
    try:
        for line, report in read_outcomes(source, followup.clock()):
            where = f"{source}:{line}: "
            if isinstance(report, str):
                _problem(where, report)
                result = None
            else:
                result = _record(followup, report, where)
            done[result or "problems"] += 1
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    finally:
        followup.close()
    console.print(
        f"{done['recorded']:,} outcomes recorded, {done['already recorded']:,} already recorded, "
        f"{done['problems']:,} problems"
    )
    if done["problems"]:
        raise typer.Exit(EXIT_PROBLEMS)
