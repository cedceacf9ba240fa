"""``/unsubscribe/<token>``: the link in every email (engine/unsubscribe.py makes it).

``GET`` shows a confirmation page whose button posts the form; ``POST`` is RFC 8058 one-click
(mail clients post ``List-Unsubscribe=One-Click``). Either records an ``Unsubscribed`` track event
for the token's customer and channel through ingest, so the consent change holds at once for
every pending send. A bad or expired token gets a 400 page.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from engine.consent_values import CONSENT_CHANNELS
from engine.service.context import ServiceContext
from engine.service.limits import BodyTooLarge, read_body
from engine.service.link_pages import (
    RESPONSES,
    TOKEN,
    customer_fields,
    invalid,
    page,
    record,
    too_large,
)
from engine.state.codec import key_to_json
from engine.unsubscribe import InvalidToken, UnsubscribeRequest

router = APIRouter(tags=["unsubscribe"], responses=RESPONSES)


def _check(ctx: ServiceContext, token: str) -> tuple[UnsubscribeRequest, dict[str, Any]]:
    """What the token asks, and who it names as message fields; :class:`InvalidToken` if the
    token is bad, its channel unknown or its customer gone."""
    if not TOKEN.fullmatch(token):  # verify() raises TypeError on non-ASCII (compare_digest)
        raise InvalidToken("malformed unsubscribe token")
    request = ctx.links.verify(token, ctx.followup.clock())
    if request.channel not in CONSENT_CHANNELS:
        raise InvalidToken(f"unknown channel {request.channel!r}")
    return request, customer_fields(ctx, request.customer_id)


def _record(ctx: ServiceContext, token: str) -> UnsubscribeRequest:
    """Record the unsubscribe the token asks for, if the customer consents to its channel now:
    once for each time they gave consent (the latest change's order key makes the messageId
    apart), so a click on an old email after a new signup unsubscribes again, and a second
    click while unsubscribed records nothing (it would change nothing)."""
    request, who = _check(ctx, token)
    profile = ctx.followup.profile(request.customer_id, recent=0)
    consent = profile.state.consent if profile is not None else None
    if consent is None or not getattr(consent, request.channel, False):
        return request
    given = consent.changed_at.get(request.channel)
    round_ = "-".join(str(part) for part in key_to_json(given)) if given is not None else "given"
    properties = {"channel": request.channel, "source": "unsubscribe_link"}
    message = {"event": "Unsubscribed", "properties": properties, **who}
    record(ctx, token, message, "unsubscribe", round_)
    return request


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request) -> HTMLResponse:
    """A page that asks to confirm, with a button that posts the one-click form."""
    ctx: ServiceContext = request.app.state.service
    try:
        found, _ = await run_in_threadpool(_check, ctx, token)
    except InvalidToken as exc:
        return invalid("unsubscribe", str(exc))
    body = (
        f"<p>Stop receiving {html.escape(found.channel)} messages from us?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return page(200, "Unsubscribe", body)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe (and the confirmation page's button)."""
    ctx: ServiceContext = request.app.state.service
    try:  # List-Unsubscribe=One-Click, or the form; the token is what counts
        await read_body(request, 4096)
    except BodyTooLarge:
        return too_large()
    try:
        found = await run_in_threadpool(_record, ctx, token)
    except InvalidToken as exc:
        return invalid("unsubscribe", str(exc))
    channel = html.escape(found.channel)
    return page(200, "Unsubscribed", f"<p>You will get no more {channel} messages from us.</p>")
