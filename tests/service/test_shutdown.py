"""Graceful shutdown: a request in flight when the server is told to stop is finished, answered
and stored; new connections are refused meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from engine.api import Followup
from engine.config import Project
from engine.service.app import create_app
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from tests.conftest import TickingClock
from tests.service.conftest import project_config


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_stop_finishes_the_request_in_flight(tmp_path: Path, clock: TickingClock) -> None:
    followup = Followup(Project(project_config(f"sqlite:///{tmp_path / 'f.db'}"), tmp_path), clock)
    _, key = KeyStore(followup.engine).create("test", None, clock())
    server = BackgroundServer(create_app(followup, environ={})).start()
    sending = threading.Event()
    stopping = threading.Event()
    answers: list[httpx.Response] = []

    def slow_body() -> Iterator[bytes]:
        yield b'{"batch": ['
        sending.set()
        stopping.wait(30)  # the rest comes only once the server is shutting down
        yield b'{"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "m1"}]}'

    def post() -> None:
        with httpx.Client(auth=(key, ""), timeout=60) as client:
            answers.append(client.post(f"{server.url}/v1/batch", content=slow_body()))

    client = threading.Thread(target=post)
    client.start()
    try:
        assert sending.wait(30)
        deadline = time.monotonic() + 30
        while not server.server.server_state.tasks:  # the server has the request under way
            assert time.monotonic() < deadline, "the request never reached the server"
            time.sleep(0.01)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        deadline = time.monotonic() + 30
        while not _refuses(server.port):  # shutting down: no new connections
            assert time.monotonic() < deadline, "the server kept accepting connections"
            time.sleep(0.05)
        stopping.set()
        client.join(30)
        stopper.join(30)
        assert not stopper.is_alive()
        (answer,) = answers
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True, "accepted": 1, "duplicates": 0}
        assert followup.profile("u1") is not None
    finally:
        stopping.set()
        followup.close()
