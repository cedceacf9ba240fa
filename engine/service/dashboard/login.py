"""``/dashboard/login`` and ``/dashboard/logout``: a dashboard key starts a session (a signed
cookie, :mod:`engine.service.dashboard.session`); logging out clears it."""

from __future__ import annotations

import posixpath
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.service.dashboard.render import render
from engine.service.dashboard.session import PATH
from engine.service.dashboard.web import LOGIN, layout, page, redirect, service, session
from engine.service.limits import BodyTooLarge, read_body
from engine.service.roles import DASHBOARD

router = APIRouter(prefix=PATH, include_in_schema=False)
FORM_BYTES = 4096


def _safe_next(target: str | None) -> str:
    """Where to go after the login: a dashboard page of this server, else the overview."""
    if not target or "\\" in target:
        return PATH
    parts = urlsplit(target)
    path = posixpath.normpath(parts.path) if parts.path else ""
    if (
        parts.scheme
        or parts.netloc
        or not (path == PATH or path.startswith(f"{PATH}/"))
        or path == LOGIN
    ):
        return PATH
    return path + (f"?{parts.query}" if parts.query else "")


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The login form (a dashboard key); a valid session goes straight on."""
    target = _safe_next(request.query_params.get("next"))
    if await session(request) is not None:
        return redirect(target)
    return page(render("login.html", **layout(next=target, error=None, signed_in=False)))


def cross_site(request: Request) -> bool:
    """Whether a form post comes from another site's page (the browser says so in
    ``Sec-Fetch-Site``, else ``Origin`` names another host): the session cookie is ``Lax``,
    so a link from a mail opens the dashboard, and the two forms that change it check this."""
    fetched = request.headers.get("sec-fetch-site")
    if fetched is not None:
        return fetched == "cross-site"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _refused() -> Response:
    return page(render("login.html", **layout(next=PATH, error=_CROSS, signed_in=False)), 403)


_CROSS = "This form was sent from another site; open the dashboard and log in here."


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key (a dashboard key, active) and start a session."""
    if cross_site(request):
        return _refused()
    ctx = service(request)
    try:
        body = await read_body(request, FORM_BYTES)
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except (BodyTooLarge, UnicodeDecodeError):
        fields = {}
    target = _safe_next(fields.get("next"))
    key = fields.get("key", "").strip()
    found = await run_in_threadpool(ctx.keys.authenticate, key, DASHBOARD) if key else None
    if found is None:
        error = "Unknown or revoked key, or not a dashboard key."
        return page(
            render("login.html", **layout(next=target, error=error, signed_in=False)), status=401
        )
    return redirect(target, ctx.sessions.start(found, ctx.followup.clock()))


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session: clear the cookie and go back to the login page."""
    if cross_site(request):
        return _refused()
    return redirect(LOGIN, service(request).sessions.end())
