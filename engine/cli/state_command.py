"""``followup state rebuild``: the derived customer state, recomputed from the event log."""

from __future__ import annotations

import typer

from engine.cli.context import ConfigOption, console, open_engine

state_app = typer.Typer(help="The derived customer state.", no_args_is_help=True)


@state_app.command("rebuild")
def rebuild(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Recompute every profile from the event log (the log is the truth)."""
    with open_engine(ctx) as followup:
        summary = followup.rebuild_states()
    console.print(
        f"rebuilt {summary.customers:,} profiles from the event log; "
        f"{summary.changed:,} differed from the stored state"
    )
