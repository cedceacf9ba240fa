"""JSON values made safe for every backend: a depth limit, and no U+0000 in any string.

PostgreSQL refuses U+0000 in text and jsonb where SQLite keeps it, so the same event was stored on
one backend and refused (a 500) on the other: every NUL of a key or string becomes U+FFFD (the
replacement character) when a message is parsed, on both. orjson writes at most 254 levels, and a
stored profile or journey nests an event's properties a few levels deeper than the event: a
message nested deeper than :data:`MAX_DEPTH` levels is refused, naming where.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

MAX_DEPTH = 32  # levels of objects and lists, the message itself being the first
NUL = "\x00"
REPLACEMENT = "\ufffd"
_ESCAPED_NUL = b"\\u0000"  # as orjson writes U+0000


class TooDeep(Exception):
    """A value nested past :data:`MAX_DEPTH`; :attr:`path` says where (``properties.a[0].b``)."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.parts: list[str] = []

    @property
    def path(self) -> str:
        """The dotted path of the object or list past the limit."""
        return "".join(reversed(self.parts)).lstrip(".").replace(NUL, REPLACEMENT)


def clean(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with every NUL replaced (the same object when it holds none), or
    :class:`TooDeep`.

    Written by orjson first (a microsecond): a message with fewer ``{`` and ``[`` than
    :data:`MAX_DEPTH` cannot be nested deeper, and one without an escaped NUL holds none, so the
    walk in Python runs only for the rare large or odd message."""
    try:
        text = orjson.dumps(message)
    except orjson.JSONEncodeError:  # past orjson's own depth, or a value it cannot write
        text = b"{" * (MAX_DEPTH + 1)
    if clean_text(text):
        return message
    if _has_nul(message, 1):
        scrubbed: dict[str, Any] = _scrub(message)
        return scrubbed
    return message


def clean_text(text: bytes) -> bool:
    """Whether the JSON ``text`` is one :func:`clean` leaves as it is without looking: fewer
    ``{`` and ``[`` than :data:`MAX_DEPTH` and no escaped NUL (JSON can write U+0000 no other
    way). A line of a file, read just now, spares its message the check."""
    return text.count(b"{") + text.count(b"[") <= MAX_DEPTH and _ESCAPED_NUL not in text


def _has_nul(value: dict[str, Any] | list[Any], depth: int) -> bool:
    if depth > MAX_DEPTH:
        raise TooDeep
    found = False
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in pairs:
        if isinstance(key, str) and NUL in key:
            found = True
        if isinstance(item, str):
            found = found or NUL in item
        elif isinstance(item, dict | list):
            try:
                found = _has_nul(item, depth + 1) or found
            except TooDeep as exc:
                exc.parts.append(f".{key}" if isinstance(value, dict) else f"[{key}]")
                raise
    return found


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def shallow(value: Any, depth: int = MAX_DEPTH) -> Any:
    """``value`` with what is nested past ``depth`` levels written as ``"…"``: a value too deep
    to write whole can still be kept (a rejected event's raw text)."""
    if depth <= 0 and isinstance(value, dict | list):
        return "…"
    if isinstance(value, dict):
        return {key: shallow(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list):
        return [shallow(item, depth - 1) for item in value]
    return value


def _plain_json(value: Any) -> Any:
    """orjson's ``default``: what a condition's value is as JSON data, when it is not already
    (an iterator a filter returned: its items; a set: its items in a fixed order)."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def as_json(value: Any) -> Any:
    """``value`` as the database keeps it and reads it back: JSON data (times as RFC 3339 text,
    an iterator as a list, NaN as null); ``None`` for what JSON cannot hold. A campaign's
    ``update`` step writes this, so ``simulate`` and the durable engine, which stores it, see the
    same trait in every later condition."""
    try:
        return orjson.loads(orjson.dumps(value, default=_plain_json))
    except (TypeError, orjson.JSONEncodeError):
        return None
