"""The Alembic migrations create exactly the tables the code describes, on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.storage.database import current_revision, head_revision, open_database, upgrade
from engine.storage.tables import metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"events", "customers", "identities", "merges", "alembic_version"} <= tables
    finally:
        engine.dispose()
