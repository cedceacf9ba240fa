"""What every dashboard route shares: the service, the session check, HTML answers with safe
headers, the redirect to the login page, and the values every page's layout needs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from engine.service.context import ServiceContext
from engine.service.dashboard.figures import RANGE_LABELS, PeriodChoice
from engine.service.dashboard.session import COOKIE, PATH
from engine.service.keys import WriteKey

LOGIN = f"{PATH}/login"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def service(request: Request) -> ServiceContext:
    """The service's shared state."""
    found: ServiceContext = request.app.state.service
    return found


def page(html: str, status: int = 200, cookie: str | None = None) -> HTMLResponse:
    """An HTML page, never cached, that may run no script."""
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if cookie is not None:
        response.headers.append("Set-Cookie", cookie)
    return response


def redirect(location: str, cookie: str | None = None) -> RedirectResponse:
    """A ``303`` to ``location`` (a GET), setting ``cookie`` when given."""
    response = RedirectResponse(location, status_code=303, headers=HEADERS)
    if cookie is not None:
        response.headers.append("Set-Cookie", cookie)
    return response


async def session(request: Request) -> WriteKey | None:
    """The dashboard key of the request's valid session, or ``None`` (checked in a thread)."""
    ctx = service(request)
    cookie = request.cookies.get(COOKIE)
    return await run_in_threadpool(ctx.sessions.check, cookie, ctx.followup.clock())


def to_login(request: Request) -> RedirectResponse:
    """To the login page, which leads back here once logged in."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"{LOGIN}?{urlencode({'next': here})}")


def layout(choice: PeriodChoice | None = None, **values: Any) -> dict[str, Any]:
    """What every page's layout needs: the period (for links that keep it) and the pickers."""
    values.setdefault("signed_in", True)
    values.setdefault("page", "")
    return {
        "choice": choice,
        "ranges": RANGE_LABELS,
        "query": choice.query if choice else "",
        **values,
    }
