"""The call lists' tables (created by this integration's branch of migrations,
``integrations/calls/migrations``), on the core's ``metadata``.

- ``call_entries``: one row per call delivery, unique by delivery key, with the dialer's cells
  and the entry's life: pending -> exported -> called (with its outcome), or suppressed.
- ``call_dnc``: the company's do-not-call list, by E.164 phone.

Registered under the ``followup.tables`` entry points, so what needs the whole schema finds them
(:func:`engine.storage.tables.load_integration_tables`).
"""

from __future__ import annotations

import sqlalchemy as sa

from engine.storage.tables import UTCDateTime, metadata

call_entries = sa.Table(
    "call_entries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("list_name", sa.String(128), nullable=False),
    sa.Column("customer_id", sa.String(32), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False, index=True),
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
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text()),
    sa.Column("outcome", sa.String(16)),
    sa.Column("agent", sa.String(255)),
    sa.Column("note", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("exported_at", UTCDateTime()),
    sa.Column("called_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_call_entries_list_status", "list_name", "status"),
)

call_dnc = sa.Table(
    "call_dnc",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("added_at", UTCDateTime(), nullable=False),
)
