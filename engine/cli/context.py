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


def writable_output(option: str, path: Path) -> None:
    """Fail before any work when ``path`` cannot take the output file (a folder of that name,
    a parent that is a file), rather than after it with a traceback."""
    if path.is_dir():
        raise fail(f"{option} {path}: is a folder; name a file")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise fail(f"{option} {path}: {parent} is a file, not a folder")
    if parent is not None and not os.access(parent, os.W_OK):
        raise fail(f"{option} {path}: cannot write in {parent}")


def database_problem(exc: Exception) -> str:
    """What a database error the command could not get past says, and what to do."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    hint = "check database_url in followup.yaml (or FOLLOWUP_DATABASE_URL)"
    if "locked" in reason:
        hint = "another process holds the SQLite file locked; run the command again when it is done"
    return f"the database cannot be used: {reason}; {hint} (what was committed is kept)"


@contextmanager
def open_engine(ctx: typer.Context) -> Iterator[Followup]:
    """The project's engine, closed afterwards; followup's own errors and a database the
    command cannot use (not a database, locked past the wait, out of reach) end the command
    cleanly, with exit 2."""
    from sqlalchemy.exc import DBAPIError

    from engine.api import Followup

    try:
        followup = Followup.open(config_path(ctx))
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    except DBAPIError as exc:
        raise fail(database_problem(exc)) from exc
    try:
        yield followup
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    except DBAPIError as exc:
        raise fail(database_problem(exc)) from exc
    finally:
        followup.close()
