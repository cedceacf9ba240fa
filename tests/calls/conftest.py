"""Call-list fixtures: the engine on the backend under test, its call-list provider, a known
customer, and deliveries as the dispatcher builds them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.channels import Delivery, DeliveryAction, Recipient
from integrations.calls import CallListProvider
from integrations.calls.tables import call_entries
from tests.conftest import TickingClock

DUE = datetime(2024, 6, 3, 13, 0, tzinfo=UTC)  # a Monday; 08:00 in Chicago


def recipient(customer_id: str, **changes: Any) -> Recipient:
    """Jane in Chicago, as the dispatcher describes her."""
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "user_id": "u_jane",
        "email": "jane@example.com",
        "phone": "+1 (415) 555-0100",
        "first_name": "Jane",
        "last_name": "Doe",
        "timezone": "America/Chicago",
    }
    values.update(changes)
    return Recipient(**values)


def call(
    who: Recipient,
    journey: str = "j_0001",
    step: str = "3.then.0",
    action: DeliveryAction = DeliveryAction.SEND,
    **fields: Any,
) -> Delivery:
    """A call delivery as the durable runtime fills it (see engine/durable/content.py)."""
    values: dict[str, Any] = {
        "list": "high-value-carts",
        "priority": "high",
        "cart_value": 249.5,
        "window_start": "08:00",
        "window_end": "21:00",
    }
    values.update(fields)
    return Delivery(
        key=f"{journey}:{step}",
        campaign="abandoned-cart",
        journey=journey,
        step=step,
        channel="call",
        action=action,
        due_at=DUE,
        recipient=who,
        fields={k: v for k, v in values.items() if v is not None},
    )


def entries(db: sa.Engine) -> list[dict[str, Any]]:
    """Every call entry, as dicts, by id."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(call_entries).order_by(call_entries.c.id))
        return [dict(row._mapping) for row in rows]


@pytest.fixture
def jane(followup: Followup) -> str:
    """A customer with a userId, a phone and call consent; her customer id."""
    followup.identify(
        user_id="u_jane",
        traits={
            "email": "jane@example.com",
            "phone": "+14155550100",
            "firstName": "Jane",
            "timezone": "America/Chicago",
            "consent": {"call": True},
        },
        message_id="jane-identify",
    )
    found = followup.customer_id("u_jane")
    assert found is not None
    return found


@pytest.fixture
def provider(followup: Followup, clock: TickingClock) -> CallListProvider:
    """The provider on the engine's database (closed with the engine)."""
    return CallListProvider(followup.engine, clock=clock)
