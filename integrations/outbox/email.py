"""The email channel as a folder of ``.eml`` files: the embedded default, no credentials needed.

Each delivery becomes one RFC 5322 message, ``<journey>-<step>.eml``, that any mail client opens
and any SMTP relay can send later. Exactly once: the message is written to a temporary file in the
same folder and fsynced, then published with a hard link, which fails instead of overwriting when
the name already exists. A repeated key finds its file and is a harmless repeat; a crash before
the link leaves only a temporary file (``.*.tmp``, skipped by readers, removed at the next start
once stale), never a half message and never two.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from datetime import timedelta
from email import errors as email_errors
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from pathlib import Path

from engine.channels import (
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
    Recipient,
)
from engine.clock import Clock, utc_now
from integrations.outbox._files import (
    ALREADY,
    as_utc,
    failed,
    folder_check,
    fsync_dir,
    io_failed,
    safe_name,
)

# headers a mail client or a mailbox provider reads as a URL: written as given, never encoded
_VERBATIM = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_MAX_LINE = 998  # RFC 5322's hard limit for a line


class WirePolicy(EmailPolicy):
    """``policy.SMTP``, but a ``List-Unsubscribe`` longer than a line is written whole, as
    ``<https://…>``. The standard policy folds a long header with no whitespace by RFC 2047
    encoding it (``=?utf-8?q?=3Chttps=3A//…?=``), and Gmail's and Yahoo's bulk-sender rules then
    find no link to unsubscribe by (RFC 2369 and RFC 8058 allow folding at whitespace only)."""

    def fold(self, name: str, value: str) -> str:
        if _verbatim(name, value):
            return f"{name}: {value}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if _verbatim(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        folded: bytes = super().fold_binary(name, value)
        return folded


def _verbatim(name: str, value: str) -> bool:
    text = str(value)
    return (
        name.lower() in _VERBATIM
        and text.isascii()
        and text.isprintable()
        and len(name) + 2 + len(text) <= _MAX_LINE
    )


WIRE_POLICY = WirePolicy(linesep="\r\n")
"""How a message goes out: to a file of the outbox or over SMTP."""

STALE_TEMP_AGE = timedelta(minutes=15)
"""A temporary file older than this at start-up is a crash's leftover, not a write in progress."""


class MessageInvalid(ValueError):
    """The delivery cannot be made into a message (no address, no body, a bad header)."""


def message_file_name(delivery: Delivery) -> str:
    """``<journey>-<step>.eml``, made safe; a digest of the key is added when the plain name
    could be ambiguous (unsafe characters, a ``-`` in the journey id, an unusual key)."""
    plain = f"{delivery.journey}-{delivery.step}"
    exact = delivery.key == f"{delivery.journey}:{delivery.step}" and "-" not in delivery.journey
    return safe_name(plain, fingerprint=delivery.key, force=not exact) + ".eml"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def message_id(key: str, sender: str) -> str:
    """A Message-ID that is the same for every attempt at the same key."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "followup.localhost"
    return f"<{_digest(key)}@{domain}>"


def build_message(delivery: Delivery, sender: str) -> EmailMessage:
    """The delivery as an email: ``multipart/alternative`` (text, HTML) when both bodies are
    given, a single part otherwise. Raises :class:`MessageInvalid`."""
    fields = delivery.fields
    recipient = delivery.recipient
    email = recipient.email
    if not email:
        raise MessageInvalid("no email address")
    text, html = fields.get("text"), fields.get("html")
    if not text and not html:
        raise MessageInvalid("no body: neither text nor html")
    from_ = str(fields.get("from") or sender)
    try:
        message = EmailMessage(policy=policy.default)
        message["To"] = _address(recipient, email)
        message["From"] = from_
        if fields.get("reply_to"):
            message["Reply-To"] = str(fields["reply_to"])
        message["Subject"] = str(fields.get("subject") or "")
        message["Date"] = format_datetime(as_utc(delivery.due_at))
        message["Message-ID"] = message_id(delivery.key, from_)
        unsubscribe = str(fields.get("unsubscribe_url") or "")
        if unsubscribe:
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            if unsubscribe.lower().startswith("https://"):  # one-click needs HTTPS (RFC 8058)
                message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["X-Followup-Key"] = delivery.key
        message["X-Followup-Campaign"] = delivery.campaign
        message["X-Followup-Journey"] = delivery.journey
        message["X-Followup-Step"] = delivery.step
        tags = fields.get("tags")
        if tags:
            tags = [tags] if isinstance(tags, str) else tags
            message["X-Followup-Tags"] = ", ".join(str(tag) for tag in tags)
        if text:
            message.set_content(str(text))
            if html:
                message.add_alternative(str(html), subtype="html")
                # a boundary from the key, not random: the same delivery is the same bytes
                message.set_boundary(f"followup-{_digest(delivery.key)}")
        else:
            message.set_content(str(html), subtype="html")
    except (ValueError, TypeError, email_errors.MessageError) as error:
        raise MessageInvalid(f"invalid message: {error}") from error
    return message


def _address(recipient: Recipient, email: str) -> Address:
    name = " ".join(part for part in (recipient.first_name, recipient.last_name) if part)
    return Address(display_name=name, addr_spec=email)


def _publish(temp: Path, final: Path) -> bool:
    """Give ``temp`` the name ``final`` unless that name exists; ``True`` if it was published.

    ``os.link`` is the one portable call that is atomic and never replaces an existing file.
    """
    try:
        os.link(temp, final)
    except FileExistsError:
        return False
    return True


class FileEmailOutbox:
    """Writes email deliveries as ``.eml`` files into ``path``, each key exactly once.

    ``sender`` is the From address when a delivery names none. ``clock`` and ``retry_after``
    date the retry of a delivery the file system refused (disk full, permissions).
    """

    name = "outbox"
    idempotent = True  # a repeated key is found and not carried again

    def __init__(
        self,
        path: Path,
        sender: str = "followup@localhost",
        *,
        clock: Clock = utc_now,
        retry_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.path = Path(path)
        self.sender = sender
        self._clock = clock
        self._retry_after = retry_after
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temp_files()

    def check(self) -> ProviderCheck:
        """Whether the folder takes files."""
        return folder_check(self.path)

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Write ``delivery`` as ``<journey>-<step>.eml`` unless it is already there."""
        if delivery.action is not DeliveryAction.SEND:
            return failed(f"the email outbox cannot {delivery.action.value}")
        final = self.path / message_file_name(delivery)
        if final.exists():
            return DeliveryOutcome(DeliveryStatus.DELIVERED, ALREADY, provider_id=final.name)
        try:
            data = build_message(delivery, self.sender).as_bytes(policy=WIRE_POLICY)
        except (MessageInvalid, ValueError, TypeError, email_errors.MessageError) as error:
            return failed(str(error))
        try:
            published = self._write_once(final, data)
        except OSError as error:
            return io_failed(error, self._clock, self._retry_after)
        detail = "written to the outbox" if published else ALREADY
        return DeliveryOutcome(DeliveryStatus.DELIVERED, detail, provider_id=final.name)

    def _write_once(self, final: Path, data: bytes) -> bool:
        fd, temp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=self.path)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            published = _publish(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        if published:
            fsync_dir(self.path)
        return published

    def remove_stale_temp_files(self) -> int:
        """Remove temporary files a crash left behind (older than :data:`STALE_TEMP_AGE`, so a
        write in progress in another process is left alone); returns how many went."""
        cutoff = time.time() - STALE_TEMP_AGE.total_seconds()
        removed = 0
        for temp in self.path.glob(".*.eml.*.tmp"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
        return removed
