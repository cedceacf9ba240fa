"""Profile states as PostgreSQL ``json``, not ``jsonb``.

Ingest rewrites a customer's whole state (2-6 KB in a busy shop) in every batch that has an event
of theirs, and nothing queries inside it: ``jsonb`` made the server parse and re-encode every one
(75 µs an update by COPY + UPDATE … FROM, against 39 as ``json``, on 2,000 states of the service
benchmark). ``events.payload`` stays ``jsonb``, which the sample builder queries. SQLite keeps JSON
as text either way: nothing changes there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("state", "engine_state")


def _retype(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {c}::{kind}" for c in COLUMNS)
    op.execute(f"ALTER TABLE customers {changes}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
