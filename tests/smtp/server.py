"""A real SMTP server for the tests: aiosmtpd on loopback in a thread, with STARTTLS or implicit
TLS from a CA made in the test (trustme), AUTH (PLAIN, LOGIN) offered only over TLS, and faults
on demand: a reply per recipient or for DATA, a dropped connection after DATA, a stall."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USERNAME = "shop@example.com"
PASSWORD = "s3cret-Pa55word"
STALL_LIMIT = 10.0  # a stalled step gives up after this, or when the test ends


@dataclass
class Received:
    """One message the server accepted the whole content of."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any
    tls: bool
    login: str | None


@dataclass
class Faults:
    """What the server does instead of accepting, each used once: ``rcpt`` at RCPT and ``data``
    after the content of DATA, queued per recipient address; ``mail`` at the next MAILs. An
    action is a reply like ``"450 busy"``, ``"drop"`` (close the connection without a reply) or
    ``"stall"`` (no answer until the test ends)."""

    rcpt: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, list[str]] = field(default_factory=dict)
    mail: list[str] = field(default_factory=list)


class Handler:
    """Records what arrives and applies :class:`Faults`."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.messages: list[Received] = []
        self.commands: list[str] = []
        self.logins: list[tuple[str, str]] = []  # (mechanism, login) of each success
        self.released = threading.Event()

    async def _stall(self) -> None:
        deadline = time.monotonic() + STALL_LIMIT
        while not self.released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append(f"MAIL {address}")
        if self.faults.mail:
            action = self.faults.mail.pop(0)
            transport = server.transport
            assert transport is not None
            if action == "drop":
                transport.close()
            else:  # a reply, then the connection closes, as a server timing it out does
                asyncio.get_running_loop().call_later(0.05, transport.close)
            return action
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append(f"RCPT {address}")
        queued = self.faults.rcpt.get(address)
        if queued:
            action = queued.pop(0)
            if action == "stall":
                await self._stall()
                return "451 stalled"
            return action
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.commands.append("DATA")
        queued = self.faults.data.get(envelope.rcpt_tos[0])
        action = queued.pop(0) if queued else "250 queued"
        if action[0] in "45":
            return action
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                envelope.content,
                session.peer,
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                session.auth_data.login.decode() if session.auth_data else None,
            )
        )
        if action == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "250 never heard"
        if action == "stall":
            await self._stall()
        return "250 queued"


def authenticator(handler: Handler, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USERNAME
            and data.password.decode() == password
        )
        if ok:
            handler.logins.append((mechanism, data.login.decode()))
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    return check


@dataclass
class RunningServer:
    """A started server: where it listens, its handler, the CA that signed its certificate."""

    host: str
    port: int
    handler: Handler
    ca: trustme.CA


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(
    security: str = "starttls",
    *,
    auth: bool = True,
    exclude: tuple[str, ...] = (),
    ca: trustme.CA | None = None,
) -> Iterator[RunningServer]:
    """An SMTP server on 127.0.0.1: ``security`` is ``starttls`` (offered and required before
    MAIL), ``ssl`` (implicit TLS) or ``none``; AUTH is offered over TLS when ``auth``."""
    ca = ca or trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    handler = Handler()
    kwargs: dict[str, Any] = {"auth_exclude_mechanism": list(exclude)}
    if auth:
        kwargs["authenticator"] = authenticator(handler, PASSWORD)
    if security == "starttls":
        kwargs |= {"tls_context": context, "require_starttls": True}
    elif security == "ssl":
        kwargs |= {"ssl_context": context, "auth_require_tls": False}  # the whole session is TLS
    for attempt in range(3):  # another process may take the free port before we bind it
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        try:
            controller.start()
            break
        except OSError:
            if attempt == 2:
                raise
    try:
        yield RunningServer("127.0.0.1", port, handler, ca)
    finally:
        handler.released.set()
        controller.stop()
