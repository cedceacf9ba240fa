"""``followup keys create|list|revoke``: keys of the HTTP service.

A ``write`` key (the default) sends events to the ingest API; a ``dashboard`` key logs in to the
read-only dashboard. A key is printed once, when it is made; only its SHA-256 is stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import ConfigOption, console, fail, open_engine
from engine.service.roles import ROLES, WRITE

keys_app = typer.Typer(
    help="Keys of the HTTP service (followup serve): write keys for the ingest API, dashboard "
    "keys for the dashboard.",
    no_args_is_help=True,
)


def parse_rate(text: str) -> float:
    """``10/s``, ``600/m`` or a bare number of requests a second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter("write a positive rate such as 10/s, 600/m or 5")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) / per


@keys_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the shop's backend.")] = (
        "default"
    ),
    rate: Annotated[
        str | None,
        typer.Option(help="Requests a second allowed with this key, e.g. 50/s (default: none)."),
    ] = None,
    role: Annotated[
        str,
        typer.Option(
            help="write: sends events to the ingest API; dashboard: logs in to /dashboard."
        ),
    ] = WRITE,
    config: ConfigOption = None,
) -> None:
    """Make a key and print it (the only time it is shown)."""
    from engine.service.keys import KeyStore

    if role not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}", param_hint="--role")
    per_second = parse_rate(rate) if rate is not None else None
    with open_engine(ctx) as followup:
        record, key = KeyStore(followup.engine).create(name, per_second, followup.clock(), role)
    console.print(f"created {record.id} ({escape(name)}, {role}); the key, shown only now:")
    console.print(key)


@keys_app.command("list")
def list_keys(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Every key (never the key itself): id, name, role, prefix, rate, when made and revoked."""
    from engine.service.keys import KeyStore

    with open_engine(ctx) as followup:
        found = KeyStore(followup.engine).list()
    # An 80-column terminal has room for every id and prefix whole (revoke takes the id); the
    # name and the times (UTC) wrap at their spaces instead.
    table = Table(box=box.SIMPLE, pad_edge=False, collapse_padding=True)
    for column in ("id", "name", "role", "prefix", "rate", "created, revoked"):
        wraps = column in ("name", "created, revoked")
        table.add_column(column, no_wrap=not wraps, min_width=10 if wraps else None)
    for key in found:
        revoked = f" revoked {_to_the_second(key.revoked_at)}" if key.revoked_at else ""
        table.add_row(
            key.id,
            escape(key.name),
            key.role,
            key.prefix + "…",
            f"{key.rate:g}/s" if key.rate is not None else "-",
            _to_the_second(key.created_at) + revoked,
        )
    console.print(table)


def _to_the_second(value: datetime) -> str:
    """``2024-06-01 12:00:00``: UTC, with a space the table may wrap at."""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (followup keys list).")],
    config: ConfigOption = None,
) -> None:
    """Stop accepting a key at once (a dashboard key's sessions end too)."""
    from engine.service.keys import KeyStore

    with open_engine(ctx) as followup:
        record = KeyStore(followup.engine).revoke(key_id, followup.clock())
    if record.revoked_at is None:  # pragma: no cover - revoke always sets it
        raise fail(f"{key_id} was not revoked")
    console.print(f"revoked {record.id} ({escape(record.name)})")
