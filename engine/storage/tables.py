"""The database tables, as SQLAlchemy Core metadata; Alembic migrations create them.

- ``events``: the event log, the truth. One row per accepted event, unique by messageId.
- ``customers``: one row per profile, with its derived state as JSON and a ``version`` that every
  write bumps (so a cached state can be trusted without reading it again). A profile merged into
  another keeps its row with ``merged_into`` set, so its old id still resolves.
- ``identities``: identity key (``user:…``, ``anon:…``, ``email:…``, ``phone:…``) -> customer.
- ``merges``: every merge, with the event that linked the two profiles.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A tz-aware UTC datetime on every backend (SQLite keeps no offset, so it is added back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType: sa.types.TypeEngine[Any] = sa.JSON().with_variant(JSONB(), "postgresql")
Sequence = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(255), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("customer_id", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(255)),
    sa.Column("anonymous_id", sa.String(255)),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("source", sa.String(512)),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Index("ix_events_customer_time", "customer_id", "timestamp"),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("merged_into", sa.String(32), index=True),
    sa.Column("user_id", sa.String(255)),
    sa.Column("email", sa.String(320), index=True),
    sa.Column("phone", sa.String(32)),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.Column("last_seen_at", UTCDateTime(), index=True),
    sa.Column("state", JSONType),
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("customer_id", sa.String(32), nullable=False, index=True),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
)

merges = sa.Table(
    "merges",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("survivor_id", sa.String(32), nullable=False, index=True),
    sa.Column("merged_id", sa.String(32), nullable=False, index=True),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("linked_keys", JSONType, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)
