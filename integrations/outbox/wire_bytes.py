"""The bytes of a plain email written directly: what the standard ``email`` package would write
for it, a tenth of the time.

Building a message with :class:`email.message.EmailMessage` costs about a millisecond: a header
object is parsed for each header, then folded again to be written. Most messages followup sends
need none of that: every header is short printable ASCII with nothing to quote or encode. For
those, :func:`message` writes the very bytes the package would (headers in the same order, the
bodies encoded by the package's own ``_encode_text``); for any other the checks here say no and
the caller (``integrations.outbox.email._plain_bytes``) builds the message the standard way. ``tests/unit/test_wire_bytes.py``
draws deliveries and requires the two to agree byte for byte.
"""

from __future__ import annotations

import re
from email import contentmanager
from email.policy import EmailPolicy
from typing import Any

CRLF = "\r\n"
MAX_LINE = 78  # policy.max_line_length: a longer header would be folded
_ATOMS = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")  # a display name needing no quotes
_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_encode_text = contentmanager._encode_text  # type: ignore[attr-defined]  # the package's own
NLCRE = re.compile(r"\r\n|\r|\n")  # the line breaks the generator writes as CRLF
_NAMED = re.compile(rf"({_ATOMS.pattern}) <({_ADDRESS.pattern})>")


def plain_address(value: str) -> bool:
    """Whether an address header holding ``value`` is written as given: ``a@b.c`` or
    ``Name Name <a@b.c>``."""
    return bool(_ADDRESS.fullmatch(value) or _NAMED.fullmatch(value))


def plain_addr_spec(value: str) -> bool:
    """Whether ``value`` is a bare address written as given."""
    return bool(_ADDRESS.fullmatch(value))


def plain_name(value: str) -> bool:
    """Whether ``value`` is a display name written without quotes or encoding."""
    return value == "" or bool(_ATOMS.fullmatch(value))


def plain_text(name: str, value: str) -> bool:
    """Whether an unstructured header is written as given on one line."""
    return (
        value.isascii()
        and value.isprintable()
        and "=?" not in value  # would be read as an encoded word
        and value == value.strip()
        and "  " not in value
        and len(name) + 2 + len(value) <= MAX_LINE
    )


def header_lines(headers: list[tuple[str, str]]) -> str | None:
    """``headers`` as lines, or ``None`` if one of them would not be written as given."""
    lines = []
    for name, value in headers:
        if not plain_text(name, value):
            return None
        lines.append(f"{name}: {value}{CRLF}" if value else f"{name}:{CRLF}")
    return "".join(lines)


def body_part(text: str, subtype: str, policy: EmailPolicy[Any]) -> tuple[str, bytes]:
    """The content headers and the encoded body of a ``text/<subtype>`` part, as
    ``set_content`` makes them and the generator writes them."""
    cte, payload = _encode_text(text, "utf-8", None, policy)
    headers = (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}Content-Transfer-Encoding: {cte}{CRLF}'
    )
    body = CRLF.join(NLCRE.split(payload))
    return headers, body.encode("ascii", "surrogateescape")


def message(
    headers: str, text: str | None, html: str | None, boundary: str, policy: EmailPolicy[Any]
) -> bytes:
    """The message: ``headers`` (lines), then one part or ``multipart/alternative``."""
    mime = f"MIME-Version: 1.0{CRLF}"
    if text and html:
        text_headers, text_body = body_part(text, "plain", policy)
        html_headers, html_body = body_part(html, "html", policy)
        delimiter = f"--{boundary}"
        return b"".join(
            (
                (
                    f"{headers}{mime}Content-Type: multipart/alternative;{CRLF}"
                    f' boundary="{boundary}"{CRLF}{CRLF}{delimiter}{CRLF}{text_headers}{CRLF}'
                ).encode("ascii"),
                text_body,
                f"{CRLF}{delimiter}{CRLF}{html_headers}{mime}{CRLF}".encode("ascii"),
                html_body,
                f"{CRLF}{delimiter}--{CRLF}".encode("ascii"),
            )
        )
    part_headers, body = body_part(text or html or "", "plain" if text else "html", policy)
    return f"{headers}{part_headers}{mime}{CRLF}".encode("ascii") + body
