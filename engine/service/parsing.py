"""A tracking request's body as events: decoded, parsed, and its bad events set apart.

A single call (``/v1/track``, ...) is its one event. A batch's good events are kept and its bad
ones refused one by one (as Segment's API takes a batch), each with its index, the field at
fault and its raw text for the rejects store. Only a body that cannot be read at all (not JSON,
not an object, no list of messages, too large) is refused whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from engine.config import LimitsConfig
from engine.events import Event, EventInvalid, RejectReason, parse_message
from engine.json_values import shallow
from engine.service.body import decode, load_object
from engine.service.errors import ApiError
from engine.service.models import FieldProblem


@dataclass(frozen=True, slots=True)
class Refused:
    """A bad event of a request: what is wrong with it, and its raw JSON."""

    problem: FieldProblem
    raw: str


@dataclass
class Parsed:
    """A request's body read: the ``writeKey`` it carried (Segment's clients may send the key
    in the body), its good events and its refused ones."""

    write_key: str | None
    events: list[Event] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def raw_json(value: object) -> bytes:
    """``value`` as JSON, cut at the depth limit when it is too deep to write whole."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return orjson.dumps(shallow(value), default=repr)


def _problem(index: int | None, exc: EventInvalid) -> FieldProblem:
    return FieldProblem(index=index, field=exc.field, reason=exc.reason.value, message=exc.message)


def parse_request(
    kind: str,
    body: bytes,
    content_encoding: str | None,
    limits: LimitsConfig,
    received_at: datetime,
    phone_region: str,
) -> Parsed:
    """The events of a ``/v1/<kind>`` request received at ``received_at``, or :class:`ApiError`
    for a body that cannot be read."""
    limit = limits.request_bytes if kind == "batch" else limits.event_bytes
    message = load_object(decode(body, content_encoding, limit))
    key = message.pop("writeKey", None)
    parsed = Parsed(key if isinstance(key, str) and key else None)
    if kind == "batch":
        _batch(parsed, message, limits.event_bytes, received_at, phone_region)
    else:
        _single(parsed, kind, message, received_at, phone_region)
    return parsed


def _single(
    parsed: Parsed, kind: str, message: dict[str, Any], received_at: datetime, phone_region: str
) -> None:
    if message.get("type", kind) != kind:
        problem = FieldProblem(
            index=None, field="type", reason="invalid_field", message="wrong type"
        )
        raise ApiError(400, "invalid", f"/v1/{kind} takes {kind} messages", [problem])
    message["type"] = kind
    try:
        parsed.events = parse_message(
            message, default_timestamp=received_at, phone_region=phone_region
        )
    except EventInvalid as exc:
        parsed.refused.append(Refused(_problem(None, exc), raw_json(message).decode()))


def _batch(
    parsed: Parsed,
    message: dict[str, Any],
    event_limit: int,
    received_at: datetime,
    phone_region: str,
) -> None:
    items = message.get("batch")
    if not isinstance(items, list):
        problem = FieldProblem(
            index=None, field="batch", reason="invalid_field", message="not a list"
        )
        raise ApiError(400, "invalid", "batch must be a list of messages", [problem])
    shared_context = message.get("context")
    sent_at = message.get("sentAt")
    for index, item in enumerate(items):
        raw = raw_json(item)
        if len(raw) > event_limit:
            text = f"the event is larger than {event_limit:,} bytes"
            refused = FieldProblem(index=index, field="", reason="too_large", message=text)
            parsed.refused.append(Refused(refused, raw.decode()))
            continue
        if isinstance(item, dict):
            if item.get("type") == "batch":
                text = "a batch item is a track, identify, page, screen, group or alias message"
                reason = RejectReason.UNKNOWN_TYPE.value
                refused = FieldProblem(index=index, field="type", reason=reason, message=text)
                parsed.refused.append(Refused(refused, raw.decode()))
                continue
            if isinstance(shared_context, dict) and "context" not in item:
                item = {**item, "context": shared_context}
        try:
            parsed.events.extend(
                parse_message(
                    item, default_timestamp=received_at, sent_at=sent_at, phone_region=phone_region
                )
            )
        except EventInvalid as exc:
            parsed.refused.append(Refused(_problem(index, exc), raw.decode()))
