"""Inbound webhooks: Mailchimp list events and signed call-center outcomes, turned into events.

- ``/webhooks/mailchimp/<secret>``: Mailchimp checks the URL with a ``GET`` (answered 200), then
  posts form-encoded events: ``type=unsubscribe`` and ``cleaned`` become ``Unsubscribed``
  (channel email), ``subscribe`` becomes ``Subscribed``, ``profile`` and ``upemail`` become
  ``identify`` calls with the new traits. The secret in the path is
  ``FOLLOWUP_MAILCHIMP_WEBHOOK_SECRET``.
- ``/webhooks/calls``: a JSON call outcome signed with ``FOLLOWUP_CALLS_WEBHOOK_SECRET``:
  ``X-Followup-Timestamp`` (Unix seconds, within 5 minutes) and ``X-Followup-Signature:
  v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``; becomes a ``Call Completed`` event.

A webhook whose secret is not set answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from engine.events import Event, EventInvalid, parse_message
from engine.service.context import ServiceContext
from engine.service.customers import identity_fields
from engine.service.errors import ApiError
from engine.service.limits import BodyTooLarge, read_body
from engine.service.models import Accepted, FieldProblem, Problem

MAILCHIMP_SECRET_ENV = "FOLLOWUP_MAILCHIMP_WEBHOOK_SECRET"
CALLS_SECRET_ENV = "FOLLOWUP_CALLS_WEBHOOK_SECRET"
MAX_SKEW = 300  # seconds
MAILCHIMP_TYPES = ("subscribe", "unsubscribe", "cleaned", "profile", "upemail")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem},
    401: {"model": Problem},
    404: {"model": Problem},
    413: {"model": Problem},
    503: {"model": Problem},
}

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=_ERRORS)


class CallOutcome(BaseModel):
    """A call-center outcome (the body of ``POST /webhooks/calls``); extra fields are kept as
    event properties."""

    model_config = ConfigDict(extra="allow")

    call_id: str = Field(description="the call's id in the call center: resends dedupe on it")
    outcome: str = Field(description="e.g. reached, voicemail, no_answer, ordered, declined")
    userId: str | None = None
    email: str | None = None
    phone: str | None = None
    timestamp: str | None = Field(default=None, description="ISO 8601 end of the call")
    duration_seconds: float | None = None
    agent: str | None = None
    list: str | None = None


def _secret(ctx: ServiceContext, variable: str) -> str:
    value = ctx.environ.get(variable, "").strip()
    if not value:
        raise ApiError(404, "not_found", "Not Found")
    return value


async def _body(request: Request, ctx: ServiceContext) -> bytes:
    try:
        return await read_body(request, ctx.limits.event_bytes)
    except BodyTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from None


def _store(ctx: ServiceContext, messages: list[dict[str, Any]], source: str) -> Accepted:
    followup = ctx.followup
    events: list[Event] = []
    for message in messages:
        try:
            events.extend(
                parse_message(
                    message, default_timestamp=followup.clock(), phone_region=followup.phone_region
                )
            )
        except EventInvalid as exc:
            problem = FieldProblem(
                index=None, field=exc.field, reason=exc.reason.value, message=exc.message
            )
            raise ApiError(400, "invalid", exc.message, [problem]) from None
    summary = ctx.write(events, source)
    return Accepted(accepted=summary.accepted, duplicates=summary.duplicates)


# --- Mailchimp ---------------------------------------------------------------------------------


def _mailchimp_time(fields: dict[str, str]) -> str | None:
    fired = fields.get("fired_at", "")  # "2009-03-26 21:35:57", Mailchimp's UTC
    try:
        return datetime.strptime(fired, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return None


def _mailchimp_messages(ctx: ServiceContext, fields: dict[str, str]) -> list[dict[str, Any]]:
    kind = fields.get("type", "")
    base: dict[str, Any] = {"timestamp": _mailchimp_time(fields)}
    email = fields.get("data[email]", "")
    list_id = fields.get("data[list_id]")
    if kind in ("unsubscribe", "cleaned", "subscribe"):
        event = "Subscribed" if kind == "subscribe" else "Unsubscribed"
        properties = {"channel": "email", "source": f"mailchimp_{kind}", "list_id": list_id}
        reason = fields.get("data[reason]")
        if reason:
            properties["reason"] = reason
        traits = {"email": email}
        message = {"type": "track", "event": event, "properties": properties}
        return [{**base, **message, "context": {"traits": traits}}]
    if kind == "profile":
        traits = {"email": email}
        for merge, trait in (("FNAME", "firstName"), ("LNAME", "lastName"), ("PHONE", "phone")):
            value = fields.get(f"data[merges][{merge}]")
            if value:
                traits[trait] = value
        return [{**base, "type": "identify", "traits": traits}]
    if kind == "upemail":
        old, new = fields.get("data[old_email]", ""), fields.get("data[new_email]", "")
        who = identity_fields(ctx.followup, old) if old else None
        if who is None or "context" in who:
            # known only by the old address: one event cannot carry two emails, so the new
            # address is recorded as a trait of the profile the old one finds
            who = {"context": {"traits": {"email": old or new}}}
            return [{**base, "type": "identify", **who, "traits": {"new_email": new}}]
        return [{**base, "type": "identify", **who, "traits": {"email": new}}]
    raise ApiError(
        400,
        "invalid",
        f"unsupported Mailchimp webhook type {kind!r}",
        [FieldProblem(index=None, field="type", reason="invalid_field", message="unsupported")],
    )


@router.get("/mailchimp/{secret}", response_model=Accepted)
async def mailchimp_check(secret: str, request: Request) -> Accepted:
    """Mailchimp's check that the URL answers."""
    ctx: ServiceContext = request.app.state.service
    if not hmac.compare_digest(secret.encode(), _secret(ctx, MAILCHIMP_SECRET_ENV).encode()):
        raise ApiError(404, "not_found", "Not Found")
    return Accepted(accepted=0, duplicates=0)


@router.post(
    "/mailchimp/{secret}",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "type": {
                                "type": "string",
                                "enum": list(MAILCHIMP_TYPES),
                            },
                            "fired_at": {"type": "string"},
                            "data[email]": {"type": "string"},
                        },
                    }
                }
            }
        }
    },
)
async def mailchimp(secret: str, request: Request) -> Accepted:
    """A Mailchimp list event (form-encoded)."""
    ctx: ServiceContext = request.app.state.service
    if not hmac.compare_digest(secret.encode(), _secret(ctx, MAILCHIMP_SECRET_ENV).encode()):
        raise ApiError(404, "not_found", "Not Found")
    body = await _body(request, ctx)
    try:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid", "the body is not form-encoded UTF-8") from None

    def work() -> Accepted:
        return _store(ctx, _mailchimp_messages(ctx, fields), "webhook:mailchimp")

    return await run_in_threadpool(work)


# --- call center -------------------------------------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Followup-Signature`` of ``body`` sent at ``timestamp``."""
    signed = timestamp.encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _verify(
    secret: str, request: Request, body: bytes, now: Callable[[], float] = time.time
) -> None:
    stamp = request.headers.get("x-followup-timestamp", "")
    given = request.headers.get("x-followup-signature", "")
    unauthorized = "unauthorized"
    if not stamp.isdigit() or abs(now() - int(stamp)) > MAX_SKEW:
        raise ApiError(401, unauthorized, "X-Followup-Timestamp missing or more than 5 min off")
    if not hmac.compare_digest(given.encode(), signature(secret, stamp, body).encode()):
        raise ApiError(401, unauthorized, "X-Followup-Signature does not match")


def _call_message(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "not_an_object", "the body must be a JSON object")
    problems = [
        FieldProblem(index=None, field=name, reason="missing_field", message=f"{name} is missing")
        for name in ("call_id", "outcome")
        if not isinstance(data.get(name), str) or not data[name]
    ]
    if problems:
        raise ApiError(400, "invalid", "call_id and outcome are required strings", problems)
    properties = {k: v for k, v in data.items() if k not in ("userId", "timestamp")}
    traits = {k: data[k] for k in ("email", "phone") if isinstance(data.get(k), str)}
    message: dict[str, Any] = {
        "type": "track",
        "event": "Call Completed",
        "messageId": f"call:{data['call_id']}",
        "userId": data.get("userId"),
        "timestamp": data.get("timestamp"),
        "channel": "call",
        "properties": properties,
    }
    if traits:
        message["context"] = {"traits": traits}
    return message


@router.post(
    "/calls",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CallOutcome"}}
            },
        }
    },
)
async def calls(request: Request) -> Accepted:
    """A call-center outcome, signed with the shared secret."""
    ctx: ServiceContext = request.app.state.service
    secret = _secret(ctx, CALLS_SECRET_ENV)
    body = await _body(request, ctx)
    _verify(secret, request, body)
    message = _call_message(body)
    return await run_in_threadpool(_store, ctx, [message], "webhook:calls")
