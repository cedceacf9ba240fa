"""Parsing Segment messages into events: every field rule and rejection reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.events import (
    EventInvalid,
    EventType,
    RejectReason,
    content_message_id,
    parse_message,
)

T = "2024-05-01T10:00:00Z"


def track(**fields: object) -> dict[str, object]:
    return {"type": "track", "event": "Product Added", "userId": "u1", "timestamp": T, **fields}


def rejection(message: object) -> EventInvalid:
    with pytest.raises(EventInvalid) as info:
        parse_message(message)
    return info.value


def test_track_is_parsed_with_utc_time_and_web_channel() -> None:
    [event] = parse_message(track(messageId="m1", properties={"price": 10}))
    assert event.type is EventType.TRACK
    assert event.name == "Product Added"
    assert event.timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert event.channel == "web"
    assert event.message_id == "m1"
    assert event.properties == {"price": 10}


def test_offsets_are_converted_to_utc_and_naive_times_taken_as_utc() -> None:
    [event] = parse_message(track(timestamp="2024-05-01T12:00:00+02:00"))
    assert event.timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)
    [naive] = parse_message(track(timestamp="2024-05-01T10:00:00"))
    assert naive.timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_identify_merges_context_traits_under_its_own() -> None:
    [event] = parse_message(
        {
            "type": "identify",
            "anonymousId": "a1",
            "timestamp": T,
            "traits": {"email": "x@y.z"},
            "context": {"traits": {"email": "old@y.z", "plan": "pro"}},
        }
    )
    assert event.traits == {"email": "x@y.z", "plan": "pro"}
    assert event.name == ""


def test_screen_is_a_page_of_an_app() -> None:
    [event] = parse_message(
        {
            "type": "screen",
            "userId": "u1",
            "timestamp": T,
            "name": "Basket",
            "context": {"traits": {"plan": "pro"}},
        }
    )
    assert (event.type, event.name, event.traits) == (EventType.SCREEN, "Basket", {"plan": "pro"})


def test_group_keeps_the_groups_traits_apart_from_the_customers() -> None:
    [event] = parse_message(
        {
            "type": "group",
            "userId": "u1",
            "timestamp": T,
            "groupId": "acme",
            "traits": {"name": "Acme Inc", "employees": 40},
            "context": {"traits": {"plan": "pro"}},
        }
    )
    assert event.type is EventType.GROUP
    assert event.properties == {"groupId": "acme", "traits": {"name": "Acme Inc", "employees": 40}}
    assert event.traits == {"plan": "pro"}  # the customer's own, from the context


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ([1, 2], RejectReason.NOT_AN_OBJECT, ""),
        ({"userId": "u", "timestamp": T}, RejectReason.MISSING_FIELD, "type"),
        ({**track(), "type": "screen_view"}, RejectReason.UNKNOWN_TYPE, "type"),
        ({**track(), "type": "group"}, RejectReason.MISSING_FIELD, "groupId"),
        ({**track(), "userId": None}, RejectReason.MISSING_FIELD, "userId"),
        ({**track(), "userId": "  "}, RejectReason.MISSING_FIELD, "userId"),  # blank: no one
        ({**track(), "userId": "\t", "anonymousId": " "}, RejectReason.MISSING_FIELD, "userId"),
        (
            {**track(), "type": "identify", "traits": {"consent": {"email": "maybe"}}},
            RejectReason.INVALID_FIELD,
            "traits.consent.email",
        ),
        (
            track(event="Unsubscribed", properties={"channel": "e-mail"}),
            RejectReason.INVALID_FIELD,
            "properties.channel",
        ),
        ({**track(), "event": " "}, RejectReason.MISSING_FIELD, "event"),
        ({**track(), "timestamp": "yesterday"}, RejectReason.BAD_TIMESTAMP, "timestamp"),
        ({**track(), "timestamp": 1714557600}, RejectReason.BAD_TIMESTAMP, "timestamp"),
        (track(properties="cheap"), RejectReason.INVALID_FIELD, "properties"),
        (track(properties={"price": "10"}), RejectReason.INVALID_FIELD, "properties.price"),
        (track(properties={"price": True}), RejectReason.INVALID_FIELD, "properties.price"),
        (
            track(properties={"products": [{"quantity": "2"}]}),
            RejectReason.INVALID_FIELD,
            "properties.products[0].quantity",
        ),
        (track(userId={"id": 1}), RejectReason.INVALID_FIELD, "userId"),
        (track(userId="u" * 256), RejectReason.INVALID_FIELD, "userId"),
        (
            {"type": "alias", "userId": "u1", "timestamp": T},
            RejectReason.MISSING_FIELD,
            "previousId",
        ),
    ],
)
def test_rejections_name_the_field(message: object, reason: RejectReason, field: str) -> None:
    error = rejection(message)
    assert error.reason is reason
    assert error.field == field


def test_a_blank_user_id_beside_an_anonymous_id_is_left_out() -> None:
    """Two shoppers sent with ``userId: " "`` would otherwise be one customer."""
    [event] = parse_message({**track(), "userId": " ", "anonymousId": "a1"})
    assert (event.user_id, event.anonymous_id) == (None, "a1")


def test_missing_timestamp_is_rejected_unless_a_default_is_given() -> None:
    message = track()
    del message["timestamp"]
    assert rejection(message).reason is RejectReason.BAD_TIMESTAMP
    now = datetime(2024, 1, 1, tzinfo=UTC)
    [event] = parse_message(message, default_timestamp=now)
    assert event.timestamp == now


def test_batch_gives_every_item_and_shares_its_context() -> None:
    events = parse_message(
        {
            "batch": [track(messageId="a"), {**track(messageId="b"), "event": "Cart Viewed"}],
            "context": {"locale": "fr-FR"},
        }
    )
    assert [e.message_id for e in events] == ["a", "b"]
    assert all(e.context == {"locale": "fr-FR"} for e in events)


def test_a_bad_item_rejects_the_whole_batch_naming_the_item() -> None:
    error = rejection({"type": "batch", "batch": [track(), {**track(), "timestamp": "x"}]})
    assert error.field == "batch[1].timestamp"


def test_channel_from_message_or_context_or_event_name() -> None:
    assert parse_message(track(channel="POS"))[0].channel == "pos"
    assert parse_message(track(context={"channel": "call"}))[0].channel == "call"
    assert parse_message(track(event="Call Completed"))[0].channel == "call"
    assert parse_message(track(event="Email Opened"))[0].channel == "email"


def test_missing_message_id_is_a_stable_content_hash() -> None:
    first = parse_message(track(properties={"a": 1, "b": 2}))[0].message_id
    again = parse_message(track(properties={"b": 2, "a": 1}))[0].message_id
    other = parse_message(track(properties={"a": 2, "b": 2}))[0].message_id
    assert first == again != other
    assert first == content_message_id(track(properties={"a": 1, "b": 2}))


def test_a_resend_restamped_by_its_sender_keeps_its_content_hash() -> None:
    """A client sets ``sentAt`` anew on each attempt (and a relay may add ``receivedAt``): a
    resend of a message without a messageId is still the same message."""
    sent = track(properties={"a": 1}, sentAt="2024-05-01T10:00:00Z")
    again = track(
        properties={"a": 1}, sentAt="2024-05-01T10:00:09Z", receivedAt="2024-05-01T10:00:10Z"
    )
    assert content_message_id(sent) == content_message_id(again)
    assert content_message_id(sent) != content_message_id(track(properties={"a": 2}))


def test_order_key_breaks_time_ties_by_arrival_never_message_id() -> None:
    [a] = parse_message(track(messageId="a"), arrival=2)
    [b] = parse_message(track(messageId="b"), arrival=1)
    assert sorted([a, b], key=lambda e: e.order_key) == [b, a]


def test_a_batch_numbers_its_events_in_array_order() -> None:
    batch = {"type": "batch", "batch": [track(messageId="z"), track(messageId="a")]}
    events = parse_message(batch, arrival=7)
    assert [(e.message_id, e.arrival) for e in events] == [("z", 7), ("a", 8)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06t09:00:00z", datetime(2024, 5, 6, 9, tzinfo=UTC)),
        ("2024-05-06T11:00:00+0200", datetime(2024, 5, 6, 9, tzinfo=UTC)),
        ("2024-05-06t09:00:00.5-01:00", datetime(2024, 5, 6, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_rfc_3339_spelling(text: str, expected: datetime) -> None:
    """RFC 3339 lets ``T`` and ``Z`` be written in lower case."""
    [event] = parse_message(track(timestamp=text))
    assert event.timestamp == expected
    assert rejection(track(timestamp="2024-05-06 09:00:00 utc")).reason is (
        RejectReason.BAD_TIMESTAMP
    )


RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _without_timestamp(**fields: object) -> dict[str, object]:
    message = track(**fields)
    del message["timestamp"]
    return message


def test_client_clock_skew_is_corrected_with_sent_at() -> None:
    """Segment's rule: timestamp = receivedAt - (sentAt - originalTimestamp). The client's clock
    is 1 h fast and it held the event 2 s before sending it."""
    message = _without_timestamp(
        originalTimestamp="2024-06-01T12:59:58Z", sentAt="2024-06-01T13:00:00Z"
    )
    [event] = parse_message(message, default_timestamp=RECEIVED)
    assert event.timestamp == datetime(2024, 6, 1, 11, 59, 58, tzinfo=UTC)


def test_a_batch_sent_at_corrects_each_message_without_its_own() -> None:
    late = _without_timestamp(messageId="late", originalTimestamp="2024-06-01T12:59:50Z")
    own = _without_timestamp(
        messageId="own", originalTimestamp="2024-06-01T12:00:00Z", sentAt="2024-06-01T12:00:01Z"
    )
    events = parse_message(
        {"batch": [late, own], "sentAt": "2024-06-01T13:00:00Z"}, default_timestamp=RECEIVED
    )
    assert [e.timestamp for e in events] == [
        datetime(2024, 6, 1, 11, 59, 50, tzinfo=UTC),
        datetime(2024, 6, 1, 11, 59, 59, tzinfo=UTC),
    ]
    [alone] = parse_message(late, default_timestamp=RECEIVED, sent_at="2024-06-01T13:00:00Z")
    assert alone.timestamp == events[0].timestamp


def test_an_explicit_timestamp_is_kept_as_given() -> None:
    """A server library or an import sets ``timestamp``: it is the event time, not corrected."""
    message = track(originalTimestamp="2024-06-01T12:59:58Z", sentAt="2024-06-01T13:00:00Z")
    [event] = parse_message(message, default_timestamp=RECEIVED)
    assert event.timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_original_timestamp_without_sent_at_is_taken_as_is() -> None:
    message = _without_timestamp(originalTimestamp="2024-06-01T11:00:00Z")
    [received] = parse_message(message, default_timestamp=RECEIVED)
    [from_file] = parse_message(message)
    assert received.timestamp == from_file.timestamp == datetime(2024, 6, 1, 11, tzinfo=UTC)


def test_a_file_line_is_corrected_with_its_own_received_at() -> None:
    """An export of a Segment or RudderStack warehouse keeps receivedAt with each message."""
    message = _without_timestamp(
        originalTimestamp="2024-06-01T12:59:58Z",
        sentAt="2024-06-01T13:00:00Z",
        receivedAt="2024-06-01T12:00:00Z",
    )
    [event] = parse_message(message)
    assert event.timestamp == datetime(2024, 6, 1, 11, 59, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "1899-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "2024-05-01T10:00:00+24:00"}, "timestamp"),
        ({"timestamp": 1714557600}, "timestamp"),
        ({"originalTimestamp": "2024-06-01T12:00:00Z", "sentAt": "soon"}, "sentAt"),
        ({"originalTimestamp": "noon", "sentAt": "2024-06-01T12:00:00Z"}, "originalTimestamp"),
        (
            {"originalTimestamp": "1900-01-01T00:00:00Z", "sentAt": "2999-12-31T00:00:00Z"},
            "originalTimestamp",
        ),
    ],
)
def test_every_timestamp_is_parsed_or_refused_naming_the_field(
    fields: dict[str, object], field: str
) -> None:
    message = {**_without_timestamp(), **fields}
    with pytest.raises(EventInvalid) as info:
        parse_message(message, default_timestamp=RECEIVED)
    assert (info.value.reason, info.value.field) == (RejectReason.BAD_TIMESTAMP, field)


@pytest.mark.parametrize("library", ["server", "browser", "mobile", "Server"])
def test_a_library_channel_is_kept_apart_from_the_shop_channel(library: str) -> None:
    """RudderStack's libraries send ``channel: server|web|mobile``, Segment's spec names
    ``server|browser|mobile``: where the library runs, not where the customer shopped."""
    [event] = parse_message(track(channel=library, context={"ip": "1.2.3.4"}))
    assert event.channel == "web"
    assert event.context == {"ip": "1.2.3.4", "libraryChannel": library.lower()}
    [pos] = parse_message(track(channel=library, context={"channel": "pos"}))
    assert pos.channel == "pos"
    [call] = parse_message(track(event="Call Completed", context={"channel": library}))
    assert call.channel == "call"
    assert call.context == {"channel": library, "libraryChannel": library.lower()}


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_json_nested_past_the_limit_is_refused_naming_where() -> None:
    [ok] = parse_message(track(properties=_nested(30)))
    assert ok.properties == _nested(30)
    with pytest.raises(EventInvalid) as info:
        parse_message(track(properties=_nested(300)))
    error = info.value
    assert error.reason is RejectReason.INVALID_FIELD
    assert error.field.startswith("properties.k.k.k")
    assert "deeper than 32 levels" in error.message
    listed = track(context={"a": [[[[_nested(40)]]]]})
    with pytest.raises(EventInvalid) as info:
        parse_message(listed)
    assert info.value.field.startswith("context.a[0][0][0][0].k")


def test_nul_characters_become_the_replacement_character() -> None:
    """PostgreSQL refuses U+0000 in text and jsonb; SQLite would keep it: so no backend gets it."""
    [event] = parse_message(
        track(
            userId="u\x001",
            event="Product\x00Added",
            properties={"na\x00me": "bo\x00ots", "tags": ["a\x00"]},
            context={"traits": {"email": "x@y.z\x00"}},
        )
    )
    assert event.user_id == "u\ufffd1"
    assert event.name == "Product\ufffdAdded"
    assert event.properties == {"na\ufffdme": "bo\ufffdots", "tags": ["a\ufffd"]}
    assert event.traits == {"email": "x@y.z\ufffd"}
