"""A real webhook receiver for the tests: ``http.server`` on loopback in a thread (plain, or TLS
with a certificate from a CA made in the test) that checks every request's signature with
:func:`integrations.webhook.verify_signature` and answers as told."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

from integrations.webhook import verify_signature

SECRET = "whsec-test-0123456789"
STALL_LIMIT = 10.0


@dataclass(frozen=True)
class Reply:
    """What to answer: a status with headers and a body, or ``"stall"`` (answer only when the
    test ends) or ``"reset"`` (read the request, then reset the connection)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    action: str = ""


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


class Receiver:
    """The receiver's state: what arrived, and the replies queued for the next requests."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self.released = threading.Event()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _record(self) -> Received:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            verified = verify_signature(
                receiver.secret,
                self.headers.get("X-Followup-Timestamp", ""),
                body,
                self.headers.get("X-Followup-Signature", ""),
                datetime.now(UTC),
            )
            received = Received(self.command, self.path, dict(self.headers), body, verified)
            receiver.requests.append(received)
            return received

        def _answer(
            self, status: int, body: str = "", headers: dict[str, str] | None = None
        ) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up; nothing to answer

        def do_POST(self) -> None:
            received = self._record()
            if not received.verified:
                self._answer(401, "bad signature")
                return
            reply = receiver.replies.pop(0) if receiver.replies else Reply()
            if reply.action == "stall":
                receiver.released.wait(STALL_LIMIT)
            elif reply.action == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            self._answer(reply.status, reply.body, reply.headers)

        def do_HEAD(self) -> None:
            self._record()
            self._answer(405)

        do_GET = do_OPTIONS = do_PUT = do_HEAD

    return Handler


@dataclass
class RunningReceiver:
    """A started receiver: its base URL and its state."""

    url: str
    receiver: Receiver


@contextmanager
def webhook_receiver(
    secret: str = SECRET, *, ca: trustme.CA | None = None
) -> Iterator[RunningReceiver]:
    """A receiver on 127.0.0.1: HTTPS with a certificate from ``ca`` when given, else HTTP."""
    receiver = Receiver(secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    scheme = "http"
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield RunningReceiver(f"{scheme}://127.0.0.1:{server.server_address[1]}", receiver)
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()
        thread.join()
