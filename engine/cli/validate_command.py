"""``followup validate [PATH ...]``: exit 0 when every campaign, template and the config are valid,
else exit 1 and one ``path:line:column: message`` line per problem on standard output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.campaigns.validate import validate_project
from engine.cli.context import EXIT_PROBLEMS, config_path


def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Campaign files or folders (default: the config's campaigns folder).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check campaigns, templates and followup.yaml; print one line per problem."""
    report = validate_project(paths or None, config_path(ctx))
    for problem in report.problems:
        typer.echo(str(problem))
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)
    config = f" and {report.config}" if report.config else ""
    campaigns = f"{report.campaigns} campaign{'s' if report.campaigns != 1 else ''}"
    templates = f"{report.templates} template{'s' if report.templates != 1 else ''}"
    typer.echo(f"ok: {campaigns}, {templates}{config} are valid")
