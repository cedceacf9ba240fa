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


def test_a_state_read_for_some_fields_is_folded_only_when_they_may_have_changed() -> None:
    """``state_reading``: the segment check reads a few fields at every event; events that
    change none of them (a page view, for a condition on orders) are left to fold later, in
    one run with the next, and what it reads is always the current value."""
    customers = InMemoryCustomers(reducer)
    shopper = customers.apply(ev("Order Completed", 0, userId="u1", properties={"order_id": "o1"}))
    folded = customers.state(shopper.customer_id)
    customers.apply(ev("Product Viewed", 1, userId="u1"))
    customers.apply(ev("Product Added", 2, userId="u1", properties={"product_id": "p1"}))
    orders = frozenset({"orders"})
    assert customers.state_reading(shopper.customer_id, orders) is folded  # left unfolded
    seen = customers.state_reading(shopper.customer_id, frozenset({"last_seen_at"}))
    assert seen is not folded and seen == reducer.fold(customers.history(shopper.customer_id))
    customers.apply(ev("Order Completed", 3, userId="u1", properties={"order_id": "o2"}))
    assert customers.state_reading(shopper.customer_id, orders).orders.count == 2
    customers.apply(ev("Product Viewed", 4, userId="u1", traits={"vip": True}))  # traits
    assert customers.state_reading(shopper.customer_id, orders).traits == {"vip": True}
    device = customers.apply(ev("Order Completed", 5, anonymousId="a1"))
    customers.state(device.customer_id)
    merged = customers.apply(ev("Product Viewed", 6, userId="u1", anonymousId="a1"))
    assert merged.merged  # the device's profile went into the shopper's
    state = customers.state_reading(merged.customer_id, orders)  # a merge folds it all
    assert state == reducer.fold(customers.history(merged.customer_id))
    assert state.orders.count == 3
