"""Commands that providers bring (``followup calls`` from the call-list provider): typer apps
registered under the entry-point group ``followup.commands``, by command name. The core lists
them without importing any integration itself."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

GROUP = "followup.commands"


def add_plugin_commands(app: typer.Typer) -> None:
    """Add every registered command group to ``app``."""
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        app.add_typer(point.load(), name=point.name)
