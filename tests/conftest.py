"""Shared fixtures: the database backends every storage test runs on, and a fixed clock.

PostgreSQL tests need the local server (127.0.0.1:5432, trust auth). Unreachable, they are skipped
with the reason, except when FOLLOWUP_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.storage.tables import load_integration_tables, metadata

POSTGRES_ADMIN_URL = os.environ.get(
    "FOLLOWUP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FIXED_NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def services_required() -> bool:
    """Whether a missing service fails the run (CI) instead of skipping."""
    return os.environ.get("FOLLOWUP_REQUIRE_SERVICES") == "1"


def need_service(name: str, error: Exception) -> None:
    """Skip (or, in CI, fail) a test whose service is unreachable."""
    message = f"{name} is not reachable: {error}"
    if services_required():
        pytest.fail(message + " (FOLLOWUP_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"followup_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        need_service("PostgreSQL", exc)
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    load_integration_tables()  # the call lists' tables too
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [t.name for t in metadata.sorted_tables]
        existing = set(sa.inspect(conn).get_table_names())
        present = [t for t in tables if t in existing]
        if present:
            conn.execute(sa.text(f"TRUNCATE {', '.join(present)} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external_service)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite (a file) and on PostgreSQL (an emptied database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'followup.db'}"
    url: str = request.getfixturevalue("empty_postgres")
    return url


@pytest.fixture
def empty_postgres(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    _empty_postgres(postgres_url)
    return postgres_url


class TickingClock:
    """A virtual clock: starts at FIXED_NOW, moves only when told."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def followup(database_url: str, tmp_path: Path, clock: TickingClock) -> Iterator[Followup]:
    """The embedded engine on the backend under test."""
    project = Project(ProjectConfig(database_url=database_url), tmp_path)
    engine = Followup(project, clock)
    yield engine
    engine.close()
