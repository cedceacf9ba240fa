"""Simulate's customers in memory: the state read is the fold of the customer's whole history,
however the reads, merges and engine-made events fall between the events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.events import Event, EventType, parse_message
from engine.identity import identity_keys
from engine.ingest.resolver import IdentityResolver
from engine.journeys.customers import Resolved
from engine.journeys.memory_customers import InMemoryCustomers
from engine.state.reducers import StateReducer

START = datetime(2024, 5, 1, 10, tzinfo=UTC)
reducer = StateReducer("US")


def ev(name: str, minute: int, **fields: Any) -> Event:
    message: dict[str, Any] = {
        "type": "track",
        "event": name,
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "messageId": f"{name}-{minute}",
        **fields,
    }
    [event] = parse_message(message)
    return event


def test_state_read_late_is_the_fold_of_the_history_through_merges_and_updates() -> None:
    customers = InMemoryCustomers(reducer)
    anonymous = customers.apply(ev("Product Viewed", 0, anonymousId="a1")).customer_id
    known = customers.apply(ev("Product Viewed", 1, userId="u1")).customer_id
    customers.apply(ev("Product Added", 2, anonymousId="a1", properties={"product_id": "p1"}))
    assert customers.state(anonymous).event_count == 2
    customers.apply(ev("Product Viewed", 3, anonymousId="a1", context={"locale": "fr-FR"}))
    customers.apply(ev("Product Viewed", 4, userId="u1"))
    merge = customers.apply(ev("Product Viewed", 5, userId="u1", anonymousId="a1"))
    assert (merge.customer_id, merge.merged) == (anonymous, (known,))
    assert not customers.has(known)
    assert customers.ids() == [anonymous]
    update = Event(  # an update step's event, older than the state's latest
        message_id="j:0",
        type=EventType.IDENTIFY,
        name="",
        timestamp=START + timedelta(minutes=4, seconds=30),
        channel="campaign",
        traits={"tier": "gold"},
    )
    customers.append(anonymous, update)
    customers.apply(ev("Product Viewed", 6, userId="u1"))
    history = [
        ev("Product Viewed", 0, anonymousId="a1"),
        ev("Product Viewed", 1, userId="u1"),
        ev("Product Added", 2, anonymousId="a1", properties={"product_id": "p1"}),
        ev("Product Viewed", 3, anonymousId="a1", context={"locale": "fr-FR"}),
        ev("Product Viewed", 4, userId="u1"),
        ev("Product Viewed", 5, userId="u1", anonymousId="a1"),
        update,
        ev("Product Viewed", 6, userId="u1"),
    ]
    state = customers.state(anonymous)
    assert state == reducer.fold(history)
    assert (state.event_count, state.user_id, state.locale) == (8, "u1", "fr-FR")
    assert state.traits == {"tier": "gold"}
    assert customers.state(anonymous) is state  # nothing new: no fold


def test_events_resolve_as_the_resolver_does_through_links_and_merges() -> None:
    """Events carrying only ids skip the keys when their ids resolved before: the customers and
    merges are the resolver's, event by event."""
    rng = random.Random(5)
    customers = InMemoryCustomers(reducer)
    resolver = IdentityResolver({}, {})
    for minute in range(600):
        fields: dict[str, Any] = {}
        if rng.random() < 0.6:
            fields["userId"] = f"u{rng.randrange(8)}"
        if "userId" not in fields or rng.random() < 0.5:
            fields["anonymousId"] = f"a{rng.randrange(12)}"
        if rng.random() < 0.1:
            fields["properties"] = {"email": f"e{rng.randrange(4)}@example.com"}
        event = ev("Product Viewed", minute, **fields)
        merges = len(resolver.result.merges)
        expected = resolver.resolve(identity_keys(event), event.timestamp, event.message_id)
        merged = tuple(record.merged_id for record in resolver.result.merges[merges:])
        assert customers.apply(event) == Resolved(expected, merged)
    assert len(resolver.result.merges) > 5  # the ids did link profiles
    assert customers.ids() == sorted(
        {resolver.result.final(c) for c in resolver.result.customer_of_event}
    )
