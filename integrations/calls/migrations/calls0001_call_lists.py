"""Call lists: the entries of the ``calllist`` provider and the company do-not-call list.

The first revision of the call lists' own branch. Until December 2026 the core's migration 0004
created these tables; a database migrated then has them already, with their rows, and this
revision only marks them as this branch's (it creates a table only where it is missing).

Revision ID: calls0001
Revises: (the branch's first)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "calls0001"
down_revision = None
branch_labels = ("calls",)
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "call_entries" not in present:
        _create_entries()
    if "call_dnc" not in present:
        op.create_table(
            "call_dnc",
            sa.Column("phone", sa.String(32), nullable=False),
            sa.Column("source", sa.String(255), nullable=False),
            sa.Column("added_at", TIME, nullable=False),
            sa.PrimaryKeyConstraint("phone", name="pk_call_dnc"),
        )


def _create_entries() -> None:
    op.create_table(
        "call_entries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("list_name", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("first_name", sa.String(255), nullable=False),
        sa.Column("last_name", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("window_start", sa.String(5), nullable=False),
        sa.Column("window_end", sa.String(5), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("journey_id", sa.String(32), nullable=False),
        sa.Column("cart_value", sa.String(32), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("outcome", sa.String(16)),
        sa.Column("agent", sa.String(255)),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("exported_at", TIME),
        sa.Column("called_at", TIME),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_entries"),
        sa.UniqueConstraint("key", name="uq_call_entries_key"),
    )
    op.create_index("ix_call_entries_phone", "call_entries", ["phone"])
    op.create_index("ix_call_entries_list_status", "call_entries", ["list_name", "status"])


def downgrade() -> None:
    op.drop_table("call_dnc")
    op.drop_table("call_entries")
