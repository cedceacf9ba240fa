"""A running service for each test: uvicorn on a free loopback port in a thread, on the backend
under test, with a write key and the webhook secrets set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.service.app import create_app
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.storage.tables import events
from tests.conftest import TickingClock

MAILCHIMP_SECRET = "mc-hook-5f1e2d"
CALLS_SECRET = "calls-hook-9a8b7c"
ENVIRON = {
    "FOLLOWUP_MAILCHIMP_WEBHOOK_SECRET": MAILCHIMP_SECRET,
    "FOLLOWUP_CALLS_WEBHOOK_SECRET": CALLS_SECRET,
}


@dataclass
class Running:
    """A service under test: its URL, a valid write key and the engine behind it."""

    url: str
    key: str
    followup: Followup
    clock: TickingClock

    def client(self, key: str | None = None) -> httpx.Client:
        """A client that signs with ``key`` (default: the valid key)."""
        auth = (key if key is not None else self.key, "")
        return httpx.Client(base_url=self.url, auth=auth, timeout=30)

    def message_ids(self) -> list[str]:
        """Every messageId in the event log."""
        with self.followup.engine.connect() as conn:
            return list(conn.scalars(sa.select(events.c.message_id)))


def start(followup: Followup, clock: TickingClock) -> tuple[BackgroundServer, Running]:
    """Serve ``followup`` in a thread; the running service and its server."""
    _, key = KeyStore(followup.engine).create("test", None, clock())
    server = BackgroundServer(create_app(followup, environ=ENVIRON)).start()
    return server, Running(server.url, key, followup, clock)


def project_config(database_url: str, **server: object) -> ProjectConfig:
    """A config on ``database_url`` with ``server:`` settings."""
    return ProjectConfig.model_validate({"database_url": database_url, "server": server})


@pytest.fixture
def backend_service(database_url: str, tmp_path: Path, clock: TickingClock) -> Iterator[Running]:
    """The service on the backend under test (SQLite and PostgreSQL)."""
    followup = Followup(Project(project_config(database_url), tmp_path), clock)
    server, running = start(followup, clock)
    yield running
    server.stop()
    followup.close()


@pytest.fixture
def service(tmp_path: Path, clock: TickingClock) -> Iterator[Running]:
    """The service on SQLite only, for tests whose point is not the backend."""
    url = f"sqlite:///{tmp_path / 'followup.db'}"
    followup = Followup(Project(project_config(url), tmp_path), clock)
    server, running = start(followup, clock)
    yield running
    server.stop()
    followup.close()
