"""``followup providers list|check``: which provider carries each channel, and whether its
credentials work and its service answers, without sending anything.

``check`` exits 0 when every provider answers, 1 when one does not (the reason is printed, never
a secret), 2 when the configuration itself is wrong (a missing environment variable, a bad
setting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import EXIT_PROBLEMS, ConfigOption, config_path, console, fail
from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.channels import ProviderCheck


providers_app = typer.Typer(
    help="The providers that carry each channel (followup.yaml providers:).",
    no_args_is_help=True,
)


@providers_app.command("list")
def list_providers(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Show the provider of each channel and its settings (secrets are never in them)."""
    from engine.config import load_project
    from engine.providers import channel_settings

    try:
        project = load_project(config_path(ctx))
        chosen = channel_settings(project.config.providers)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    table = Table(box=box.SIMPLE)
    for column in ("channel", "provider", "settings"):
        table.add_column(column)
    for channel, settings in chosen.items():
        rest = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "provider")
        table.add_row(channel, str(settings["provider"]), escape(rest))
    console.print(table)


@providers_app.command("check")
def check(
    ctx: typer.Context,
    config: ConfigOption = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="Check only this channel (repeatable).")
    ] = None,
) -> None:
    """Verify each provider's credentials and reachability; nothing is sent."""
    from engine.config import load_project
    from engine.providers import build_providers

    try:
        project = load_project(config_path(ctx))
        built = build_providers(
            project.root,
            project.config.providers,
            database_url=project.database_url,
            unsubscribe_base=project.config.server.base_url,
        )
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    wanted = set(channel or built)
    unknown = wanted - set(built)
    if unknown:
        raise fail(f"no provider carries {', '.join(sorted(unknown))}; see followup providers list")
    table = Table(box=box.SIMPLE)
    for column in ("channel", "provider", "ok", "detail"):
        table.add_column(column)
    all_ok = True
    for name, provider in built.items():
        if name not in wanted:
            continue
        result = _check(provider)
        all_ok &= result.ok
        mark = "[green]yes[/green]" if result.ok else "[red]no[/red]"
        table.add_row(name, provider.name, mark, escape(result.detail))
    console.print(table)
    if not all_ok:
        raise typer.Exit(EXIT_PROBLEMS)


def _check(provider: object) -> ProviderCheck:
    from engine.channels import CheckableProvider, ProviderCheck

    if not isinstance(provider, CheckableProvider):
        return ProviderCheck(True, "nothing to check: this provider needs no credentials")
    try:
        return provider.check()
    except Exception as exc:  # noqa: BLE001 - a provider bug is a failed check, not a traceback
        return ProviderCheck(False, f"the check itself failed: {type(exc).__name__}")
