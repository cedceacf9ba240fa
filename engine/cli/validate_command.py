"""``followup validate [PATH ...] [--events FILE] [--strict]``: exit 0 when every campaign, template
and the config are valid, else exit 1; one ``path:line:column: message`` line per problem on
standard output, and among them ``path:line:column: warning: message`` lines for the names no event
or trait in the sample data sets (``--events``, else the project database if it exists).
Warnings leave the exit code alone, unless ``--strict`` makes the name warnings count as problems;
a warning that an environment variable a provider names is not set here never does (CI validates
without the secrets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.context import EXIT_PROBLEMS, ConfigOption, config_path


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Campaign files or folders (default: the config's campaigns folder).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help=(
                "Sample data, a Segment JSONL file: warn on names no event or trait in it sets "
                "(default: the project database, if it exists)."
            ),
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Count warnings on names as problems (exit 1); unset variables never count.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check campaigns, templates and followup.yaml; print one line per problem or warning."""
    from engine.campaigns.validate import validate_project

    report = validate_project(
        paths or None, config_path(ctx), events=events, sample_database=events is None
    )
    for finding in report.findings:
        typer.echo(str(finding))
    if not report.ok or (strict and report.warnings):
        raise typer.Exit(EXIT_PROBLEMS)
    and_config = f" and {report.config}" if report.config else ""
    campaigns = _plural(report.campaigns, "campaign")
    templates = _plural(report.templates, "template")
    count = len(report.warnings) + len(report.unset)
    warnings = f"; {_plural(count, 'warning')}" if count else ""
    typer.echo(f"ok: {campaigns}, {templates}{and_config} are valid{warnings}")
