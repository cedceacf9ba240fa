"""The ``followup`` command line: the contract scripts and CI rely on (CAMPAIGN_FORMAT.md).

Each command's module is imported only when that command runs (or ``--help`` lists it), so
``followup tick`` from cron pays for the engine's pass and not for every other command.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

import typer

from engine.cli.lazy import LazyGroup, Loader, attribute
from engine.cli.plugins import plugin_commands

# In the order `followup --help` lists them; the plugins' groups come after `providers`.
COMMANDS = {
    "ingest": "engine.cli.ingest_command:ingest",
    "validate": "engine.cli.validate_command:validate",
    "simulate": "engine.cli.simulate_command:simulate",
    "preview": "engine.cli.preview_command:preview",
    "tick": "engine.cli.run_command:tick",
    "run": "engine.cli.run_command:run",
    "serve": "engine.cli.serve_command:serve",
    "status": "engine.cli.status_command:status",
    "explain": "engine.cli.status_command:explain",
    "report": "engine.cli.report_command:report",
    "worker": "engine.cli.worker_command:worker",
    "enqueue-pass": "engine.cli.worker_command:enqueue_pass",
    "state": "engine.cli.state_command:state_app",
    "customers": "engine.cli.customers_command:customers_app",
    "samples": "engine.cli.samples_command:samples_app",
    "providers": "engine.cli.providers_command:providers_app",
    "keys": "engine.cli.keys_command:keys_app",
    "rejects": "engine.cli.rejects_command:rejects_app",
}


class FollowupGroup(LazyGroup):
    """The root group: the built-in commands, then the plugins' (``followup calls``)."""

    loaders: ClassVar[Mapping[str, Loader]] = {n: attribute(s) for n, s in COMMANDS.items()}
    extra_after = "providers"

    @staticmethod
    def extra() -> Mapping[str, Loader]:
        """The command groups of the ``followup.commands`` entry points."""
        return plugin_commands()


app = typer.Typer(
    name="followup",
    cls=FollowupGroup,
    help="Marketing automation and retargeting: one unified state per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option(help="The project config (default: ./followup.yaml).", show_default=False),
    ] = None,
) -> None:
    """followup reads followup.yaml from the current folder unless --config names another."""


def main() -> None:
    """Entry point of the ``followup`` console script."""
    app()
