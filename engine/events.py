"""Customer events as the engine sees them, and the Segment-spec messages they are parsed from.

An :class:`Event` is a frozen, validated value: one ``track``, ``identify``, ``page``, ``screen``,
``group`` or ``alias`` call with a tz-aware event time. :func:`parse_message` turns one Segment
message (a ``dict``) into events (a ``batch`` gives several) or raises :class:`EventInvalid`,
which names the field at fault.
Ingest turns that into a :class:`Rejection` that keeps the raw input, so nothing is lost.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.consent_values import (
    CONSENT_CHANNELS,
    CONSENT_EVENTS,
    consent_channel,
    consent_flag,
    event_channel,
)
from engine.contact import normalize_email, phone_key
from engine.json_values import MAX_DEPTH, TooDeep, clean
from engine.values import quick_init


class EventType(enum.StrEnum):
    """The Segment calls that carry customer data."""

    TRACK = "track"
    IDENTIFY = "identify"
    PAGE = "page"
    SCREEN = "screen"  # a page of a mobile app
    GROUP = "group"  # the customer belongs to a group (a company, an account): its traits
    ALIAS = "alias"


class RejectReason(enum.StrEnum):
    """Why an input record was not accepted; a closed set so summaries can count by it."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_ROW = "invalid_row"


class EventInvalid(Exception):
    """A message breaks the spec; ``field`` is the dotted path of the culprit."""

    def __init__(self, reason: RejectReason, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input record that was not accepted, with where it came from and the raw text:
    ``line`` is the line of a file, or the index of an event in a batch (none for a single
    HTTP call)."""

    source: str
    line: int | None
    reason: RejectReason
    field: str
    message: str
    raw: str

    def describe(self) -> str:
        """``file:line: field: message``, the form every error of followup takes."""
        where = f"{self.field}: " if self.field else ""
        at = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{at}: {where}{self.message}"


_EMPTY: Mapping[str, Any] = {}

# An event's place in the total order of events: (event time, arrival). Whatever the engine
# itself makes at an instant (a campaign's ``update`` step) comes after every event received
# at that instant.
OrderKey = tuple[datetime, int]
LAST_ARRIVAL = 2**63 - 1
CAMPAIGN_CHANNEL = "campaign"  # the channel of the events a campaign makes (update steps)


@quick_init  # a million events parsed: the generated __init__ was a tenth of the parse
@dataclass(frozen=True, slots=True)
class Event:
    """One validated customer event; ``timestamp`` is the event time, always UTC."""

    message_id: str
    type: EventType
    name: str
    timestamp: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    channel: str = "web"
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    # where the event came in the order received: its place in the file or request, and once
    # logged its sequence number in the event log (``events.seq``)
    arrival: int = 0

    @property
    def order_key(self) -> OrderKey:
        """Total order of events: event time, then the order received (file order; a batch's
        array order, then request order), never messageId (CAMPAIGN_FORMAT.md)."""
        return (self.timestamp, self.arrival)

    def payload(self) -> dict[str, Any]:
        """The parts of the event kept as JSON in the event log."""
        body: dict[str, Any] = {}
        if self.properties:
            body["properties"] = self.properties
        if self.traits:
            body["traits"] = self.traits
        if self.context:
            body["context"] = self.context
        if self.previous_id is not None:
            body["previousId"] = self.previous_id
        return body


# Known numeric properties of the Segment e-commerce spec; a wrong type there is a rejection, since
# cart value and order totals are computed from them.
_NUMERIC_PROPERTIES = ("price", "quantity", "revenue", "total", "value", "subtotal", "discount")
_CHECKED_PROPERTIES = frozenset({*_NUMERIC_PROPERTIES, "products"})
_MAX_ID_LENGTH = 255
_TYPES = {member.value: member for member in EventType}


# Event times outside these bounds are refused: a year-9999 time overflows as soon as a wait is
# added to it, a year-1 time as soon as history is counted back from it.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)  # exclusive


def parse_timestamp(value: object, field_name: str = "timestamp") -> datetime:
    """An ISO 8601 string as a UTC datetime from 1900 to 2999; a value without an offset is
    taken as UTC. Anything else is :class:`EventInvalid` naming ``field_name``."""
    if not isinstance(value, str):
        raise EventInvalid(
            RejectReason.BAD_TIMESTAMP, field_name, f"expected an ISO 8601 string, got {value!r}"
        )
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _lower_case_rfc3339(value)
    if parsed is None:
        raise EventInvalid(
            RejectReason.BAD_TIMESTAMP,
            field_name,
            f"{value!r} is not an ISO 8601 time; write e.g. 2024-05-01T12:00:00Z",
        ) from None
    try:
        utc = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        utc = None
    return in_range(utc, field_name, repr(value))


def in_range(value: datetime | None, field_name: str, what: str) -> datetime:
    """``value`` if it is an event time followup can work with (1900 to 2999), else
    :class:`EventInvalid` naming ``field_name``; ``None`` stands for an overflow."""
    if value is None or not EARLIEST <= value < LATEST:
        raise EventInvalid(
            RejectReason.BAD_TIMESTAMP,
            field_name,
            f"{what} is out of range: event times run from 1900 to 2999 (UTC)",
        )
    return value


def event_time(
    message: Mapping[str, Any], received_at: datetime | None, batch_sent_at: object = None
) -> datetime:
    """When the message happened, by Segment's timestamp rule.

    - ``timestamp`` given: that (a server library's or an import's own time, kept as given);
    - else ``originalTimestamp`` (the device's clock when the call was made) corrected for the
      device's clock skew: ``receivedAt - (sentAt - originalTimestamp)``, with ``sentAt`` of the
      message or else of its batch; without a ``sentAt``, ``originalTimestamp`` as it is;
    - else ``received_at``: when the service received it.

    ``received_at`` is the service's clock for a request; a file has none, so a line's own
    ``receivedAt`` (an export of a Segment or RudderStack warehouse keeps it) stands in.
    """
    raw = message.get("timestamp")
    if raw is not None:
        return parse_timestamp(raw)
    original = message.get("originalTimestamp")
    if original is None:
        if received_at is None:
            raise EventInvalid(RejectReason.BAD_TIMESTAMP, "timestamp", "timestamp is missing")
        return received_at
    at = parse_timestamp(original, "originalTimestamp")
    raw_sent = message.get("sentAt")
    if raw_sent is None:
        raw_sent = batch_sent_at
    if raw_sent is None:
        return at
    sent = parse_timestamp(raw_sent, "sentAt")
    if received_at is None:
        raw_received = message.get("receivedAt")
        if raw_received is None:
            return at
        received_at = parse_timestamp(raw_received, "receivedAt")
    try:
        corrected: datetime | None = received_at - (sent - at)
    except OverflowError:
        corrected = None
    return in_range(corrected, "originalTimestamp", "originalTimestamp corrected by sentAt")


def _lower_case_rfc3339(value: str) -> datetime | None:
    """``2024-05-01t12:00:00z``: RFC 3339 allows a lower-case ``t`` and ``z``."""
    if "t" not in value and "z" not in value:
        return None
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        return None


def _optional_id(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value.__class__ is str and 0 < len(value) <= _MAX_ID_LENGTH and not value.isspace():
        return value  # most ids: a plain string of a fitting length
    if value is None or value == "" or (isinstance(value, str) and value.isspace()):
        return None  # a blank id names no one: as if left out
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventInvalid(RejectReason.INVALID_FIELD, key, f"{key} must be a string")
    text = str(value)
    if len(text) > _MAX_ID_LENGTH:
        raise EventInvalid(
            RejectReason.INVALID_FIELD, key, f"{key} is longer than {_MAX_ID_LENGTH} characters"
        )
    return text


def _object(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise EventInvalid(RejectReason.INVALID_FIELD, key, f"{key} must be a JSON object")
    return value


def _check_numbers(properties: Mapping[str, Any]) -> None:
    if _CHECKED_PROPERTIES.isdisjoint(properties):
        return  # a product view's properties, say: no number to check
    for key in _NUMERIC_PROPERTIES:
        value = properties.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise EventInvalid(
                RejectReason.INVALID_FIELD, f"properties.{key}", f"{key} must be a number"
            )
    products = properties.get("products")
    if products is None:
        return
    if not isinstance(products, list) or not all(isinstance(p, dict) for p in products):
        raise EventInvalid(
            RejectReason.INVALID_FIELD, "properties.products", "products must be a list of objects"
        )
    for index, product in enumerate(products):
        for key in ("price", "quantity"):
            value = product.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise EventInvalid(
                    RejectReason.INVALID_FIELD,
                    f"properties.products[{index}].{key}",
                    f"{key} must be a number",
                )


def _check_consent_traits(consent: object) -> None:
    """``traits.consent`` says yes or no for the channels it names (docs/ingest.md): an opt-out
    that could not be read would be taken and ignored."""
    if consent is None:
        return
    if not isinstance(consent, dict):
        raise EventInvalid(
            RejectReason.INVALID_FIELD,
            "traits.consent",
            'consent must be an object of channels, e.g. {"email": false}',
        )
    for key, value in consent.items():
        named = consent_channel(key) in CONSENT_CHANNELS
        if named and value is not None and consent_flag(value) is None:
            raise EventInvalid(
                RejectReason.INVALID_FIELD,
                f"traits.consent.{key}",
                f"consent.{key} must be true or false (or yes/no, 1/0); got {value!r}",
            )


def _check_consent_channel(named: object) -> None:
    """A consent event's ``properties.channel`` is one of the consent channels, or left out
    (email): an unsubscribe from a channel no one has would change nothing."""
    if event_channel(named) is not None:
        return
    raise EventInvalid(
        RejectReason.INVALID_FIELD,
        "properties.channel",
        f"channel {named!r} is not a consent channel; use {', '.join(CONSENT_CHANNELS)}"
        " (left out: email)",
    )


def _identifies(
    traits: Mapping[str, Any], properties: Mapping[str, Any], phone_region: str
) -> bool:
    """Whether traits (or a signup's properties) name an email or phone to identify by: a POS
    export or a signup form often knows no other id. (Segment itself insists on an id.)"""
    return bool(
        normalize_email(traits.get("email"))
        or normalize_email(properties.get("email"))
        or phone_key(traits.get("phone"), phone_region)
    )


def default_channel(name: str) -> str:
    """The channel an event came through when it does not say: calls from the call center, email
    events from email, everything else from the web store."""
    if name == "Call Completed":
        return "call"
    if name.startswith("Email "):
        return "email"
    return "web"


# ``channel`` values that say where a client library runs, not where the customer shopped:
# Segment's spec names server, browser and mobile; RudderStack's libraries send server, mobile
# and web (its JavaScript SDK, in the browser: the web store, so "web" stays a shop channel).
LIBRARY_CHANNELS = frozenset({"server", "browser", "mobile"})


def _channels(message: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, str | None]:
    """The shop channel of ``channel`` or ``context.channel`` (the first that is one; "" when
    neither is), and the library channel one of them named, if any."""
    library = None
    given = (("channel", message.get("channel")), ("context.channel", context.get("channel")))
    for field_name, value in given:
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise EventInvalid(
                RejectReason.INVALID_FIELD, field_name, f"{field_name} must be a string"
            )
        name = value.strip().lower()
        if name not in LIBRARY_CHANNELS:
            return name, library
        library = library or name
    return "", library


# What a sender or a server stamps anew on each attempt: not the message's content.
_STAMPED_PER_ATTEMPT = frozenset({"sentAt", "receivedAt"})


def content_message_id(message: Mapping[str, Any]) -> str:
    """A messageId for a message that has none: a hash of its content, so a resend still dedupes
    (``sentAt`` and ``receivedAt``, stamped again on every attempt, are left out)."""
    content = {k: v for k, v in message.items() if k not in _STAMPED_PER_ATTEMPT}
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "sha256:" + digest[:40]


def parse_message(
    message: object,
    *,
    default_timestamp: datetime | None = None,
    sent_at: object = None,
    default_channel_name: str | None = None,
    phone_region: str = "US",
    arrival: int = 0,
    clean_already: bool = False,
) -> list[Event]:
    """Parse one Segment message (``batch`` included) into events, or raise :class:`EventInvalid`.

    ``default_timestamp`` is when the message was received (the service's clock; none for a
    file), ``sent_at`` the ``sentAt`` of the batch the message came in: see :func:`event_time`.
    A batch is all or nothing: one bad item rejects the whole batch, naming the item. The events
    are numbered from ``arrival`` on, in the order they come (a batch's in array order).
    ``clean_already``: the message was read from JSON text :func:`clean_text` found clean.
    """
    if not isinstance(message, dict):
        raise EventInvalid(RejectReason.NOT_AN_OBJECT, "", "expected a JSON object per line")
    if message.get("type") == "batch" or ("batch" in message and "type" not in message):
        items = message.get("batch")
        if not isinstance(items, list):
            raise EventInvalid(RejectReason.INVALID_FIELD, "batch", "batch must be a list")
        shared_context = _object(message, "context")
        batch_sent_at = message.get("sentAt")
        events: list[Event] = []
        for index, item in enumerate(items):
            if isinstance(item, dict) and shared_context and "context" not in item:
                item = {**item, "context": shared_context}
            try:
                events.extend(
                    parse_message(
                        item,
                        default_timestamp=default_timestamp,
                        sent_at=batch_sent_at,
                        default_channel_name=default_channel_name,
                        phone_region=phone_region,
                        arrival=arrival + len(events),
                        clean_already=clean_already,
                    )
                )
            except EventInvalid as exc:
                raise EventInvalid(
                    exc.reason, f"batch[{index}].{exc.field}".rstrip("."), exc.message
                ) from None
        return events
    if not clean_already:
        try:
            message = clean(message)
        except TooDeep as exc:
            text = f"nested deeper than {MAX_DEPTH} levels; send a flatter object"
            raise EventInvalid(RejectReason.INVALID_FIELD, exc.path, text) from None
    event = _parse_single(
        message, default_timestamp, sent_at, default_channel_name, phone_region, arrival
    )
    return [fits_columns(event)]


NAME_LIMIT = 255  # events.name
CHANNEL_LIMIT = 32  # events.channel


def fits_columns(event: Event) -> Event:
    """``event``, or :class:`EventInvalid` for a name or channel longer than the event log holds
    (PostgreSQL would refuse the whole batch it came in)."""
    if len(event.name) > NAME_LIMIT:
        field = "event" if event.type is EventType.TRACK else "name"
        text = f"{field} is longer than {NAME_LIMIT} characters"
        raise EventInvalid(RejectReason.INVALID_FIELD, field, text)
    if len(event.channel) > CHANNEL_LIMIT:
        text = f"channel is longer than {CHANNEL_LIMIT} characters"
        raise EventInvalid(RejectReason.INVALID_FIELD, "channel", text)
    return event


def _parse_single(
    message: dict[str, Any],
    default_timestamp: datetime | None,
    sent_at: object,
    default_channel_name: str | None,
    phone_region: str,
    arrival: int,
) -> Event:
    raw_type = message.get("type")
    if raw_type is None:
        raise EventInvalid(RejectReason.MISSING_FIELD, "type", "type is missing")
    try:
        event_type = _TYPES.get(raw_type) if raw_type.__class__ is str else None
        event_type = event_type or EventType(raw_type)
    except ValueError:
        raise EventInvalid(
            RejectReason.UNKNOWN_TYPE,
            "type",
            f"type {raw_type!r} is not one of track, identify, page, screen, group, alias, batch",
        ) from None

    user_id = _optional_id(message, "userId")
    anonymous_id = _optional_id(message, "anonymousId")
    previous_id = _optional_id(message, "previousId") if event_type is EventType.ALIAS else None
    if event_type is EventType.ALIAS and previous_id is None:
        raise EventInvalid(RejectReason.MISSING_FIELD, "previousId", "alias needs a previousId")

    if event_type is EventType.TRACK:
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise EventInvalid(RejectReason.MISSING_FIELD, "event", "track needs an event name")
        name = name.strip()
    elif event_type in (EventType.PAGE, EventType.SCREEN):
        page_name = message.get("name")
        name = page_name if isinstance(page_name, str) else ""
    else:
        name = ""

    timestamp = event_time(message, default_timestamp, sent_at)

    properties = _object(message, "properties")
    context = _object(message, "context")
    traits = _object(message, "traits")
    if event_type is EventType.GROUP:  # the group's traits, not the customer's: kept as such
        group_id = _optional_id(message, "groupId")
        if group_id is None:
            raise EventInvalid(RejectReason.MISSING_FIELD, "groupId", "group needs a groupId")
        properties = {**properties, "groupId": group_id, "traits": dict(traits)}
        traits = _EMPTY
    context_traits = _object(context, "traits") if context else _EMPTY
    if context_traits:
        traits = {**context_traits, **traits}
    if (
        user_id is None
        and anonymous_id is None
        and not _identifies(traits, properties, phone_region)
    ):
        raise EventInvalid(
            RejectReason.MISSING_FIELD,
            "userId",
            "every message needs a userId, an anonymousId, or an email or a valid phone number"
            " in its traits",
        )
    _check_numbers(properties)
    if traits and "consent" in traits:
        _check_consent_traits(traits["consent"])
    if name in CONSENT_EVENTS and event_type is EventType.TRACK:
        _check_consent_channel(properties.get("channel"))

    shop_channel, library_channel = _channels(message, context)
    channel = shop_channel or (default_channel_name or default_channel(name)).strip().lower()
    if library_channel is not None:
        context = {**context, "libraryChannel": library_channel}

    message_id = _optional_id(message, "messageId") or content_message_id(message)
    return Event(
        message_id=message_id,
        type=event_type,
        name=name,
        timestamp=timestamp,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        channel=channel,
        properties=properties,
        traits=traits,
        context=context,
        arrival=arrival,
    )
