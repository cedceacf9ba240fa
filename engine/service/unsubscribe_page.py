"""``/unsubscribe/<token>``: the link in every email (engine/unsubscribe.py makes it).

``GET`` shows a confirmation page whose button posts the form; ``POST`` is RFC 8058 one-click
(mail clients post ``List-Unsubscribe=One-Click``). Either records an ``Unsubscribed`` track event
for the token's customer and channel through ingest, so the consent change holds at once for
every pending send. A bad or expired token gets a 400 page.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from engine.events import EventInvalid, parse_message
from engine.service.context import ServiceContext
from engine.service.customers import identity_fields
from engine.service.limits import BodyTooLarge, read_body
from engine.state.profile import CONSENT_CHANNELS
from engine.unsubscribe import InvalidToken, UnsubscribeRequest

_TOKEN = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
router = APIRouter(
    tags=["unsubscribe"],
    responses={
        400: {"description": "a malformed, forged or expired link", **_HTML},
        413: {"description": "a request body past 4 KB", **_HTML},
    },
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.5rem 1.5rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


def _invalid(reason: str) -> HTMLResponse:
    text = f"<p>This unsubscribe link cannot be used: {html.escape(reason)}.</p>"
    return _page(400, "Link not valid", text)


def _check(ctx: ServiceContext, token: str) -> tuple[UnsubscribeRequest, dict[str, Any]]:
    """What the token asks, and who it names as message fields; :class:`InvalidToken` if the
    token is bad, its channel unknown or its customer gone."""
    if not _TOKEN.fullmatch(token):  # verify() raises TypeError on non-ASCII (compare_digest)
        raise InvalidToken("malformed unsubscribe token")
    request = ctx.links.verify(token, ctx.followup.clock())
    if request.channel not in CONSENT_CHANNELS:
        raise InvalidToken(f"unknown channel {request.channel!r}")
    who = identity_fields(ctx.followup, request.customer_id)
    if who is None:
        raise InvalidToken("no such customer")
    return request, who


def _record(ctx: ServiceContext, token: str) -> UnsubscribeRequest:
    request, who = _check(ctx, token)
    digest = hashlib.sha256(token.encode()).hexdigest()[:40]
    message = {
        "type": "track",
        "event": "Unsubscribed",
        "messageId": f"unsubscribe:{digest}",  # a second click is a duplicate, harmlessly
        "properties": {"channel": request.channel, "source": "unsubscribe_link"},
        **who,
    }
    followup = ctx.followup
    try:
        events = parse_message(
            message, default_timestamp=followup.clock(), phone_region=followup.phone_region
        )
    except EventInvalid as exc:  # a stored identity always parses; kept as a 400, not a 500
        raise InvalidToken(exc.message) from exc
    ctx.write(events, "unsubscribe")
    return request


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request) -> HTMLResponse:
    """A page that asks to confirm, with a button that posts the one-click form."""
    ctx: ServiceContext = request.app.state.service
    try:
        found, _ = await run_in_threadpool(_check, ctx, token)
    except InvalidToken as exc:
        return _invalid(str(exc))
    body = (
        f"<p>Stop receiving {html.escape(found.channel)} messages from us?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page(200, "Unsubscribe", body)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe (and the confirmation page's button)."""
    ctx: ServiceContext = request.app.state.service
    try:  # List-Unsubscribe=One-Click, or the form; the token is what counts
        await read_body(request, 4096)
    except BodyTooLarge:
        return _page(413, "Request too large", "<p>The request body is too large.</p>")
    try:
        found = await run_in_threadpool(_record, ctx, token)
    except InvalidToken as exc:
        return _invalid(str(exc))
    channel = html.escape(found.channel)
    return _page(200, "Unsubscribed", f"<p>You will get no more {channel} messages from us.</p>")
