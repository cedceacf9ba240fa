"""The shapes of the HTTP API, as pydantic models: the OpenAPI document is made from them.

Requests are described here but validated by :func:`engine.events.parse_message`, exactly as file
ingest validates them (so a message accepted over HTTP is accepted from a file, and the reverse);
the request models allow extra fields, as Segment does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = str | int


class _Message(BaseModel):
    """Fields every Segment call may carry; a ``userId`` or an ``anonymousId`` is required (as
    Segment requires; followup also accepts a message whose traits carry an email or phone)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]},
    )

    userId: Id | None = Field(default=None, description="the customer's id in the shop")
    anonymousId: Id | None = Field(default=None, description="a device or session id")
    messageId: Id | None = Field(
        default=None, description="dedupe key: a message seen before is accepted, not stored again"
    )
    timestamp: str | None = Field(
        default=None,
        description="ISO 8601 event time, 1900 to 2999, kept as given (default: by"
        " originalTimestamp and sentAt, else when received)",
        json_schema_extra={"format": "date-time"},
    )
    originalTimestamp: str | None = Field(
        default=None,
        description="the device's clock when the call was made: corrected by sentAt for the"
        " device's clock skew (receivedAt - (sentAt - originalTimestamp))",
        json_schema_extra={"format": "date-time"},
    )
    sentAt: str | None = Field(
        default=None,
        description="the device's clock when the request was sent (else the batch's sentAt)",
        json_schema_extra={"format": "date-time"},
    )
    channel: str | None = Field(
        default=None,
        description="where it happened: web, pos, call, email, ...; a client library's own"
        " server, browser or mobile is kept as context.libraryChannel instead",
    )
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = Field(
        default=None, description="the write key, when not sent as HTTP Basic auth"
    )


class TrackMessage(_Message):
    """``POST /v1/track``: the customer did something."""

    type: Literal["track"] | None = None
    event: str = Field(description="the event name, e.g. Product Added")
    properties: dict[str, Any] | None = None


class IdentifyMessage(_Message):
    """``POST /v1/identify``: who the customer is (traits, consent)."""

    type: Literal["identify"] | None = None
    traits: dict[str, Any] | None = None


class PageMessage(_Message):
    """``POST /v1/page``: the customer saw a page."""

    type: Literal["page"] | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class ScreenMessage(_Message):
    """``POST /v1/screen``: the customer saw a screen of a mobile app."""

    type: Literal["screen"] | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class GroupMessage(_Message):
    """``POST /v1/group``: the customer belongs to a group (a company, an account)."""

    type: Literal["group"] | None = None
    groupId: Id = Field(description="the group's id")
    traits: dict[str, Any] | None = Field(default=None, description="the group's traits")


class AliasMessage(_Message):
    """``POST /v1/alias``: ``previousId`` (an earlier userId or anonymousId) is ``userId``."""

    type: Literal["alias"] | None = None
    previousId: Id = Field(description="the earlier id")


class BatchItem(_Message):
    """One message of a batch; ``type`` says which call it is."""

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    previousId: Id | None = None
    groupId: Id | None = None


class BatchRequest(BaseModel):
    """``POST /v1/batch``: up to ``server.limits.request_bytes`` of messages; the good ones are stored, the bad ones kept
    in the rejects store and named in the answer."""

    model_config = ConfigDict(extra="allow")

    batch: list[BatchItem]
    context: dict[str, Any] | None = Field(
        default=None, description="applied to each message that has no context of its own"
    )
    sentAt: str | None = Field(
        default=None,
        description="the device's clock when the batch was sent, for messages without their own",
        json_schema_extra={"format": "date-time"},
    )
    writeKey: str | None = Field(
        default=None, description="the write key, when not sent as HTTP Basic auth"
    )


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "track": TrackMessage,
    "identify": IdentifyMessage,
    "page": PageMessage,
    "screen": ScreenMessage,
    "group": GroupMessage,
    "alias": AliasMessage,
    "batch": BatchRequest,
}


_AT = "2024-05-01T10:00:00.000Z"
_PRODUCT = {"product_id": "p1", "name": "Boots", "price": 120, "quantity": 1}

# One valid body per call, shown in the OpenAPI document (and tried by its schema-driven tests).
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "track": {"userId": "u1", "event": "Product Added", "properties": _PRODUCT, "timestamp": _AT},
    "identify": {"userId": "u1", "traits": {"email": "ann@example.com", "firstName": "Ann"}},
    "page": {"anonymousId": "a1", "name": "Home", "properties": {"url": "https://shop.example"}},
    "screen": {"userId": "u1", "name": "Basket"},
    "group": {"userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}},
    "alias": {"userId": "u1", "previousId": "a1"},
    "batch": {
        "batch": [
            {
                "type": "track",
                "event": "Product Added",
                "anonymousId": "a1",
                "properties": _PRODUCT,
                "originalTimestamp": "2024-05-01T10:00:00.000Z",
            },
            {
                "type": "identify",
                "anonymousId": "a1",
                "userId": "u1",
                "traits": {"email": "ann@example.com"},
                "originalTimestamp": _AT,
            },
        ],
        "sentAt": "2024-05-01T10:00:02.000Z",
    },
}


class Accepted(BaseModel):
    """The events are durable: ``accepted`` were stored, ``duplicates`` had been already."""

    success: bool = True
    accepted: int
    duplicates: int


class FieldProblem(BaseModel):
    """One bad event: its index in the batch (none for a single call), the field and why."""

    index: int | None
    field: str
    reason: str
    message: str


class Tracked(BaseModel):
    """A tracking request's answer: the good events are durable (``accepted`` stored,
    ``duplicates`` stored before); a batch's bad events are kept in the rejects store
    (``followup rejects list``), counted in ``rejected`` and named in ``errors``. An answer that
    rejected nothing leaves those two out."""

    success: bool
    accepted: int
    duplicates: int
    rejected: int = 0
    errors: list[FieldProblem] = Field(default_factory=list)


class Problem(BaseModel):
    """An error, as Segment's and RudderStack's clients read one (``code``, ``message``);
    nothing of the request was stored. ``error`` repeats ``code`` for older callers, ``errors``
    names each bad event."""

    code: str
    message: str
    error: str
    errors: list[FieldProblem] = Field(default_factory=list)

    @classmethod
    def of(cls, code: str, message: str, errors: list[FieldProblem] | None = None) -> Problem:
        """The problem ``code`` (also as ``error``) with its message and bad events."""
        return cls(code=code, error=code, message=message, errors=errors or [])


class Health(BaseModel):
    """``/healthz`` and ``/readyz``."""

    status: str
    detail: str | None = None
