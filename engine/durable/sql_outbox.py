"""The outbox port on SQLAlchemy (SQLite, PostgreSQL): the ``outbox`` table and its claims.

The rows the journey store decided wait in ``outbox``, unique by key; this store reads the due
ones a page at a time, claims and settles them (:mod:`engine.durable.claims`), judges the
holders of rows left ``sending`` (:mod:`engine.durable.holders`), and keeps the providers'
throttles (:mod:`engine.durable.throttles`): the parts of the SQL outbox store. Given a
partition (:mod:`engine.drive.partitions`), it hands out that partition's rows only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_port import DueRow, NewOutboxRow, OutboxRecord
from engine.drive.outbox_status import UNSETTLED, OutboxStatus
from engine.drive.partitions import WHOLE, Partition, bucket_of
from engine.durable.batches import partition_of
from engine.durable.claims import Claims, retake
from engine.durable.holders import Holders, holders_for
from engine.durable.throttles import Throttles
from engine.rates import Rate
from engine.state.profile import CustomerState
from engine.storage.customer_store import CustomerStore
from engine.storage.database import transactions
from engine.storage.driver_writes import insert_new_rows
from engine.storage.tables import outbox


def outbox_values(row: NewOutboxRow, now: datetime) -> dict[str, Any]:
    """The ``outbox`` row of a channel action decided: ``pending``, due at its ``due_at``."""
    return {
        "key": row.key,
        "journey_id": row.journey_id,
        "step": row.step,
        "campaign_id": row.campaign_id,
        "customer_id": row.customer_id,
        "bucket": bucket_of(row.customer_id),
        "channel": row.channel,
        "action": row.action,
        "fields": dict(row.fields),
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "decided_at": row.decided_at,
        "next_attempt_at": row.due_at or row.decided_at,
        "updated_at": now,
    }


def _due_query(
    now: datetime, campaigns: Collection[str], limit: int, partition: Partition
) -> sa.Select[Any]:
    """The page of due rows (see :meth:`SqlOutboxStore.due`), each with ``failed_before``."""
    earlier = outbox.alias("earlier")
    # only ``journey_id`` is indexable here, the rest are expressions: the lookup goes by
    # journey (a few rows of ix_outbox_journey) whatever the statistics say; PostgreSQL
    # took ix_outbox_due or the primary key on stale ones after a big pass (31 s a page
    # of 200 on 60,000 rows, against 4 ms)
    status = sa.func.lower(earlier.c.status)
    of_journey_before = (
        earlier.c.journey_id == outbox.c.journey_id,
        earlier.c.action == "send",
        earlier.c.id + 0 < outbox.c.id,
    )
    unsettled_before = sa.exists().where(*of_journey_before, status.in_(UNSETTLED))
    failed_before = (
        sa.select(earlier.c.step)
        .where(*of_journey_before, status == OutboxStatus.FAILED)
        .order_by(earlier.c.id + 0)  # the earliest, not by walking the primary key
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(
            outbox,
            # only a send waits for, or is skipped after, an earlier send
            sa.case((outbox.c.action == "send", failed_before)).label("failed_before"),
        )
        .where(
            outbox.c.status == OutboxStatus.PENDING,
            outbox.c.next_attempt_at <= now,
            # consent changes belong to no campaign
            sa.or_(outbox.c.campaign_id.in_(sorted(campaigns)), outbox.c.campaign_id == ""),
            sa.or_(outbox.c.action != "send", ~unsettled_before),
            *partition_of(outbox, partition),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )


class SqlOutboxStore:
    """The outbox of ``db``, ``partition``'s rows of it."""

    def __init__(
        self,
        db: sa.Engine,
        partition: Partition = WHOLE,
        holders: Holders | None = None,
        throttles: Throttles | None = None,
    ) -> None:
        self.db = db
        self.partition = partition
        self.holders = holders or holders_for(db)
        self.throttles = throttles or Throttles(db)
        self._customers = CustomerStore(db.dialect.name)

    def over(self, partition: Partition) -> SqlOutboxStore:
        """A store of the same database, holders and throttles, handing out ``partition``'s
        rows."""
        return SqlOutboxStore(self.db, partition, self.holders, self.throttles)

    def add(self, rows: Sequence[NewOutboxRow], now: datetime) -> None:
        """Keep ``rows`` as ``pending``, but for a key already kept (the first stays): the
        journey store writes its rows in its own transaction (:func:`outbox_values`); this is
        for a caller with rows of its own."""
        with self.db.begin() as conn:
            insert_new_rows(conn, outbox, [outbox_values(row, now) for row in rows])

    def due(self, now: datetime, campaigns: Collection[str], limit: int) -> list[DueRow]:
        """The next page of due rows of this store's partition, read, not claimed."""
        with self.db.connect() as conn:
            return list(conn.execute(_due_query(now, campaigns, limit, self.partition)).all())

    @contextmanager
    def claiming(self) -> Iterator[Claims]:
        """A holder, a connection and the claims of one dispatch on them."""
        with (
            self.holders.holding() as holder,
            self.db.connect() as conn,
            transactions(conn) as begin,
        ):
            yield Claims(conn, begin, holder)

    def retake(
        self, now: datetime, lease: timedelta, resend: Callable[[str], bool]
    ) -> Counter[str]:
        """Rows left ``sending`` by a dead holder, or one past ``lease`` (see
        :func:`engine.durable.claims.retake`)."""
        return retake(self.db, self.holders, resend, now, lease)

    def states(self, customer_ids: Collection[str], now: datetime) -> dict[str, CustomerState]:
        """Each customer as a delivery at ``now`` checks them (:meth:`CustomerStore.states_at`:
        their survivor, for a merged one)."""
        with self.db.connect() as conn:
            return self._customers.states_at(conn, list(customer_ids), now)

    def turn(self, name: str, rate: Rate, max_wait: float) -> float:
        """A turn of the throttle ``name``, shared by every process on the database."""
        return self.throttles.take(name, rate, max_wait)

    def find(self, key: str) -> OutboxRecord | None:
        """The row kept under ``key``, as it stands."""
        with self.db.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.key == key)).first()
        if row is None:
            return None
        return OutboxRecord.of(row)
