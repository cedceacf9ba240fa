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
import functools
import hashlib
import itertools
import os
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from email import errors as email_errors
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
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
from integrations.outbox import wire_bytes
from integrations.outbox._files import (
    ALREADY,
    as_utc,
    failed,
    folder_check,
    fsync_dir,
    io_failed,
    safe_name,
    sync_files,
)

# headers a mail client or a mailbox provider reads as a URL: written as given, never encoded
_VERBATIM = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_MAX_LINE = 998  # RFC 5322's hard limit for a line
ONE_CLICK = "List-Unsubscribe=One-Click"  # List-Unsubscribe-Post's one value (RFC 8058)


class CachedHeaderRegistry(HeaderRegistry):
    """The standard header registry, but each header class is made once: the standard one
    builds a new class with ``type()`` for every header of every message, which was most of
    the time it took to build a message."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


_HEADERS = CachedHeaderRegistry()
BUILD_POLICY = policy.default.clone(header_factory=_HEADERS)
"""How a message is built: :data:`email.policy.default` with the header classes made once."""


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


WIRE_POLICY = WirePolicy(linesep="\r\n", header_factory=_HEADERS)
"""How a message goes out: to a file of the outbox or over SMTP."""

_TEMP_NUMBERS = itertools.count()  # next() is atomic: threads never share a number

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
    return f"<{_digest(key)}@{_domain(sender)}>"


@functools.lru_cache(maxsize=256)
def _domain(sender: str) -> str:
    """The domain of ``sender``'s address (parsed once: a third of a message's bytes' time)."""
    return parseaddr(sender)[1].rpartition("@")[2] or "followup.localhost"


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
        message = EmailMessage(policy=BUILD_POLICY)
        message["To"] = _address(recipient, email)
        message["From"] = from_
        if fields.get("reply_to"):
            message["Reply-To"] = str(fields["reply_to"])
        message["Subject"] = literal_text(str(fields.get("subject") or ""))
        message["Date"] = format_datetime(as_utc(delivery.due_at))
        message["Message-ID"] = message_id(delivery.key, from_)
        unsubscribe = str(fields.get("unsubscribe_url") or "")
        if unsubscribe:
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            if _one_click(unsubscribe):
                message["List-Unsubscribe-Post"] = ONE_CLICK
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


def message_bytes(delivery: Delivery, sender: str) -> bytes:
    """The delivery as the bytes of an email on the wire (see :func:`build_message`): written
    directly when every header is plain (:mod:`integrations.outbox.wire_bytes`), the same
    bytes either way. Raises :class:`MessageInvalid`."""
    plain = _plain_bytes(delivery, sender)
    if plain is not None:
        return plain
    return build_message(delivery, sender).as_bytes(policy=WIRE_POLICY)


def _plain_bytes(delivery: Delivery, sender: str) -> bytes | None:
    """The message's bytes, written directly; ``None`` when a header needs quoting, encoding
    or folding (the standard package then builds it), or the delivery is not a message."""
    fields = delivery.fields
    recipient = delivery.recipient
    email = recipient.email
    text, html = fields.get("text"), fields.get("html")
    name = _display_name(recipient)
    from_ = str(fields.get("from") or sender)
    reply_to = str(fields["reply_to"]) if fields.get("reply_to") else None
    if not (
        email
        and (text or html)
        and wire_bytes.plain_name(name)
        and wire_bytes.plain_addr_spec(email)
        and wire_bytes.plain_address(from_)
        and (reply_to is None or wire_bytes.plain_address(reply_to))
    ):
        return None
    before = [("To", f"{name} <{email}>" if name else email), ("From", from_)]
    if reply_to is not None:
        before.append(("Reply-To", reply_to))
    before += [
        ("Subject", str(fields.get("subject") or "")),
        ("Date", _date_header(delivery.due_at)),
        ("Message-ID", message_id(delivery.key, from_)),
    ]
    after = [
        ("X-Followup-Key", delivery.key),
        ("X-Followup-Campaign", delivery.campaign),
        ("X-Followup-Journey", delivery.journey),
        ("X-Followup-Step", delivery.step),
    ]
    tags = fields.get("tags")
    if tags:
        tags = [tags] if isinstance(tags, str) else tags
        after.append(("X-Followup-Tags", ", ".join(str(tag) for tag in tags)))
    lines = wire_bytes.header_lines(before)
    listed = _plain_list_unsubscribe(str(fields.get("unsubscribe_url") or ""))
    rest = wire_bytes.header_lines(after)
    if lines is None or listed is None or rest is None:
        return None
    return wire_bytes.message(
        lines + listed + rest,
        str(text) if text else None,
        str(html) if html else None,
        f"followup-{_digest(delivery.key)}",
        BUILD_POLICY,
    )


@functools.lru_cache(maxsize=1024)
def _date_header(due_at: datetime) -> str:
    """The Date header of a message due at ``due_at`` (a pass's messages share a few)."""
    return format_datetime(as_utc(due_at))


def _plain_list_unsubscribe(url: str) -> str | None:
    """The List-Unsubscribe lines for ``url`` ("" without one), ``None`` unless written as
    given."""
    if not url:
        return ""
    value = f"<{url}>"
    if not _verbatim("List-Unsubscribe", value) or "=?" in url or " " in url:
        return None
    found = f"List-Unsubscribe: {value}\r\n"
    if _one_click(url):
        found += f"List-Unsubscribe-Post: {ONE_CLICK}\r\n"
    return found


def _one_click(url: str) -> bool:
    """Whether the unsubscribe link takes a one-click POST: it needs HTTPS (RFC 8058)."""
    return url.lower().startswith("https://")


def _display_name(recipient: Recipient) -> str:
    return " ".join(part for part in (recipient.first_name, recipient.last_name) if part)


def _address(recipient: Recipient, email: str) -> Address:
    return Address(display_name=literal_text(_display_name(recipient)), addr_spec=email)


WORD_JOINER = "\u2060"


def literal_text(value: str) -> str:
    """``value`` as a header shows it, never read as RFC 2047 encoded words: the standard
    package decodes ``=?utf-8?q?Eve=0D=0ABcc:_x@evil.test?=`` in a header set from a string,
    and writes the CR LF it decodes as a line break: a first name or a subject rendered from
    a trait made headers of its own (``Bcc:``, ``Reply-To:``, a body). A word joiner, which
    shows as nothing, keeps ``=?`` from starting an encoded word (RFC 2047, section 5: text
    that looks like one must not be read as one); the header then goes out encoded, and a
    mail client shows the text as it was written."""
    return value.replace("=?", f"={WORD_JOINER}?") if "=?" in value else value


def _publish(temp: str, final: str) -> bool:
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
    throttled_per_delivery = True  # a batch is a group commit of messages: a rate counts each

    def __init__(
        self,
        path: Path,
        sender: str = "followup@localhost",
        *,
        clock: Clock = utc_now,
        retry_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.path = Path(path)
        self._folder = str(self.path)  # the paths of a batch are strings: pathlib costs 10 us
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
        return self.deliver_batch([delivery])[0]

    def deliver_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Write each delivery unless its file is already there, with one group commit: every
        message to a temporary file, one sync of the file system (:func:`sync_files`), then
        each published by its link and the folder synced once. A delivery the file system
        refused is failed with a retry time, and the rest of the batch goes on."""
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        staged: list[tuple[int, str, str]] = []  # (index, temporary file, file name)
        try:
            for index, delivery in enumerate(deliveries):
                found = self._staged(delivery)
                if isinstance(found, DeliveryOutcome):
                    outcomes[index] = found
                    continue
                name, data = found
                try:
                    staged.append((index, self._write_temp(name, data), name))
                except OSError as error:
                    outcomes[index] = io_failed(error, self._clock, self._retry_after)
            self._publish_all(staged, outcomes)
        finally:
            for _, temp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        return [outcome or failed("not written") for outcome in outcomes]

    def _staged(self, delivery: Delivery) -> DeliveryOutcome | tuple[str, bytes]:
        """The outcome of ``delivery`` known before writing (a file already there, a message
        that cannot be built), else its file's name and its bytes."""
        if delivery.action is not DeliveryAction.SEND:
            return failed(f"the email outbox cannot {delivery.action.value}")
        name = message_file_name(delivery)
        if os.access(os.path.join(self._folder, name), os.F_OK):  # exists, without raising
            return DeliveryOutcome(DeliveryStatus.DELIVERED, ALREADY, provider_id=name)
        try:
            return name, message_bytes(delivery, self.sender)
        except (MessageInvalid, ValueError, TypeError, email_errors.MessageError) as error:
            return failed(str(error))

    def _write_temp(self, name: str, data: bytes) -> str:
        """``data`` in a new temporary file beside the file ``name``: ``.<name>.<pid>-<n>.tmp``,
        made with ``O_EXCL`` (a name left by a dead process of the same pid is passed over)."""
        while True:
            temp = os.path.join(self._folder, f".{name}.{os.getpid()}-{next(_TEMP_NUMBERS)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            try:
                view = memoryview(data)
                while view:  # a regular file takes it whole, short writes aside
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            return temp

    def _publish_all(
        self, staged: list[tuple[int, str, str]], outcomes: list[DeliveryOutcome | None]
    ) -> None:
        """Make the staged files durable, then give each its name; the folder synced once."""
        if not staged:
            return
        try:
            sync_files(self.path, [temp for _, temp, _ in staged])
        except OSError as error:
            for index, _, _ in staged:
                outcomes[index] = io_failed(error, self._clock, self._retry_after)
            return
        published = False
        for index, temp, name in staged:
            try:
                new = _publish(temp, os.path.join(self._folder, name))
            except OSError as error:
                outcomes[index] = io_failed(error, self._clock, self._retry_after)
                continue
            published |= new
            detail = "written to the outbox" if new else ALREADY
            outcomes[index] = DeliveryOutcome(DeliveryStatus.DELIVERED, detail, provider_id=name)
        if published:
            fsync_dir(self.path)

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
