"""``followup keys create|list|revoke``: keys of the HTTP service.

A ``write`` key (the default) sends events to the ingest API; a ``dashboard`` key logs in to the
read-only dashboard. A key is printed once, when it is made; only its SHA-256 is stored.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.cli.context import ConfigOption, console, fail, open_engine
from engine.journeys.plan import format_time
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
    console.print(key, soft_wrap=True)


@keys_app.command("list")
def list_keys(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Every key (never the key itself): id, name, role, prefix, rate, created, revoked."""
    from engine.service.keys import KeyStore

    with open_engine(ctx) as followup:
        found = KeyStore(followup.engine).list()
    table = Table(box=box.SIMPLE)
    for column in ("id", "name", "role", "prefix", "rate", "created", "revoked"):
        table.add_column(column)
    for key in found:
        table.add_row(
            key.id,
            escape(key.name),
            key.role,
            key.prefix + "…",
            f"{key.rate:g}/s" if key.rate is not None else "-",
            format_time(key.created_at),
            format_time(key.revoked_at) if key.revoked_at else "-",
        )
    console.print(table)


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
