"""``POST /v1/track|identify|page|alias|batch``: Segment's HTTP tracking API.

A write key comes as HTTP Basic auth (the key as user name, no password). A request is parsed and
checked with :func:`engine.events.parse_message`, as file ingest does, and stored in one
transaction: ``200`` means every event is durable; a rejected request stores nothing, and its
``400`` names every bad event (index) and field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from engine.events import Event, EventInvalid, RejectReason, parse_message
from engine.service.context import ServiceContext
from engine.service.errors import ApiError
from engine.service.keys import WriteKey
from engine.service.limits import BodyTooLarge, read_body, retry_after
from engine.service.models import REQUEST_MODELS, Accepted, FieldProblem, Problem

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "malformed JSON or invalid events; nothing stored"},
    401: {"model": Problem, "description": "missing, unknown or revoked write key"},
    413: {"model": Problem, "description": "the request or one event is too large"},
    429: {"model": Problem, "description": "the key's rate limit; see Retry-After"},
    503: {"model": Problem, "description": "concurrent writers kept conflicting; retry"},
}


def basic_auth_key(request: Request) -> str:
    """The write key of an ``Authorization: Basic`` header (user name, empty password)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user, _, _password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise ApiError(
        401,
        "unauthorized",
        "send the write key as HTTP Basic auth: the key as user name, an empty password",
        headers={"WWW-Authenticate": 'Basic realm="followup"'},
    )


def _check_key(ctx: ServiceContext, key: str) -> WriteKey:
    found = ctx.keys.authenticate(key)
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked write key",
            headers={"WWW-Authenticate": 'Basic realm="followup"'},
        )
    rate = found.rate if found.rate is not None else ctx.limits.rate
    if rate is not None:
        wait = ctx.limiter.acquire(found.id, rate)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"more than {rate:g} requests a second with this key",
                headers={"Retry-After": retry_after(wait)},
            )
    return found


def _problem(index: int | None, exc: EventInvalid) -> FieldProblem:
    return FieldProblem(index=index, field=exc.field, reason=exc.reason.value, message=exc.message)


def _load(body: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, RejectReason.INVALID_JSON.value, f"the body is not JSON: {exc}"
        ) from exc
    if not isinstance(message, dict):
        raise ApiError(400, RejectReason.NOT_AN_OBJECT.value, "the body must be a JSON object")
    return message


def _size(value: object) -> int:
    return len(orjson.dumps(value))


def parse_single(ctx: ServiceContext, kind: str, body: bytes) -> list[Event]:
    """The events of a ``/v1/<kind>`` call, or :class:`ApiError`."""
    message = _load(body)
    if message.get("type", kind) != kind:
        raise ApiError(
            400,
            "invalid",
            f"/v1/{kind} takes {kind} messages",
            [FieldProblem(index=None, field="type", reason="invalid_field", message="wrong type")],
        )
    message["type"] = kind
    followup = ctx.followup
    try:
        return parse_message(
            message, default_timestamp=followup.clock(), phone_region=followup.phone_region
        )
    except EventInvalid as exc:
        raise ApiError(400, "invalid", exc.message, [_problem(None, exc)]) from None


def parse_batch(ctx: ServiceContext, body: bytes) -> list[Event]:
    """The events of a ``/v1/batch`` call: all of them, or :class:`ApiError` naming every bad
    one (413 when one is past the per-event limit)."""
    message = _load(body)
    items = message.get("batch")
    if not isinstance(items, list):
        field = "batch"
        raise ApiError(
            400,
            "invalid",
            "batch must be a list of messages",
            [FieldProblem(index=None, field=field, reason="invalid_field", message="not a list")],
        )
    shared_context = message.get("context")
    limit = ctx.limits.event_bytes
    followup = ctx.followup
    now = followup.clock()
    events: list[Event] = []
    problems: list[FieldProblem] = []
    oversized: list[FieldProblem] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            if _size(item) > limit:
                text = f"the event is larger than {limit:,} bytes"
                oversized.append(
                    FieldProblem(index=index, field="", reason="too_large", message=text)
                )
                continue
            if item.get("type") == "batch":
                text = "a batch item is a track, identify, page or alias message"
                problems.append(
                    FieldProblem(index=index, field="type", reason="unknown_type", message=text)
                )
                continue
            if isinstance(shared_context, dict) and "context" not in item:
                item = {**item, "context": shared_context}
        try:
            events.extend(
                parse_message(item, default_timestamp=now, phone_region=followup.phone_region)
            )
        except EventInvalid as exc:
            problems.append(_problem(index, exc))
    if oversized:
        raise ApiError(413, "too_large", f"{len(oversized)} events past the limit", oversized)
    if problems:
        raise ApiError(400, "invalid", f"{len(problems)} invalid events; none stored", problems)
    return events


def _accept(ctx: ServiceContext, key: str, kind: str, body: bytes) -> tuple[WriteKey, list[Event]]:
    write_key = _check_key(ctx, key)
    events = parse_batch(ctx, body) if kind == "batch" else parse_single(ctx, kind, body)
    return write_key, events


async def _handle(request: Request, kind: str) -> Accepted:
    ctx: ServiceContext = request.app.state.service
    key = basic_auth_key(request)
    limits = ctx.limits
    limit = limits.request_bytes if kind == "batch" else limits.event_bytes
    try:
        body = await read_body(request, limit)
    except BodyTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from None
    request_id = str(request.scope.get("request_id", "-"))
    write_key, events = await run_in_threadpool(_accept, ctx, key, kind, body)
    if not events:  # an empty batch
        return Accepted(accepted=0, duplicates=0)
    source = f"http:{write_key.id}:{request_id}"
    summary = await asyncio.wrap_future(ctx.submit(events, source))
    ctx.count(events, summary)
    return Accepted(accepted=summary.accepted, duplicates=summary.duplicates)


def _body_schema(kind: str) -> dict[str, Any]:
    name = REQUEST_MODELS[kind].__name__
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


router = APIRouter(prefix="/v1", tags=["tracking"], responses=ERROR_RESPONSES)


@router.post("/track", openapi_extra=_body_schema("track"))
async def track(request: Request) -> Accepted:
    """Record that the customer did something."""
    return await _handle(request, "track")


@router.post("/identify", openapi_extra=_body_schema("identify"))
async def identify(request: Request) -> Accepted:
    """Record who the customer is (traits, consent)."""
    return await _handle(request, "identify")


@router.post("/page", openapi_extra=_body_schema("page"))
async def page(request: Request) -> Accepted:
    """Record a page view."""
    return await _handle(request, "page")


@router.post("/screen", openapi_extra=_body_schema("screen"))
async def screen(request: Request) -> Accepted:
    """Record a screen view in a mobile app."""
    return await _handle(request, "screen")


@router.post("/group", openapi_extra=_body_schema("group"))
async def group(request: Request) -> Accepted:
    """Record that the customer belongs to a group (a company, an account)."""
    return await _handle(request, "group")


@router.post("/alias", openapi_extra=_body_schema("alias"))
async def alias(request: Request) -> Accepted:
    """Link an earlier id to a userId."""
    return await _handle(request, "alias")


@router.post("/batch", openapi_extra=_body_schema("batch"))
async def batch(request: Request) -> Accepted:
    """Several messages at once, stored all together or not at all."""
    return await _handle(request, "batch")
