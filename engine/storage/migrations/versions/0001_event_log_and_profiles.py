"""Event log, customers, identities and merges.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("anonymous_id", sa.String(255)),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("source", sa.String(512)),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("message_id", name="uq_events_message_id"),
    )
    op.create_index("ix_events_customer_time", "events", ["customer_id", "timestamp"])

    op.create_table(
        "customers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("merged_into", sa.String(32)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(32)),
        sa.Column("first_seen_at", TIME),
        sa.Column("last_seen_at", TIME),
        sa.Column("state", JSON),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_email", "customers", ["email"])
    op.create_index("ix_customers_last_seen_at", "customers", ["last_seen_at"])
    op.create_index("ix_customers_merged_into", "customers", ["merged_into"])

    op.create_table(
        "identities",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("first_seen_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_identities"),
    )
    op.create_index("ix_identities_customer_id", "identities", ["customer_id"])

    op.create_table(
        "merges",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("survivor_id", sa.String(32), nullable=False),
        sa.Column("merged_id", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("linked_keys", JSON, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_merges"),
    )
    op.create_index("ix_merges_survivor_id", "merges", ["survivor_id"])
    op.create_index("ix_merges_merged_id", "merges", ["merged_id"])


def downgrade() -> None:
    op.drop_table("merges")
    op.drop_table("identities")
    op.drop_table("customers")
    op.drop_table("events")
