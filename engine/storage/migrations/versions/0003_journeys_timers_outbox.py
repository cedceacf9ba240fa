"""The campaign engine's tables: journey inbox, campaign versions, journeys, timers, campaign
members, outbox, decisions and schedule ticks; merges findable by the event that made them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("ix_merges_message_id", "merges", ["message_id"])
    op.create_table(
        "journey_inbox",
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_journey_inbox"),
    )
    op.create_table(
        "campaign_versions",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("source", sa.String(1024)),
        sa.Column("first_seen_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "version", name="pk_campaign_versions"),
    )
    op.create_table(
        "journeys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("campaign_version", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("entered_at", TIME, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journeys"),
    )
    op.create_index("ix_journeys_customer", "journeys", ["customer_id", "settled"])
    op.create_index(
        "ix_journeys_campaign", "journeys", ["campaign_id", "status", "campaign_version"]
    )
    op.create_table(
        "journey_timers",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("journey_id", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journey_timers"),
    )
    op.create_index("ix_journey_timers_due_at", "journey_timers", ["due_at"])
    op.create_index("ix_journey_timers_customer_id", "journey_timers", ["customer_id"])
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("last_entry_at", TIME),
        sa.Column("in_segment", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name="pk_campaign_members"),
    )
    op.create_index("ix_campaign_members_customer", "campaign_members", ["customer_id"])
    op.create_table(
        "outbox",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("journey_id", sa.String(32), nullable=False),
        sa.Column("step", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("decided_at", TIME, nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("provider_id", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_customer_id", "outbox", ["customer_id"])
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "decisions",
        sa.Column("id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("journey_id", sa.String(32)),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("step", sa.String(128)),
        sa.Column("channel", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("reason", sa.String(64)),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_customer", "decisions", ["customer_id", "at"])
    op.create_table(
        "schedule_ticks",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("after_customer", sa.String(32)),
        sa.PrimaryKeyConstraint("name", name="pk_schedule_ticks"),
    )


def downgrade() -> None:
    for table in (
        "schedule_ticks",
        "decisions",
        "outbox",
        "campaign_members",
        "journey_timers",
        "journeys",
        "campaign_versions",
        "journey_inbox",
    ):
        op.drop_table(table)
    op.drop_index("ix_merges_message_id", "merges")
