"""``/confirm/<token>``: the link in a double opt-in confirmation email (engine/confirm_links.py
makes it, :mod:`engine.double_opt_in` sends it).

``GET`` shows a page whose button posts the form; ``POST`` records a ``Subscription Confirmed``
track event for the token's customer through ingest, which grants the consent: with the time,
the channel and list, the signup's time, and the address and browser the confirmation came
from (``context.ip``, ``context.userAgent``), the shop's proof of consent. A ``GET`` alone
changes nothing, so a mail scanner that opens every link confirms no one. A bad or expired
token (the signup is forgotten after the policy's ``expires``, default 7 days) gets a 400 page.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from engine.confirm_links import Signup
from engine.double_opt_in import CONFIRMED, withdrawn_since
from engine.journeys.plan import format_time
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
from engine.signed_links import InvalidToken

router = APIRouter(tags=["double opt-in"], responses=RESPONSES)
_WHAT = "confirmation"


def _check(ctx: ServiceContext, token: str) -> tuple[Signup, dict[str, Any]]:
    """The signup the token confirms, and who it names as message fields; :class:`InvalidToken`
    if the token is bad or expired, or its customer gone."""
    if not TOKEN.fullmatch(token):
        raise InvalidToken("malformed confirmation token")
    signup = ctx.confirm_links.verify(token, ctx.followup.clock())
    who = customer_fields(ctx, signup.customer_id)
    _still_wanted(ctx, signup)
    return signup, who


def _still_wanted(ctx: ServiceContext, signup: Signup) -> None:
    """:class:`InvalidToken` when the customer withdrew consent on the signup's channel after
    signing up: an old link must not subscribe them again."""
    profile = ctx.followup.profile(signup.customer_id, recent=0)
    if profile is None:
        return
    if withdrawn_since(profile.state.consent, signup.channel, signup.signed_up_at):
        raise InvalidToken("you unsubscribed after signing up; sign up again for a new link")


def _record(ctx: ServiceContext, token: str, ip: str | None, agent: str | None) -> Signup:
    signup, who = _check(ctx, token)
    properties: dict[str, Any] = {
        "channel": signup.channel,
        "source": "confirmation_link",
        "signed_up_at": format_time(signup.signed_up_at),
    }
    if signup.list is not None:
        properties["list"] = signup.list
    context = dict(who.pop("context", {}))
    context.update({key: value for key, value in (("ip", ip), ("userAgent", agent)) if value})
    message = {"event": CONFIRMED, "properties": properties, **who}
    if context:
        message["context"] = context
    record(ctx, token, message, "confirm")
    return signup


def _subject(signup: Signup) -> str:
    return f"the {html.escape(signup.list)} list" if signup.list else f"our {signup.channel}s"


@router.get("/confirm/{token}", response_class=HTMLResponse)
async def ask(token: str, request: Request) -> HTMLResponse:
    """A page that asks to confirm, with a button that posts the form."""
    ctx: ServiceContext = request.app.state.service
    try:
        signup, _ = await run_in_threadpool(_check, ctx, token)
    except InvalidToken as exc:
        return invalid(_WHAT, str(exc))
    body = (
        f"<p>Confirm that you want to receive {_subject(signup)}.</p>"
        '<form method="post"><button type="submit">Confirm my subscription</button></form>'
    )
    return page(200, "Confirm your subscription", body)


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request) -> HTMLResponse:
    """Record the confirmation: consent is granted from now."""
    ctx: ServiceContext = request.app.state.service
    try:
        await read_body(request, 4096)
    except BodyTooLarge:
        return too_large()
    ip = request.client.host if request.client is not None else None
    agent = request.headers.get("user-agent")
    try:
        signup = await run_in_threadpool(_record, ctx, token, ip, agent)
    except InvalidToken as exc:
        return invalid(_WHAT, str(exc))
    return page(
        200, "Subscription confirmed", f"<p>Thank you: you will receive {_subject(signup)}.</p>"
    )
