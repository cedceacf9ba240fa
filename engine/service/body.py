"""Request bodies as the Segment and RudderStack clients send them: JSON, plain or compressed.

RudderStack's Python and Node SDKs gzip every request by default, Segment's can; a body with
``Content-Encoding: gzip`` (or ``x-gzip``) or ``deflate`` is decompressed here. What comes out is
held to the same limit as a plain body (413 past it), and decompression stops as soon as it
passes that limit, so a small zip bomb costs nothing. Any other encoding gets a 415.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from engine.events import RejectReason
from engine.service.errors import ApiError

GZIP = 16 + zlib.MAX_WBITS
ZLIB = zlib.MAX_WBITS
RAW_DEFLATE = -zlib.MAX_WBITS
_CODINGS = {"gzip": GZIP, "x-gzip": GZIP, "deflate": ZLIB}


def decode(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` undone of its ``Content-Encoding`` (codings are undone last first), at most
    ``limit`` bytes, or :class:`ApiError` (413 too large, 415 unknown coding, 400 corrupt)."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        wbits = _CODINGS.get(coding)
        if wbits is None:
            raise ApiError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {coding!r} is not supported; send gzip, deflate or none",
            )
        body = _inflate(body, coding, wbits, limit)
    return body


def _inflate(data: bytes, coding: str, wbits: int, limit: int) -> bytes:
    """Every member of a gzip body (or the one zlib stream of deflate), stopping past ``limit``.
    ``deflate`` is the zlib format by the HTTP spec; raw deflate, which some clients send, is
    taken too."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            if wbits == ZLIB and not out:
                return _inflate(data, coding, RAW_DEFLATE, limit)
            text = f"the body is not valid {coding}: {exc}"
            raise ApiError(400, "invalid_encoding", text) from None
        if len(out) > limit:
            raise ApiError(
                413, "too_large", f"the request body is larger than {limit:,} bytes decompressed"
            )
        if not inflater.eof:
            raise ApiError(400, "invalid_encoding", f"the {coding} body ends before its end")
        data = inflater.unused_data
        if not data or wbits != GZIP:
            break
    if data:
        raise ApiError(400, "invalid_encoding", f"the {coding} body has bytes past its end")
    return bytes(out)


def load_object(body: bytes) -> dict[str, Any]:
    """The JSON object of ``body``, or a 400 (not JSON, nested past 1,024 levels, not an
    object)."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, RejectReason.INVALID_JSON.value, f"the body is not JSON: {exc}"
        ) from None
    if not isinstance(message, dict):
        raise ApiError(400, RejectReason.NOT_AN_OBJECT.value, "the body must be a JSON object")
    return message
