"""What the pages behind the links in emails share (``/unsubscribe/<token>``,
``/confirm/<token>``): the plain HTML page, the token's shape, and recording the event a link
asks for through ingest, for the customer it names."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from fastapi.responses import HTMLResponse

from engine.events import EventInvalid, parse_message
from engine.service.context import ServiceContext
from engine.service.customers import identity_fields
from engine.signed_links import InvalidToken

TOKEN = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "a malformed, forged or expired link", **HTML},
    413: {"description": "a request body past 4 KB", **HTML},
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.5rem 1.5rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(status: int, title: str, body: str) -> HTMLResponse:
    """A small page: ``body`` is HTML, ``title`` text."""
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


def invalid(what: str, reason: str) -> HTMLResponse:
    """The 400 page of a link that cannot be used."""
    text = f"<p>This {what} link cannot be used: {html.escape(reason)}.</p>"
    return page(400, "Link not valid", text)


def too_large() -> HTMLResponse:
    """The 413 page of a request body past the limit."""
    return page(413, "Request too large", "<p>The request body is too large.</p>")


def customer_fields(ctx: ServiceContext, customer_id: str) -> dict[str, Any]:
    """The identity fields of the customer a token names (see :func:`identity_fields`);
    :class:`InvalidToken` when that customer is gone."""
    who = identity_fields(ctx.followup, customer_id)
    if who is None:
        raise InvalidToken("no such customer")
    return who


def record(
    ctx: ServiceContext, token: str, message: dict[str, Any], source: str, round_: str = ""
) -> None:
    """Store the track ``message`` a link asks for, once: its messageId is made from the token
    (``<source>:<digest>``, and ``round_`` when given), so a second click is a harmless
    duplicate."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:40]
    message_id = f"{source}:{digest}" + (f":{round_}" if round_ else "")
    followup = ctx.followup
    try:
        events = parse_message(
            {"type": "track", "messageId": message_id, **message},
            default_timestamp=followup.clock(),
            phone_region=followup.phone_region,
        )
    except EventInvalid as exc:  # a stored identity always parses; kept as a 400, not a 500
        raise InvalidToken(exc.message) from exc
    ctx.write(events, source)
