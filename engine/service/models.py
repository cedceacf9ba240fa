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
        description="ISO 8601 event time (default: when received)",
        json_schema_extra={"format": "date-time"},
    )
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class TrackMessage(_Message):
    """``POST /v1/track``: the customer did something."""

    type: Literal["track"] | None = None
    event: str = Field(description="the event name, e.g. Product Added")
    properties: dict[str, Any] | None = None
    channel: str | None = None


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
    """``POST /v1/batch``: up to 500 KB of messages, stored all together or not at all."""

    model_config = ConfigDict(extra="allow")

    batch: list[BatchItem]
    context: dict[str, Any] | None = Field(
        default=None, description="applied to each message that has no context of its own"
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


class Problem(BaseModel):
    """An error; nothing of the request was stored."""

    error: str
    message: str
    errors: list[FieldProblem] = Field(default_factory=list)


class Health(BaseModel):
    """``/healthz`` and ``/readyz``."""

    status: str
    detail: str | None = None
