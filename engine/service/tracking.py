"""``POST /v1/track|identify|page|screen|group|alias|batch``: Segment's HTTP tracking API.

A write key comes as HTTP Basic auth (the key as user name, no password) or, as Segment's
clients may send it, as ``writeKey`` in the body. A body may be gzip or deflate compressed. Its
events are parsed and checked with :func:`engine.events.parse_message`, as file ingest does; the
good ones are stored in one transaction (``200`` means they are durable), the bad ones of a batch
kept in the rejects store and named in the answer. A single call's bad event is a ``400``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from engine.ingest.pipeline import IngestSummary
from engine.service.context import ServiceContext
from engine.service.errors import ApiError
from engine.service.keys import WriteKey
from engine.service.limits import BodyTooLarge, read_body, retry_after
from engine.service.models import REQUEST_EXAMPLES, REQUEST_MODELS, Problem, Tracked
from engine.service.parsing import Parsed, parse_request
from engine.service.roles import WRITE

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "a body that cannot be read, or a single call's bad event",
    },
    401: {"model": Problem, "description": "missing, unknown or revoked write key"},
    413: {"model": Problem, "description": "the request is too large (decompressed too)"},
    415: {"model": Problem, "description": "a Content-Encoding other than gzip or deflate"},
    429: {"model": Problem, "description": "the key's rate limit; see Retry-After"},
    503: {"model": Problem, "description": "concurrent writers kept conflicting; retry"},
}

_UNAUTHORIZED = {"WWW-Authenticate": 'Basic realm="followup"'}
_SEND_KEY = "send the write key as HTTP Basic auth: the key as user name, an empty password"


def basic_auth_key(request: Request) -> str | None:
    """The write key of an ``Authorization: Basic`` header (user name, empty password); none
    without the header (the key may be in the body), a 401 for any other header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user, _, _password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise ApiError(401, "unauthorized", _SEND_KEY, headers=_UNAUTHORIZED)


def _check_key(ctx: ServiceContext, key: str | None) -> WriteKey:
    if key is None:
        raise ApiError(401, "unauthorized", _SEND_KEY, headers=_UNAUTHORIZED)
    found = ctx.keys.authenticate(key, WRITE)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked write key", headers=_UNAUTHORIZED)
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


def _accept(
    ctx: ServiceContext,
    header_key: str | None,
    kind: str,
    body: bytes,
    encoding: str | None,
    received_at: datetime,
    request_id: str,
) -> tuple[str, Parsed]:
    """The request's source (``http:<key id>:<request id>``) and events; its bad events are in
    the rejects store once this returns (a single call's bad event is then a 400)."""
    write_key = _check_key(ctx, header_key) if header_key is not None else None
    parsed = parse_request(kind, body, encoding, ctx.limits, received_at, ctx.followup.phone_region)
    if write_key is None:
        write_key = _check_key(ctx, parsed.write_key)
    source = f"http:{write_key.id}:{request_id}"
    if parsed.refused:
        ctx.keep_rejects(source, parsed.refused)
        if kind != "batch":
            problem = parsed.refused[0].problem
            raise ApiError(400, "invalid", problem.message, [problem])
        for refused in parsed.refused:
            ctx.metrics.event_rejects.labels(refused.problem.reason).inc()
    return source, parsed


async def _handle(request: Request, kind: str) -> Tracked:
    ctx: ServiceContext = request.app.state.service
    received_at = ctx.followup.clock()
    header_key = basic_auth_key(request)
    limits = ctx.limits
    limit = limits.request_bytes if kind == "batch" else limits.event_bytes
    try:
        body = await read_body(request, limit)
    except BodyTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from None
    request_id = str(request.scope.get("request_id", "-"))
    encoding = request.headers.get("content-encoding")
    source, parsed = await run_in_threadpool(
        _accept, ctx, header_key, kind, body, encoding, received_at, request_id
    )
    events = parsed.events
    summary = IngestSummary()
    if events:
        summary = await asyncio.wrap_future(ctx.submit(events, source))
        ctx.count(events, summary)
    return Tracked(
        success=True,
        accepted=summary.accepted,
        duplicates=summary.duplicates,
        rejected=len(parsed.refused),
        errors=[refused.problem for refused in parsed.refused],
    )


def _body_schema(kind: str) -> dict[str, Any]:
    name = REQUEST_MODELS[kind].__name__
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}"},
                    "example": REQUEST_EXAMPLES[kind],
                }
            },
        }
    }


_ANSWER: dict[str, Any] = {"response_model_exclude_defaults": True}  # no rejects: not named
router = APIRouter(prefix="/v1", tags=["tracking"], responses=ERROR_RESPONSES)


@router.post("/track", openapi_extra=_body_schema("track"), **_ANSWER)
async def track(request: Request) -> Tracked:
    """Record that the customer did something."""
    return await _handle(request, "track")


@router.post("/identify", openapi_extra=_body_schema("identify"), **_ANSWER)
async def identify(request: Request) -> Tracked:
    """Record who the customer is (traits, consent)."""
    return await _handle(request, "identify")


@router.post("/page", openapi_extra=_body_schema("page"), **_ANSWER)
async def page(request: Request) -> Tracked:
    """Record a page view."""
    return await _handle(request, "page")


@router.post("/screen", openapi_extra=_body_schema("screen"), **_ANSWER)
async def screen(request: Request) -> Tracked:
    """Record a screen view in a mobile app."""
    return await _handle(request, "screen")


@router.post("/group", openapi_extra=_body_schema("group"), **_ANSWER)
async def group(request: Request) -> Tracked:
    """Record that the customer belongs to a group (a company, an account)."""
    return await _handle(request, "group")


@router.post("/alias", openapi_extra=_body_schema("alias"), **_ANSWER)
async def alias(request: Request) -> Tracked:
    """Link an earlier id to a userId."""
    return await _handle(request, "alias")


@router.post("/batch", openapi_extra=_body_schema("batch"), **_ANSWER)
async def batch(request: Request) -> Tracked:
    """Several messages at once: the good ones stored, the bad ones kept as rejects."""
    return await _handle(request, "batch")
