"""Alembic environment: migrations run on the connection followup hands over."""

from __future__ import annotations

from alembic import context

from engine.storage.tables import load_integration_tables, metadata

load_integration_tables()  # the schema is the core's tables and the integrations' ones

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - followup always passes its connection
    raise RuntimeError("run migrations through engine.storage.database.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
