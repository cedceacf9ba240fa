"""The light evaluation path of conditions gives what Jinja2's own call gives, value for value,
sandbox rules included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import SecurityError

from engine.campaigns.expressions import compile_expression, sandbox
from engine.campaigns.fast_context import QuickRun
from engine.campaigns.loader import load_campaigns
from engine.ingest.jsonl import read_jsonl
from engine.journeys.context import names
from engine.journeys.memory_customers import InMemoryCustomers
from engine.state.reducers import StateReducer

ROOT = Path(__file__).resolve().parents[2]
EXTRA = [
    "customer.traits.plan == 'gold' or customer.traits.missing.deeper",
    "customer.cart.items | length > 1 and customer.cart.value >= 50",
    "(now - customer.last_seen_at).days > 3 if customer.last_seen_at else 'never'",
    "customer.traits.get('plan', 'none') ~ '-' ~ customer.orders.count",
    "event.properties.price * 2 > 100",
    "customer.email is defined and customer.email.endswith('@example.com')",
    "[1, 2, customer.orders.count][2] + days(1).days",
]


def _conditions() -> list[str]:
    found = set(EXTRA)
    for campaign in load_campaigns([ROOT / "campaigns"]).require().values():
        for attr in ("audience",):
            if getattr(campaign, attr) is not None:
                found.add(getattr(campaign, attr).source)
        trigger = campaign.trigger
        for attr in ("where", "segment"):
            expression = getattr(trigger, attr, None)
            if expression is not None:
                found.add(expression.source)
    return sorted(found)


@cache
def _scopes() -> list[dict[str, Any]]:
    customers = InMemoryCustomers(StateReducer("US"))
    scopes = []
    now = datetime(2024, 6, 1, tzinfo=UTC)
    for record in read_jsonl(ROOT / "docs/examples/stories/events.jsonl"):
        for event in getattr(record, "events", []):
            customer_id = customers.apply(event).customer_id
            scope = names(customer_id, customers.state(customer_id), event, now)
            scopes.append(scope)
            now += timedelta(hours=7)
    return scopes


@pytest.mark.parametrize("source", _conditions())
def test_the_light_path_gives_what_jinja_gives(source: str) -> None:
    expression = compile_expression(source)
    jinja = sandbox().compile_expression(source)
    for scope in _scopes():
        try:
            expected: Any = jinja(**scope)
        except Exception as exc:  # noqa: BLE001 - the same failure is expected
            with pytest.raises(type(exc)):
                expression.evaluate(scope)
            continue
        assert expression.evaluate(scope) == expected


def test_the_sandbox_still_refuses_what_it_refuses() -> None:
    source = "event.mro()"  # an attribute the sandbox keeps out
    compiled = sandbox().compile_expression(source)
    with pytest.raises(SecurityError, match="'mro' of 'type' object is unsafe"):
        compiled(event=str)
    quick = QuickRun(sandbox(), compiled)
    for _ in range(2):  # the second time from the remembered verdict
        with pytest.raises(SecurityError, match="'mro' of 'type' object is unsafe"):
            quick({"event": str})
