"""Outbox rows by journey, so a send can wait for the earlier sends of its journey.

The dispatcher passes over a ``send`` while an earlier ``send`` of the same journey is pending or
being sent, and skips it when one failed for good (``engine/drive/dispatcher.py``): two lookups per
due row, on ``(journey_id, id)``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_journey", "outbox", ["journey_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_journey", "outbox")
