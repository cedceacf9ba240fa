"""Commands that providers bring (``followup calls`` from the call-list provider): typer apps
registered under the entry-point group ``followup.commands``, by command name. The core lists
them without importing any integration itself, and loads one only when it is looked up."""

from __future__ import annotations

from engine.cli.lazy import Loader
from engine.plugin_groups import COMMANDS

GROUP = COMMANDS


def plugin_commands() -> dict[str, Loader]:
    """The loader of every registered command group, by name."""
    from importlib.metadata import entry_points

    return {point.name: point.load for point in entry_points(group=GROUP)}
