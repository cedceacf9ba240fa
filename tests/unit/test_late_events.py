"""Property: a customer's state is a function of their events, whatever order they arrive in.

Random histories of every kind of event the reducers read (traits, consent both ways, context
time zones and locales, user ids, channels, cart adds, removals and snapshots, orders reported
twice, refunds with and without an amount, before and after their order) are delivered in a
random order, in random batches, each batch folded into the state as stored and read back
(as ingest does). The result must be the state of the whole history folded in event order, and
no batch may need the history read again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import Event, parse_message
from engine.state.codec import state_from_json, state_to_json
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer

START = datetime(2024, 5, 1, 10, tzinfo=UTC)
reducer = StateReducer("US")

PRODUCTS = ["p1", "p2", "p3"]
ORDERS = ["o1", "o2", "o3", None]
ZONES = ["Europe/Paris", "America/Chicago", "Not/AZone"]


@st.composite
def message(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "identify",
                "Subscribed",
                "Unsubscribed",
                "Page",
                "Product Added",
                "Product Removed",
                "Cart Viewed",
                "Order Completed",
                "Order Refunded",
            ]
        )
    )
    found: dict[str, Any] = {"userId": draw(st.sampled_from(["u1", "u2"]))}
    if draw(st.booleans()):
        found["channel"] = draw(st.sampled_from(["web", "pos", "call"]))
    if draw(st.integers(0, 3)) == 0:
        found["context"] = {
            "timezone": draw(st.sampled_from(ZONES)),
            "locale": draw(st.sampled_from(["fr-FR", "en-US"])),
        }
    if kind == "identify":
        traits: dict[str, Any] = {
            draw(st.sampled_from(["plan", "firstName", "first_name", "email"])): draw(
                st.sampled_from(["a", "b", "c@x.com"])
            )
        }
        if draw(st.booleans()):
            traits["timezone"] = draw(st.sampled_from(ZONES))
        if draw(st.booleans()):
            traits["consent"] = {draw(st.sampled_from(["email", "Ads"])): draw(st.booleans())}
        return {"type": "identify", "traits": traits, **found}
    properties: dict[str, Any] = {}
    if kind in ("Subscribed", "Unsubscribed"):
        properties["channel"] = draw(st.sampled_from(["email", "call"]))
    elif kind in ("Product Added", "Product Removed"):
        properties["product_id"] = draw(st.sampled_from(PRODUCTS))
        properties["quantity"] = draw(st.integers(1, 3))
        properties["price"] = draw(st.integers(1, 50))
    elif kind == "Cart Viewed":
        properties["products"] = [
            {"product_id": p, "price": 5} for p in draw(st.lists(st.sampled_from(PRODUCTS)))
        ]
    elif kind == "Order Completed":
        properties["order_id"] = draw(st.sampled_from(ORDERS))
        properties["total"] = draw(st.integers(1, 100))
    elif kind == "Order Refunded":
        properties["order_id"] = draw(st.sampled_from(ORDERS))
        if draw(st.booleans()):
            properties["total"] = draw(st.integers(1, 20))
    return {"type": "track", "event": kind, "properties": properties, **found}


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    messages = draw(st.lists(message(), min_size=1, max_size=30))
    events = []
    for arrival, found in enumerate(messages, start=1):
        # few distinct times, so that ties (broken by arrival) come up too
        minute = draw(st.integers(0, 12))
        found["timestamp"] = (START + timedelta(minutes=minute)).isoformat()
        found["messageId"] = f"m{arrival}"
        events.extend(parse_message(found, arrival=arrival))
    return events


def _stored(state: CustomerState) -> CustomerState:
    return state_from_json(state_to_json(state))


@settings(max_examples=300, deadline=None)
@given(history=histories(), data=st.data())
def test_any_arrival_order_and_batching_gives_the_state_of_the_whole_history(
    history: list[Event], data: st.DataObject
) -> None:
    expected = reducer.fold(history)
    arrivals = data.draw(st.permutations(history), label="arrival order")
    state = CustomerState()
    while arrivals:
        size = data.draw(st.integers(1, len(arrivals)), label="batch")
        batch, arrivals = arrivals[:size], arrivals[size:]
        extended = reducer.extend(_stored(state), batch)
        assert extended is not None  # no history read again
        state = extended
    assert _stored(state) == _stored(expected)
    assert state_to_json(state) == state_to_json(expected)
