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

from engine.plugin_groups import TABLES

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
# whole documents written often and never queried inside (profile states): PostgreSQL ``json``,
# kept as text, not parsed into ``jsonb`` on every write (migration 0013)
DocumentJSON: sa.types.TypeEngine[Any] = sa.JSON()
# the same, with Python ``None`` written as SQL NULL (not JSON ``null``)
NullableDocumentJSON: sa.types.TypeEngine[Any] = sa.JSON(none_as_null=True)
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
    # the profile the event was received as, once a merge has moved it to another (migration
    # 0021): the journey engine takes it as that profile's until it takes the merge
    sa.Column("received_as", sa.String(32)),
    sa.Index("ix_events_customer_time", "customer_id", "timestamp"),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("merged_into", sa.String(32)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("email", sa.String(320), index=True),
    sa.Column("phone", sa.String(32)),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.Column("last_seen_at", UTCDateTime(), index=True),
    sa.Column("state", DocumentJSON),
    # the profile as of the events the journey engine has taken, while ingest is ahead of it
    # (migration 0012); empty when it is the profile itself
    sa.Column("engine_state", NullableDocumentJSON),
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # only the merged rows (migration 0008): a full index let SQLite answer "merged_into IS NULL"
    # (every live customer) from it, scanning a million rows to load a batch of 500 by id
    sa.Index(
        "ix_customers_merged_into",
        "merged_into",
        sqlite_where=sa.text("merged_into IS NOT NULL"),
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    ),
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
    sa.Column("message_id", sa.String(255), nullable=False, index=True),
    sa.Column("linked_keys", JSONType, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# --- the campaign engine (migration 0003) ------------------------------------------------------
# - ``journey_inbox``: events logged but not yet seen by the journey engine; ingest adds a row in
#   the same transaction as the event, the engine deletes it in the transaction that advances the
#   journeys, so a crash in between replays the event instead of losing the trigger. It keeps the
#   event's time (migration 0007) and arrival sequence (0009) so a batch reads the backlog in
#   order by its own index, and whose the event was when logged (0017): a merge ingest made
#   since is the engine's to take at the merging event.
# - ``campaign_versions``: every campaign version a journey entered with, as the schema's JSON.
# - ``journeys``: one customer in one campaign from one entry; ``state`` is where it is.
# - ``journey_timers``: durable waits and deferred sends, by due time.
# - ``campaign_members``: per campaign and customer, the last entry and the segment's last value.
# - ``outbox``: one row per channel action, unique by (journey, step) key, with its outcome.
# - ``decisions``: every decision with its reason, for ``followup explain``.
# - ``schedule_ticks``: the next due tick of each schedule-triggered campaign, and segment sweeps.

journey_inbox = sa.Table(
    "journey_inbox",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("timestamp", UTCDateTime(), nullable=False),  # the event's, so it is taken in order
    sa.Column("seq", Sequence, nullable=False),  # the event's arrival (migration 0009): ties
    # whose the event was when logged, before later merges moved it (migration 0017)
    sa.Column("customer_id", sa.String(32)),
    # the bucket of the customer it belongs to now (migration 0018; engine.drive.partitions)
    sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),
    sa.Index("ix_journey_inbox_time", "timestamp", "seq"),
)

campaign_versions = sa.Table(
    "campaign_versions",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("source", sa.String(1024)),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
)

journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("campaign_version", sa.String(32), nullable=False),
    sa.Column("customer_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("settled", sa.Boolean(), nullable=False),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("state", JSONType, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_journeys_customer", "customer_id", "settled"),
    sa.Index("ix_journeys_campaign", "campaign_id", "status", "campaign_version"),
)

journey_timers = sa.Table(
    "journey_timers",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("due_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("customer_id", sa.String(32), nullable=False, index=True),
    sa.Column("journey_id", sa.String(32), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),  # 0018
)

campaign_members = sa.Table(
    "campaign_members",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(32), primary_key=True),
    sa.Column("last_entry_at", UTCDateTime()),
    sa.Column("in_segment", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Index("ix_campaign_members_customer", "customer_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("journey_id", sa.String(32), nullable=False),
    sa.Column("step", sa.String(128), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.String(32), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("fields", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text()),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("provider_id", sa.String(255)),
    sa.Column("claimed_by", sa.String(255)),  # the dispatch holding a `sending` row
    sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),  # 0019
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_journey", "journey_id", "id"),
)

throttles = sa.Table(
    "throttles",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # the channel whose provider it holds
    sa.Column("tat", sa.Float(precision=53), nullable=False),  # wall seconds: full again
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("journey_id", sa.String(32)),
    sa.Column("customer_id", sa.String(32), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("step", sa.String(128)),
    sa.Column("channel", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("reason", sa.String(64)),
    sa.Column("fields", JSONType, nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Index("ix_decisions_customer", "customer_id", "at"),
)

schedule_ticks = sa.Table(
    "schedule_ticks",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("after_customer", sa.String(32)),  # how far a tick in progress has got
)

# - ``tick_marks`` (migration 0022): a schedule's tick a batch acted on for a profile away from
#   the run's place (its work taken before the run came to it); the run passes it over. Gone
#   when the run has gone over its partition, or the engine takes the profile's merge.

tick_marks = sa.Table(
    "tick_marks",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),  # the schedule, as schedule_ticks names it
    sa.Column("customer_id", sa.String(32), primary_key=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),  # the profile's
)

# --- segment looks (migration 0006) -------------------------------------------------------------
# - ``segment_looks``: per customer, the first time at which a segment campaign could decide
#   something else for them (their condition may turn, or what keeps them out may end); the
#   hourly sweep looks only at the customers due, instead of every customer.

segment_looks = sa.Table(
    "segment_looks",
    metadata,
    sa.Column("customer_id", sa.String(32), primary_key=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("bucket", sa.SmallInteger(), nullable=False, server_default="0"),  # 0018
    # in the order a sweep takes them (migration 0008): a million looks due at one instant are
    # read 500 at a time, not sorted whole for every batch
    sa.Index("ix_segment_looks_due", "due_at", "customer_id"),
)

# --- engine marks (migration 0020) -----------------------------------------------------------
# - ``engine_marks``: small named values the engine keeps about itself; ``quiet_tick`` is the
#   fingerprint of the last full ``followup tick`` (engine/cli/quiet_tick.py).

engine_marks = sa.Table(
    "engine_marks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# --- tables of the integrations --------------------------------------------------------------
# An integration keeps its tables in its own package, on this ``metadata``, and names the module
# under the ``followup.tables`` entry points (the call lists: ``integrations/calls/tables.py``;
# created by its own branch of migrations, named under ``followup.migrations``).
# :func:`load_integration_tables` imports them all, for what needs the whole schema (Alembic,
# emptying a test database); the core never names them.

TABLE_ENTRY_POINTS = TABLES


def load_integration_tables() -> None:
    """Import every installed integration's table module, so ``metadata`` holds them."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=TABLE_ENTRY_POINTS):
        entry.load()


# --- the HTTP service (migration 0005) -------------------------------------------------------
# - ``api_keys``: keys of the HTTP service; only the SHA-256 of a key is kept, and a revoked
#   key keeps its row (``revoked_at``) so ``followup keys list`` still shows it. ``role``
#   (migration 0016): ``write`` keys send events, ``dashboard`` keys log in to the dashboard.

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("rate", sa.Float()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("role", sa.String(16), nullable=False, server_default="write"),
)

# --- the rejects store (migration 0010) ------------------------------------------------------
# - ``rejects``: every event refused, by file ingest (``source`` the file, ``position`` the line)
#   or the HTTP API (``source`` ``http:<key id>:<request id>``, ``position`` the index in the
#   batch, none for a single call), with the reason, the field, the message and the raw event.
#   ``digest`` (of the reason, field and raw text) keeps a reject sent again once.

rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", Sequence, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("position", sa.Integer()),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("field", sa.String(255), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("raw", sa.Text(), nullable=False),
    sa.Column("rejected_at", UTCDateTime(), nullable=False),
)
