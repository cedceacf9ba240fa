"""``List-Unsubscribe`` with a real-length signed link reaches the receiver as ``<https://…>``,
on one line or folded at whitespace only, never RFC 2047-encoded (which Gmail's and Yahoo's
bulk-sender rules do not read as a link): in the file outbox and over SMTP. The messages are
read as a receiver reads them: the raw header bytes, and the standard library's parser."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from pathlib import Path

import trustme

from engine.channels import DeliveryStatus
from engine.unsubscribe import UnsubscribeLinks
from integrations.outbox.email import FileEmailOutbox
from tests.smtp.conftest import an_email, build
from tests.smtp.server import smtp_server

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _real_link() -> str:
    links = UnsubscribeLinks(b"s" * 32, "https://shop.example.com")
    url = links.url("c_0123456789abcdef0123456789", "email", NOW)
    assert len(url) > 150  # longer than a header line may be before it is folded
    return url


def _header_lines(raw: bytes, name: str) -> list[str]:
    """The header ``name`` as it is on the wire, unfolded only at CRLF + whitespace."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", head)
    return [line for line in unfolded.split("\r\n") if line.lower().startswith(name.lower() + ":")]


def _check(raw: bytes, url: str) -> None:
    assert _header_lines(raw, "List-Unsubscribe") == [f"List-Unsubscribe: <{url}>"]
    assert _header_lines(raw, "List-Unsubscribe-Post") == [
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n", 1)[0]
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert received["List-Unsubscribe"] == f"<{url}>"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_the_file_outbox_writes_the_link_as_a_link(tmp_path: Path) -> None:
    url = _real_link()
    outcome = FileEmailOutbox(tmp_path).deliver(an_email(unsubscribe_url=url))
    assert outcome.status is DeliveryStatus.DELIVERED
    [written] = tmp_path.glob("*.eml")
    _check(written.read_bytes(), url)


def test_smtp_sends_the_link_as_a_link(tmp_path: Path, ca: trustme.CA) -> None:
    url = _real_link()
    with smtp_server("none", auth=False, ca=ca) as server:
        provider = build(server, tmp_path, "none", ca_file=None)
        try:
            outcome = provider.deliver(an_email(unsubscribe_url=url))
        finally:
            provider.close()
    assert outcome.status is DeliveryStatus.DELIVERED, outcome.detail
    [received] = server.handler.messages
    _check(received.data, url)
