"""The email channel over SMTP (``provider: smtp``): one message per delivery, through a relay.

A delivery is one SMTP transaction (``MAIL``, ``RCPT``, ``DATA``), driven step by step so the
outcome says exactly how far the message got:

- refused with a 4xx reply anywhere, or the connection lost before the end of the message was
  handed over (the server cannot accept a message it never saw end): ``FAILED`` with ``retry_at``;
- refused with a 5xx reply (a recipient refused, a sender not allowed, content rejected), a
  login refused with 535 (a wrong password is a configuration error that retrying cannot fix),
  a server without STARTTLS or with an untrusted certificate: ``FAILED`` for good, code and text;
- no reply (a timeout, a dropped connection) after the whole message was sent: ``UNKNOWN``. The
  server may have queued it and SMTP has no way to ask, so it is never resent
  (``idempotent = False``).

One connection is kept across deliveries and dropped after :data:`IDLE` without use; a reused
connection the server closed meanwhile is opened again once, before anything is sent.
"""

from __future__ import annotations

import base64
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email import errors as email_errors
from typing import Literal

from engine.channels import (
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
)
from engine.clock import Clock, utc_now
from engine.secrets import Redactor
from integrations.outbox.email import WIRE_POLICY, MessageInvalid, build_message
from integrations.smtp.replies import CLOSING, Refused, describe_connect_error, reply_text

Security = Literal["starttls", "ssl", "none"]
IDLE = 30.0
"""Seconds a kept connection may sit unused before it is closed rather than reused."""
RETRY_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect: ``tls`` verifies the server (the system's CAs, or a private
    CA's file); ``username``/``password`` log in when given."""

    host: str
    port: int
    security: Security = "starttls"
    timeout: float = 30.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context, repr=False)

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def _payload(message: bytes) -> bytes:
    """The message as DATA content: dot-stuffed, ending with the ``.`` line (RFC 5321 4.5.2)."""
    stuffed = re.sub(rb"(?m)^\.", b"..", message)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SmtpEmail:
    """Sends email deliveries through an SMTP relay; see the module for what each outcome
    means. ``sender`` is the envelope sender (bounces go there) and the From of a delivery that
    names none. Call :meth:`close` when done."""

    name = "smtp"
    idempotent = False  # SMTP has no idempotency key: a message sent twice arrives twice

    def __init__(
        self,
        server: SmtpServer,
        sender: str,
        *,
        clock: Clock = utc_now,
        retry_after: timedelta = RETRY_AFTER,
        idle: float = IDLE,
        where: str = "providers.email",
    ) -> None:
        self.server = server
        self.sender = sender
        self._clock = clock
        self._retry_after = retry_after
        self._idle = idle
        self._where = where
        secrets = [server.password or ""]
        if server.password:
            secrets += _encodings(server.username or "", server.password)
        self._redact = Redactor(secrets)
        self._lock = threading.Lock()
        self._conn: smtplib.SMTP | None = None
        self._last_used = 0.0

    # --- connections ------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        """A connection that has greeted, secured itself and logged in as configured."""
        server = self.server
        conn: smtplib.SMTP
        if server.security == "ssl":
            conn = smtplib.SMTP_SSL(
                server.host, server.port, timeout=server.timeout, context=server.tls
            )
        else:
            conn = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
        try:
            conn.ehlo()
            if server.security == "starttls":
                conn.starttls(context=server.tls)
                conn.ehlo()
            if server.username and server.password:
                conn.login(server.username, server.password)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """The kept connection (``True``: reused) or a new one."""
        if self._conn is not None and time.monotonic() - self._last_used > self._idle:
            self._drop(polite=True)
        if self._conn is not None:
            return self._conn, True
        self._conn = self._connect()
        self._last_used = time.monotonic()
        return self._conn, False

    def _drop(self, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if polite:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        conn.close()

    def close(self) -> None:
        """Say QUIT and close the kept connection, if any."""
        with self._lock:
            self._drop(polite=True)

    # --- delivering -------------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Send ``delivery`` as one SMTP transaction; never raises for the channel's failures."""
        if delivery.action is not DeliveryAction.SEND:
            return self._failed(f"SMTP cannot {delivery.action.value}")
        recipient = (delivery.recipient.email or "").strip()
        if not recipient:
            return self._failed("no email address")
        if not recipient.isascii():
            return self._failed(f"the address {recipient} needs SMTPUTF8, which is not supported")
        try:
            message = build_message(delivery, self.sender)
            data = message.as_bytes(policy=WIRE_POLICY)
        except (MessageInvalid, ValueError, TypeError, email_errors.MessageError) as error:
            return self._failed(str(error))
        message_id = str(message["Message-ID"])
        with self._lock:
            return self._send(recipient, data, message_id)

    def _send(self, recipient: str, data: bytes, message_id: str) -> DeliveryOutcome:
        for _ in range(2):
            try:
                conn, reused = self._connection()
            except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
                return self._not_connected(exc)
            step = "MAIL FROM"
            try:
                options = (
                    ["BODY=8BITMIME"] if not data.isascii() and conn.has_extn("8bitmime") else []
                )
                self._expect("MAIL FROM", conn.mail(self.sender, options), 250)
                step = "RCPT TO"
                self._expect("RCPT TO", conn.rcpt(recipient), 250, 251)
                step = "DATA"
                self._expect("DATA", conn.docmd("DATA"), 354)
                step = "the message"
                conn.send(_payload(data))  # raises unless every byte, the final "." too, went out
                step = "sent"
                code, reply = conn.getreply()
                self._last_used = time.monotonic()
                self._expect("the message", (code, reply), 250)
            except Refused as refused:
                if refused.code == CLOSING:  # the server is closing this connection
                    self._drop()
                    if reused and refused.step == "MAIL FROM":
                        continue  # it had timed the kept connection out; nothing was sent
                else:
                    self._reset(conn)
                return self._refused(refused)
            except Exception as exc:  # noqa: BLE001 - a lost connection, a timeout, a bad reply
                self._drop()
                if step == "sent":
                    return self._unknown(exc)
                if reused and step == "MAIL FROM":
                    continue  # the kept connection had gone stale; nothing was sent on it
                return self._retry(f"connection to {self.server.address} lost at {step}: {exc}")
            return DeliveryOutcome(
                DeliveryStatus.DELIVERED,
                self._redact(f"accepted by {self.server.address}: {code} {reply_text(reply)}"),
                provider_id=message_id,
            )
        return self._retry(f"connection to {self.server.address} lost twice before sending")

    @staticmethod
    def _expect(step: str, reply: tuple[int, bytes], *codes: int) -> None:
        code, text = reply
        if code not in codes:
            raise Refused(step, code, text)

    def _reset(self, conn: smtplib.SMTP) -> None:
        """Abort the transaction so the kept connection can carry the next one."""
        try:
            code, _ = conn.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._drop()
        else:
            self._last_used = time.monotonic()

    # --- outcomes ---------------------------------------------------------------------------

    def _failed(self, detail: str) -> DeliveryOutcome:
        return DeliveryOutcome(DeliveryStatus.FAILED, self._redact(detail))

    def _retry(self, detail: str) -> DeliveryOutcome:
        return DeliveryOutcome(
            DeliveryStatus.FAILED, self._redact(detail), self._clock() + self._retry_after
        )

    def _refused(self, refused: Refused) -> DeliveryOutcome:
        what = {
            "MAIL FROM": f"sender {self.sender} refused",
            "RCPT TO": "recipient refused",
            "DATA": "DATA refused",
            "the message": "message refused",
        }[refused.step]
        detail = f"{what}: {refused.code} {refused.text}"
        if 400 <= refused.code < 500:
            return self._retry(detail)
        return self._failed(detail)

    def _unknown(self, exc: Exception) -> DeliveryOutcome:
        timed_out = isinstance(exc, TimeoutError) or "timed out" in str(exc)
        reason = "timed out" if timed_out else f"failed ({exc})"
        return DeliveryOutcome(
            DeliveryStatus.UNKNOWN,
            self._redact(
                f"the message was sent to {self.server.address} but waiting for its reply "
                f"{reason}; it may have been accepted, so it is not resent: check by hand"
            ),
        )

    def _not_connected(self, exc: Exception) -> DeliveryOutcome:
        permanent, detail = describe_connect_error(exc, self.server.address, self._where)
        return self._failed(detail) if permanent else self._retry(detail)

    # --- checking ---------------------------------------------------------------------------

    def check(self) -> ProviderCheck:
        """Connect, greet, secure, log in and say NOOP and QUIT; nothing is sent."""
        server = self.server
        try:
            conn = self._connect()
        except Exception as exc:  # noqa: BLE001 - a failed check, not a traceback
            return ProviderCheck(
                False, self._redact(describe_connect_error(exc, server.address, self._where)[1])
            )
        try:
            code, reply = conn.noop()
            if code != 250:
                return ProviderCheck(
                    False, self._redact(f"NOOP refused: {code} {reply_text(reply)}")
                )
        except (smtplib.SMTPException, OSError) as exc:
            return ProviderCheck(False, self._redact(f"{server.address} dropped the check: {exc}"))
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        secured = {"starttls": "STARTTLS", "ssl": "implicit TLS", "none": "no TLS"}[server.security]
        login = ", logged in" if server.username else ""
        return ProviderCheck(True, f"{server.address} answered ({secured}{login})")


def _encodings(username: str, password: str) -> list[str]:
    """What a password looks like on the wire in AUTH PLAIN and LOGIN, to redact those too."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return [b64(password), b64(f"\0{username}\0{password}")]
