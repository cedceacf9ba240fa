"""What every command shares: the ``--config`` option, the consoles and error reporting."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.api import Followup

# Piped output (make run, CI logs, `| less`) gets room for the tables unless COLUMNS says otherwise.
# Tables fit the width; a message line is never broken (a path in it stays whole, for a script or a
# copy), the terminal wraps it.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140
console = Console(highlight=False, width=_WIDTH, soft_wrap=True)
errors = Console(stderr=True, highlight=False, width=_WIDTH, soft_wrap=True)

EXIT_OK = 0
EXIT_PROBLEMS = 1  # the command ran, and found problems in its input (rejects, invalid files)
EXIT_ERROR = 2  # the command could not run (bad config, unreachable database, missing file)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="The project config (default: ./followup.yaml).", show_default=False
    ),
]


def config_path(ctx: typer.Context) -> Path | None:
    """The ``--config`` given to the command, or else to ``followup`` itself, if any."""
    value = ctx.params.get("config") or ctx.find_root().params.get("config")
    return Path(value) if value else None


def time_option(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time given as ``option`` (``None`` when not given); a bad one ends the
    command with ``error: OPTION: ...``."""
    if value is None:
        return None
    from engine.events import EventInvalid, parse_timestamp

    try:
        return parse_timestamp(value, option)
    except EventInvalid as exc:
        raise fail(f"{option}: {exc.message}") from None


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(EXIT_ERROR)


@contextmanager
def open_engine(ctx: typer.Context) -> Iterator[Followup]:
    """The project's engine, closed afterwards; followup's own errors end the command cleanly."""
    from engine.api import Followup

    try:
        followup = Followup.open(config_path(ctx))
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    try:
        yield followup
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    finally:
        followup.close()
