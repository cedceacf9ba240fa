"""``followup customers list|show``: the unified profiles, as tables or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.columns import Columns
from rich.panel import Panel
from rich.table import Table

from engine.cli.context import ConfigOption, console, fail, open_engine

if TYPE_CHECKING:
    from engine.profiles import CustomerProfile
    from engine.state.profile import CustomerState


customers_app = typer.Typer(help="Look at unified customer profiles.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _money(value: float) -> str:
    return f"{value:,.2f}"


_SHOWN_PROPERTIES = (
    "product_id",
    "name",
    "price",
    "quantity",
    "order_id",
    "revenue",
    "total",
    "channel",
    "list",
    "outcome",
)


def _event_summary(properties: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={properties[key]}" for key in _SHOWN_PROPERTIES if key in properties)


@customers_app.command("list")
def list_customers(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many customers, latest seen first.")] = 20,
    config: ConfigOption = None,
) -> None:
    """The customers seen last, with their orders, cart and channels."""
    with open_engine(ctx) as followup, followup.engine.connect() as conn:
        counts = followup.ingestor.store.counts(conn)
        rows = followup.ingestor.store.recent_customers(conn, limit)
    table = Table(
        title=f"{counts['customers']:,} customers from {counts['events']:,} events "
        f"({counts['merges']:,} profiles merged); latest seen first",
        title_justify="left",
    )
    for column in (
        "id",
        "user id",
        "email",
        "events",
        "orders",
        "spent",
        "cart",
        "channels",
        "last seen",
    ):
        table.add_column(
            column, justify="right" if column in ("events", "orders", "spent", "cart") else "left"
        )
    for customer_id, state in rows:
        table.add_row(
            customer_id,
            state.user_id or "-",
            state.email or "-",
            f"{state.event_count:,}",
            f"{state.orders.count:,}",
            _money(state.orders.total),
            _money(state.cart.value) if state.cart.items else "-",
            ", ".join(sorted(state.channels)),
            _when(state.last_seen_at),
        )
    console.print(table)


def _profile_panel(profile: CustomerProfile) -> Panel:
    state = profile.state
    table = Table.grid(padding=(0, 2))
    name = " ".join(n for n in (state.first_name, state.last_name) if n) or "-"
    for label, value in (
        ("id", profile.id),
        ("user id", state.user_id or "-"),
        ("name", name),
        ("email", state.email or "-"),
        ("phone", state.phone or "-"),
        ("timezone", state.timezone or "-"),
        ("locale", state.locale or "-"),
        ("channels", ", ".join(sorted(state.channels)) or "-"),
        ("first seen", _when(state.first_seen_at)),
        ("last seen", _when(state.last_seen_at)),
        ("events", f"{state.event_count:,}"),
    ):
        table.add_row(label, value)
    return Panel(table, title="profile", expand=False)


def _consent_panel(state: CustomerState) -> Panel:
    table = Table.grid(padding=(0, 2))
    consent = state.consent
    for channel in ("email", "sms", "call", "ads"):
        table.add_row(channel, "yes" if getattr(consent, channel) else "no")
    return Panel(table, title="consent", expand=False)


def _orders_panel(state: CustomerState) -> Panel:
    orders = state.orders
    table = Table.grid(padding=(0, 2))
    table.add_row("count", f"{orders.count:,}")
    table.add_row("total", _money(orders.total))
    table.add_row("refunded", _money(orders.refunded))
    table.add_row("last", _when(orders.last_at))
    return Panel(table, title="orders", expand=False)


def _print_profile(profile: CustomerProfile) -> None:
    state = profile.state
    console.print(Columns([_profile_panel(profile), _consent_panel(state), _orders_panel(state)]))
    if state.cart.items:
        cart = Table(
            title=f"cart: {_money(state.cart.value)} (updated {_when(state.cart.updated_at)})",
            title_justify="left",
        )
        for column in ("product", "name", "price", "quantity"):
            cart.add_column(column)
        for item in state.cart.items:
            cart.add_row(
                item.product_id, item.name or "-", _money(item.price), f"{item.quantity:g}"
            )
        console.print(cart)
    if state.orders.recent:
        orders = Table(title="recent orders", title_justify="left")
        for column in ("at", "order", "channel", "total"):
            orders.add_column(column)
        for order in reversed(state.orders.recent[-5:]):
            orders.add_row(
                _when(order.at), order.order_id or "-", order.channel, _money(order.total)
            )
        console.print(orders)
    console.print("identities: " + ", ".join(profile.identity_keys))
    for merge in profile.merges:
        console.print(
            f"merged {merge.merged_id} at {_when(merge.at)} by event "
            f"{merge.message_id} ({', '.join(merge.linked_keys)})",
        )
    events = Table(
        title=f"latest {len(profile.recent_events)} events across channels", title_justify="left"
    )
    for column in ("at", "channel", "event", "details", "source"):
        events.add_column(column)
    for stored in profile.recent_events:
        event = stored.event
        events.add_row(
            _when(event.timestamp),
            event.channel,
            event.name or event.type.value,
            _event_summary(event.properties),
            stored.source or "-",
        )
    console.print(events)


@customers_app.command("show")
def show_customer(
    ctx: typer.Context,
    reference: Annotated[
        str,
        typer.Argument(
            metavar="EMAIL|ID", help="Customer id, userId, email, phone or anonymousId."
        ),
    ],
    events: Annotated[int, typer.Option(help="How many recent events to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """One unified profile and its recent events across channels."""
    from engine.state.codec import profile_to_json

    with open_engine(ctx) as followup:
        profile = followup.profile(reference, recent=events)
    if profile is None:
        raise fail(f"no customer is known as {reference!r}")
    if as_json:
        document = {
            "id": profile.id,
            "identities": list(profile.identity_keys),
            "merged": [m.merged_id for m in profile.merges],
            "state": profile_to_json(profile.state),
        }
        console.out(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    _print_profile(profile)
