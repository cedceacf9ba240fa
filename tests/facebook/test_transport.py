"""Real sockets under the SDK: a Graph endpoint that never answers (a read timeout after the
request was sent) and one that resets the connection. ``FacebookSession.GRAPH`` (the SDK's base
URL) points at a local server; nothing else is replaced."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from facebook_business.session import FacebookSession

from engine.channels import DeliveryStatus, ProviderContext
from integrations.facebook.registry import facebook_provider
from tests.conftest import FIXED_NOW
from tests.facebook.deliveries import JANE, audience_change
from tests.facebook.graph import ACCOUNT, TOKEN


class _Server:
    """Accepts connections on loopback, reads each request, then stays silent or resets."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                self.requests.append(conn.recv(65536))
                if self.mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.stop.wait()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(params=["silent", "reset"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    running = _Server(request.param)
    monkeypatch.setattr(FacebookSession, "GRAPH", f"http://127.0.0.1:{running.port}")
    yield running
    running.close()


def test_a_timeout_or_a_reset_is_retried_and_never_shows_the_token(server: _Server) -> None:
    settings = {"provider": "facebook", "ad_account_id": ACCOUNT, "timeout_seconds": 0.3}
    context = ProviderContext("ads", Path("."), {"FACEBOOK_ACCESS_TOKEN": TOKEN})
    provider = facebook_provider(settings, context)
    provider._clock = lambda: FIXED_NOW  # type: ignore[attr-defined]

    outcome = provider.deliver(audience_change(JANE))

    (sent,) = server.requests
    assert sent.startswith(f"GET /v26.0/{ACCOUNT}/customaudiences?access_token={TOKEN}&".encode())
    what = {"silent": "timed out (ReadTimeout)", "reset": "lost the connection (ConnectionError)"}
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.detail == (
        f"audience 'cart-abandoners': the call to Meta {what[server.mode]}; safe to retry"
    )
    assert outcome.retry_at == FIXED_NOW + timedelta(seconds=30)
    assert TOKEN not in outcome.detail
