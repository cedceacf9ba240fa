"""Every reducer of the unified state, and the fold in event-time order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import Event, EventInvalid, parse_message
from engine.state.cart import CHANGES_KEPT
from engine.state.codec import state_from_json, state_to_json
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer, snake_case

START = datetime(2024, 5, 1, 10, tzinfo=UTC)
reducer = StateReducer("US")
_arrivals = itertools.count(1)  # each event made here arrives after the ones made before


def ev(kind: str, minute: int = 0, **fields: Any) -> Event:
    message: dict[str, Any] = {
        "type": "identify" if kind == "identify" else "track",
        "userId": "u1",
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "messageId": f"{kind}-{minute}",
        **fields,
    }
    if kind != "identify":
        message["event"] = kind
    [event] = parse_message(message, arrival=next(_arrivals))
    return event


def fold(*events: Event) -> CustomerState:
    return reducer.fold(events)


def added(product: str, price: float, minute: int = 0, **extra: Any) -> Event:
    return ev("Product Added", minute, properties={"product_id": product, "price": price, **extra})


# --- seen ---------------------------------------------------------------------------------------


def test_seen_times_channels_count_and_user_id() -> None:
    state = fold(ev("Product Viewed", 5), ev("Order Completed", 1, channel="pos"))
    assert state.first_seen_at == START + timedelta(minutes=1)
    assert state.last_seen_at == START + timedelta(minutes=5)
    assert state.channels == {"web", "pos"}
    assert state.event_count == 2
    assert state.user_id == "u1"
    assert state.watermark is not None
    assert state.watermark[0] == START + timedelta(minutes=5)


def test_timezone_and_locale_from_context_unless_traits_say() -> None:
    state = fold(ev("Page", 0, context={"timezone": "Europe/Paris", "locale": "fr-FR"}))
    assert (state.timezone, state.locale) == ("Europe/Paris", "fr-FR")
    state = fold(
        ev("identify", 0, traits={"timezone": "America/Chicago", "locale": "en-US"}),
        ev("Page", 1, context={"timezone": "Europe/Paris", "locale": "fr-FR"}),
    )
    assert (state.timezone, state.locale) == ("America/Chicago", "en-US")


def test_unknown_timezone_is_ignored() -> None:
    assert fold(ev("identify", 0, traits={"timezone": "Mars/Olympus"})).timezone is None


@pytest.mark.parametrize("written", ["europe/paris", " Europe/Paris ", "EUROPE/PARIS"])
def test_a_timezone_trait_in_another_case_is_the_zone_it_names(written: str) -> None:
    """A form or a CSV export writes ``europe/paris``: the customer is in Paris (quiet hours
    and ``wait: {until}`` in Paris time), not silently in the project's zone."""
    assert fold(ev("identify", 0, traits={"timezone": written})).timezone == "Europe/Paris"
    offset = fold(ev("identify", 0, traits={"timezone": "+09:00"}))  # not a zone's name
    assert offset.timezone is None


# --- traits -------------------------------------------------------------------------------------


def test_traits_merge_latest_wins_and_are_normalised() -> None:
    state = fold(
        ev("identify", 0, traits={"firstName": "Ann", "email": " ANN@X.COM", "plan": "free"}),
        ev("identify", 1, traits={"plan": "pro", "phone": "415 555 0100"}),
    )
    assert state.traits == {
        "first_name": "Ann",
        "email": "ann@x.com",
        "plan": "pro",
        "phone": "+14155550100",
    }
    assert (state.first_name, state.email, state.phone) == ("Ann", "ann@x.com", "+14155550100")


def test_track_context_traits_count_too() -> None:
    state = fold(ev("Order Completed", 0, context={"traits": {"email": "b@x.com"}}))
    assert state.email == "b@x.com"


def test_snake_case() -> None:
    assert snake_case("firstName") == "first_name"
    assert snake_case("createdAt") == "created_at"
    assert snake_case("email") == "email"


# --- consent ------------------------------------------------------------------------------------


def test_consent_starts_false_everywhere() -> None:
    consent = fold(ev("Product Viewed")).consent
    assert not (consent.email or consent.sms or consent.call or consent.ads)


def test_subscribed_defaults_to_email_and_names_other_channels() -> None:
    state = fold(
        ev("Subscribed", 0, properties={"list": "newsletter"}),
        ev("Subscribed", 1, properties={"channel": "sms"}),
    )
    assert state.consent.email and state.consent.sms and not state.consent.call


def test_a_channel_is_named_in_any_case() -> None:
    state = fold(
        ev("Subscribed", 0, properties={"channel": "SMS "}),
        ev("identify", 1, traits={"consent": {"Call": True, "ADS": True}}),
    )
    consent = state.consent
    assert (consent.sms, consent.call, consent.ads, consent.email) == (True, True, True, False)


def test_consent_traits_read_yes_and_no_as_a_csv_export_writes_them() -> None:
    """An opt-out written as text (``"false"``, ``No``, ``0``) is an opt-out: taken and
    ignored, it would leave the customer receiving email."""
    granted = ev("identify", 0, traits={"consent": {"email": True, "sms": True, "call": True}})
    for value, expected in (("false", False), (" No ", False), (0, False), ("0", False)):
        out = ev("identify", 1, traits={"consent": {"email": value, "sms": value, "ads": "yes"}})
        consent = fold(granted, out).consent
        assert (consent.email, consent.sms, consent.call, consent.ads) == (
            expected,
            expected,
            True,
            True,
        ), value
    assert fold(ev("identify", 0, traits={"consent": {"email": "TRUE", "sms": 1}})).consent.sms


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        ({"email": "maybe"}, "traits.consent.email"),
        ({"Email": 2}, "traits.consent.Email"),
        ({"sms": [True]}, "traits.consent.sms"),
        (False, "traits.consent"),
        ("no", "traits.consent"),
    ],
)
def test_a_consent_that_says_neither_yes_nor_no_is_refused(consent: object, field: str) -> None:
    with pytest.raises(EventInvalid) as refused:
        ev("identify", 0, traits={"consent": consent})
    assert refused.value.field == field


def test_consent_keys_of_no_channel_and_null_values_are_left_alone() -> None:
    state = fold(ev("identify", 0, traits={"consent": {"email": None, "newsletter": "weekly"}}))
    assert not state.consent.email


def test_identify_consent_traits() -> None:
    state = fold(ev("identify", 0, traits={"consent": {"email": True, "call": False, "ads": True}}))
    assert (state.consent.email, state.consent.call, state.consent.ads) == (True, False, True)
    assert "consent" not in state.traits


def test_latest_consent_by_event_time_wins_whatever_the_arrival_order() -> None:
    subscribe = ev("Subscribed", 5)
    unsubscribe = ev("Unsubscribed", 9)
    assert not reducer.fold([unsubscribe, subscribe]).consent.email
    assert not reducer.fold([subscribe, unsubscribe]).consent.email
    later_subscribe = ev("Subscribed", 12)
    assert reducer.fold([later_subscribe, unsubscribe, subscribe]).consent.email


# --- cart ---------------------------------------------------------------------------------------


def test_cart_adds_merge_quantities_and_value() -> None:
    state = fold(added("p1", 60, 0, quantity=2, name="Shoe"), added("p2", 5, 1), added("p1", 60, 2))
    assert [(i.product_id, i.quantity) for i in state.cart.items] == [("p1", 3), ("p2", 1)]
    assert state.cart.value == 185
    assert state.cart.updated_at == START + timedelta(minutes=2)


def test_cart_remove_partial_and_whole() -> None:
    state = fold(
        added("p1", 10, 0, quantity=3),
        added("p2", 5, 1),
        ev("Product Removed", 2, properties={"product_id": "p1", "quantity": 1}),
        ev("Product Removed", 3, properties={"product_id": "p2"}),
    )
    assert [(i.product_id, i.quantity) for i in state.cart.items] == [("p1", 2)]
    assert state.cart.value == 20


def test_cart_viewed_with_products_replaces_the_cart() -> None:
    state = fold(
        added("p1", 10),
        ev("Cart Viewed", 1, properties={"products": [{"product_id": "p9", "price": 7}]}),
    )
    assert [i.product_id for i in state.cart.items] == ["p9"]
    assert fold(added("p1", 10), ev("Cart Viewed", 1)).cart.items[0].product_id == "p1"


def test_order_clears_the_cart() -> None:
    state = fold(added("p1", 10), ev("Order Completed", 1, properties={"order_id": "o1"}))
    assert state.cart.items == ()
    assert state.cart.value == 0


# --- orders -------------------------------------------------------------------------------------


def test_orders_count_total_last_across_channels() -> None:
    state = fold(
        ev("Order Completed", 0, properties={"order_id": "o1", "revenue": 100}),
        ev("Order Completed", 5, channel="pos", properties={"order_id": "o2", "total": 40.5}),
    )
    assert (state.orders.count, state.orders.total) == (2, 140.5)
    assert state.orders.last_at == START + timedelta(minutes=5)
    assert state.orders.last is not None
    assert (state.orders.last.order_id, state.orders.last.channel) == ("o2", "pos")


def test_order_amount_falls_back_to_products() -> None:
    state = fold(
        ev(
            "Order Completed",
            0,
            properties={"products": [{"price": 10, "quantity": 2}, {"price": 5}]},
        )
    )
    assert state.orders.total == 25


def test_the_same_order_reported_twice_counts_once() -> None:
    state = fold(
        ev("Order Completed", 0, properties={"order_id": "o1", "total": 100}),
        ev("Order Completed", 1, channel="pos", properties={"order_id": "o1", "total": 90}),
    )
    assert (state.orders.count, state.orders.total) == (1, 90)


def test_refund_with_and_without_amount() -> None:
    state = fold(
        ev("Order Completed", 0, properties={"order_id": "o1", "total": 100}),
        ev("Order Completed", 1, properties={"order_id": "o2", "total": 30}),
        ev("Order Refunded", 2, properties={"order_id": "o1", "total": 20}),
        ev("Order Refunded", 3, properties={"order_id": "o2"}),
    )
    assert (state.orders.count, state.orders.total, state.orders.refunded) == (2, 80, 50)


# --- the fold -----------------------------------------------------------------------------------


def test_fold_is_independent_of_arrival_order() -> None:
    events = [
        added("p1", 10, 0),
        ev("identify", 1, traits={"email": "a@x.com"}),
        ev("Order Completed", 2, properties={"order_id": "o1", "total": 10}),
        added("p2", 20, 3),
        ev("Unsubscribed", 4),
    ]
    forward = reducer.fold(events)
    assert reducer.fold(list(reversed(events))) == forward
    assert [i.product_id for i in forward.cart.items] == ["p2"]


def test_fold_of_runs_of_views_is_the_state_of_one_event_at_a_time() -> None:
    """The fold takes runs of events only the seen reducer concerns in one step: the same state
    as applying every event by itself, whatever the mix."""
    events = [
        ev("Product Viewed", 0, context={"timezone": "Europe/Paris", "locale": "fr-FR"}),
        ev("Page", 1, userId="u2", channel="app"),
        ev("Product Viewed", 2, context={"timezone": "Not/AZone"}),
        added("p1", 10, 3),
        ev("Product Viewed", 4, channel="pos"),
        ev("identify", 5, traits={"timezone": "America/Chicago", "email": "a@x.com"}),
        ev("Product Viewed", 6, context={"timezone": "Europe/Paris", "locale": "de-DE"}),
        ev("Product Viewed", 7, traits={"firstName": "Ann"}),
        ev("Order Completed", 8, properties={"order_id": "o1", "total": 10}),
        ev("Product Viewed", 9),
        ev("Subscribed", 10, properties={"channel": "ads"}),
        added("p2", 5, 11),
    ]
    one_by_one = CustomerState()
    for event in events:
        one_by_one = reducer.apply(one_by_one, event)
    assert reducer.fold(events) == one_by_one
    assert reducer.extend(reducer.fold(events[:4]), events[4:]) == one_by_one
    assert (one_by_one.timezone, one_by_one.locale, one_by_one.event_count) == (
        "America/Chicago",
        "de-DE",
        12,
    )
    assert one_by_one.consent.ads and [i.product_id for i in one_by_one.cart.items] == ["p2"]


_ZONES = ("Europe/Paris", "America/Chicago")  # the valid ones drawn below
_SEEN_EVENT = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["Product Viewed", "Product Added", "Page", "identify"]),
        "minute": st.integers(0, 4),  # many events share a time
        "userId": st.sampled_from([None, "u1", "u2"]),
        "channel": st.sampled_from([None, "web", "app", "pos"]),
        "timezone": st.sampled_from([None, "Europe/Paris", "America/Chicago", "Not/AZone", 5]),
        "locale": st.sampled_from([None, "fr-FR", "de-DE", 7]),
        "traits": st.sampled_from([None, {"timezone": "Asia/Tokyo"}, {"locale": "ja-JP"}]),
    }
)


def _seen_event(drawn: dict[str, Any]) -> Event:
    context = {key: drawn[key] for key in ("timezone", "locale") if drawn[key] is not None}
    fields: dict[str, Any] = {"anonymousId": "a1", "userId": drawn["userId"], "context": context}
    if drawn["channel"] is not None:
        fields["channel"] = drawn["channel"]
    if drawn["traits"] is not None:
        fields["traits"] = drawn["traits"]
    if drawn["kind"] == "Product Added":
        fields["properties"] = {"product_id": "p1", "price": 2}
    return ev(drawn["kind"], drawn["minute"], **fields)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEEN_EVENT, min_size=1, max_size=12), st.integers(0, 12))
def test_a_fold_in_runs_is_the_state_of_one_event_at_a_time(
    drawn: list[dict[str, Any]], cut: int
) -> None:
    """Runs of events without traits fold in one step, the run's times, user id, time zone
    and locale taken from its ends (the latest that names each): the state one event at a
    time makes, from any state folded before (a time zone the state keeps included)."""
    events = sorted((_seen_event(item) for item in drawn), key=lambda e: e.order_key)
    one_by_one = CustomerState()
    for event in events:
        one_by_one = reducer.apply(one_by_one, event)
    assert reducer.fold(events) == one_by_one
    named = [event for event in events if event.user_id]
    zones = [e.context["timezone"] for e in events if e.context.get("timezone") in _ZONES]
    locales = [e.context["locale"] for e in events if isinstance(e.context.get("locale"), str)]
    assert (one_by_one.user_id, one_by_one.context_timezone, one_by_one.context_locale) == (
        named[-1].user_id if named else None,
        zones[-1] if zones else None,
        locales[-1] if locales else None,
    )
    assert one_by_one.channels == {event.channel for event in events}
    assert (one_by_one.first_seen_at, one_by_one.last_seen_at, one_by_one.event_count) == (
        events[0].timestamp,
        events[-1].timestamp,
        len(events),
    )
    cut = min(cut, len(events))
    assert reducer.extend(reducer.fold(events[:cut]), events[cut:]) == one_by_one


def test_extend_folds_newer_and_late_events_to_the_state_of_all_of_them() -> None:
    base = fold(added("p1", 10, 5))
    newer, late = added("p2", 1, 6), added("p0", 1, 4)
    extended = reducer.extend(base, [late, newer])
    assert extended is not None
    assert [item.product_id for item in extended.cart.items] == ["p0", "p1", "p2"]
    assert extended.event_count == 3 and extended.watermark == newer.order_key


def test_a_late_event_never_undoes_what_a_later_one_set() -> None:
    later = [
        ev("identify", 10, userId="u2", traits={"email": "new@x.com", "consent": {"email": False}}),
        ev("Order Completed", 11, properties={"order_id": "o1", "total": 30}),
        ev("Page", 12, context={"timezone": "Europe/Paris", "locale": "fr-FR"}),
    ]
    state = reducer.fold(later)
    late = [
        ev(
            "identify", 1, traits={"email": "old@x.com", "plan": "gold", "consent": {"email": True}}
        ),
        added("p1", 10, 2),  # before the order: the order emptied the cart
        ev("Page", 3, userId="u9", context={"timezone": "Asia/Tokyo", "locale": "ja-JP"}),
        ev("Order Refunded", 4, properties={"order_id": "o1"}),  # before its order: nothing
    ]
    for event in late:
        extended = reducer.extend(state, [event])
        assert extended is not None
        state = extended
    assert state.traits == {"email": "new@x.com", "plan": "gold"}  # plan: only the late one
    assert state.user_id == "u1" and not state.consent.email  # the latest, not the late u9
    assert state.cart.items == () and state.orders.total == 30 and state.orders.refunded == 0
    assert (state.timezone, state.locale) == ("Europe/Paris", "fr-FR")
    assert state.first_seen_at == START + timedelta(minutes=1) and state.event_count == 7
    assert state == reducer.fold([*later, *late])


def test_a_state_kept_without_keys_folds_its_history_again_for_a_late_event() -> None:
    kept = state_to_json(fold(added("p1", 10, 5)))
    for name in ("traits_at", "user_id_at", "context_at"):
        del kept[name]  # as written before arrival order (migration 0009)
    legacy = state_from_json(kept)
    assert legacy.legacy
    assert reducer.extend(legacy, [added("p0", 1, 4)]) is None
    newer = reducer.extend(legacy, [added("p2", 1, 6)])
    assert newer is not None and newer.legacy and len(newer.cart.items) == 2


def test_a_cart_changed_more_than_it_keeps_needs_the_history_for_an_older_change() -> None:
    state = fold(*(added(f"p{n}", 1, 10 + n) for n in range(CHANGES_KEPT + 1)))
    assert state.cart.compacted and len(state.cart.items) == CHANGES_KEPT + 1
    assert reducer.extend(state, [added("early", 1, 1)]) is None  # before what is kept
    assert reducer.extend(state, [added("late", 1, 10 + CHANGES_KEPT)]) is not None


@pytest.mark.parametrize("minute", [0, 3])
def test_state_json_round_trip(minute: int) -> None:
    state = fold(
        added("p1", 10, minute, name="Shoe", url="https://x/p1"),
        ev("identify", 1, traits={"email": "a@x.com", "consent": {"email": True}}),
        ev("Order Completed", 2, properties={"order_id": "o1", "total": 10, "products": [{}]}),
    )
    assert state_from_json(state_to_json(state)) == state
