"""Call lists: nothing now (kept so that the revisions after it follow on).

Until December 2026 this revision created the call lists' tables (``call_entries``,
``call_dnc``). They belong to the calls integration, which keeps them in a branch of its own
(``integrations/calls/migrations``, revision ``calls0001``): a new database gets them there, and a
database that ran this revision before keeps them, and their rows, as that branch's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The call lists are the calls branch's (``calls0001``)."""


def downgrade() -> None:
    """Nothing was created here: the calls branch drops its own tables."""
