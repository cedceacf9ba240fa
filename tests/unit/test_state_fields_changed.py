"""What an event can change of a customer's state (``StateReducer.fields_changed``): the
segment check of ``simulate`` leaves a state unfolded when the events not in it yet change
nothing its condition reads, so an event must never change a field it does not name, in order
or late, alone or folded in a run with others."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import Event, parse_message
from engine.state.profile import TRAIT_PROPERTIES, CustomerState
from engine.state.reducers import STATE_FIELDS, StateReducer

START = datetime(2024, 5, 1, tzinfo=UTC)
reducer = StateReducer("US")

TRACKS = [
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    "Subscribed",
    "Unsubscribed",
    "Subscription Confirmed",
    "Call Completed",
]


@st.composite
def _message(draw: st.DrawFn, number: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    at = START + timedelta(minutes=draw(st.integers(0, 600)))
    found: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{number}",
        "timestamp": at.isoformat(),
        "userId": draw(st.sampled_from(["u1", "u2"])),
        "channel": draw(st.sampled_from(["web", "pos"])),
    }
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["timezone"] = draw(st.sampled_from(["Europe/Paris", "Nowhere/Else"]))
    if draw(st.booleans()):
        context["locale"] = draw(st.sampled_from(["fr-FR", "en-US"]))
    if draw(st.booleans()):
        context["traits"] = {"first_name": draw(st.sampled_from(["Ann", "Bo"]))}
    if context:
        found["context"] = context
    if kind == "identify":
        found["traits"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "email": st.just("a@example.com"),
                    "timezone": st.sampled_from(["America/New_York", "Asia/Tokyo"]),
                    "consent": st.fixed_dictionaries({"email": st.booleans()}),
                    "vip": st.booleans(),
                },
            )
        )
    elif kind == "track":
        name = found["event"] = draw(st.sampled_from(TRACKS))
        properties: dict[str, Any] = {"list": "newsletter"}
        if name.startswith("Product"):
            properties.update(product_id=draw(st.sampled_from(["p1", "p2"])), price=20)
        elif name in ("Cart Viewed", "Checkout Started"):
            properties["products"] = [{"product_id": "p1", "price": 20, "quantity": 2}]
        elif name.startswith("Order"):
            properties.update(order_id=draw(st.sampled_from(["o1", "o2"])), revenue=30)
        found["properties"] = properties
    elif kind == "alias":
        found["previousId"] = "anon-1"
    elif kind == "group":
        found["groupId"] = "g1"
    return found


def _events(messages: list[dict[str, Any]]) -> list[Event]:
    return [
        event
        for arrival, message in enumerate(messages, 1)
        for event in parse_message(message, arrival=arrival)
    ]


def _differing(before: CustomerState, after: CustomerState) -> set[str]:
    return {name for name in STATE_FIELDS if getattr(before, name) != getattr(after, name)}


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(*(_message(i) for i in range(n)))))
def test_an_event_changes_no_field_it_does_not_name(messages: tuple[dict[str, Any], ...]) -> None:
    events = _events(list(messages))
    state = CustomerState()
    for index, event in enumerate(events):
        before = reducer.fold(events[:index])
        after = reducer.fold(events[: index + 1])  # in order, or late: the fold sorts
        assert _differing(before, after) <= reducer.fields_changed(event), event
        extended = reducer.extend(state, [event])  # on top of the state kept so far
        if extended is not None:
            assert _differing(state, extended) <= reducer.fields_changed(event), event
            state = extended
        else:
            state = after


def _one(**message: Any) -> Event:
    [event] = parse_message({"userId": "u1", "timestamp": START.isoformat(), **message})
    return event


def test_an_event_without_traits_leaves_the_traits_and_the_other_parts() -> None:
    view = _one(type="track", event="Product Viewed", messageId="v")
    assert {"traits", "cart", "orders", "consent"}.isdisjoint(reducer.fields_changed(view))
    order = _one(type="track", event="Order Completed", messageId="o")
    assert {"orders", "cart"} <= reducer.fields_changed(order)
    assert "traits" not in reducer.fields_changed(order)
    identify = _one(type="identify", messageId="i", traits={"vip": True})
    assert reducer.fields_changed(identify) == STATE_FIELDS


def test_the_state_properties_read_the_traits_alone() -> None:
    """The segment check takes a condition on ``customer.email`` to read the traits: every
    property of the state must be listed, and read nothing else."""
    properties = {
        name for name, value in vars(CustomerState).items() if isinstance(value, property)
    }
    assert properties == set(TRAIT_PROPERTIES)
    traits = {"email": "a@example.com", "phone": "+14155550100", "first_name": "A"}
    traits["last_name"] = "B"
    plain = CustomerState(traits=traits)
    busy = dataclasses.replace(plain, user_id="u9", channels=frozenset({"web"}), event_count=3)
    for name in TRAIT_PROPERTIES:
        assert getattr(plain, name) == getattr(busy, name) == traits[name]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 12).flatmap(lambda n: st.tuples(*(_message(i) for i in range(n)))),
    st.lists(st.integers(1, 11), max_size=4),
)
def test_the_traits_come_in_one_order_however_the_events_are_folded(
    messages: tuple[dict[str, Any], ...], cuts: list[int]
) -> None:
    """Folded in runs as they arrive (later ones late, as simulate and each durable batch do)
    or all at once, a state holds the same traits in the same order: a condition or template
    listing them (``customer.traits|list``) reads the same in simulate and live; and so the
    keys of when each trait and context value was set."""
    events = _events(list(messages))
    whole = reducer.fold(events)
    state = CustomerState()
    bounds = [0, *sorted({cut for cut in cuts if cut < len(events)}), len(events)]
    for start, end in itertools.pairwise(bounds):
        state = reducer.extend(state, events[start:end]) or reducer.fold(events[:end])
    assert state == whole
    for name in ("traits", "traits_at", "context_at"):
        assert list(getattr(state, name).items()) == list(getattr(whole, name).items()), name
