"""One pass at a time per partition: the lease a pass over ``i/N`` takes first.

Workers given the same partition (a Celery beat that enqueued the next round while the last
runs, two ``followup run --partition 0/4`` by mistake) would page over the same rows; the second
finds the partition taken and leaves it. On PostgreSQL the lease is a session advisory lock,
``(PARTITION_LEASES, N * BUCKETS + i)``, dropped by the server when the pass ends or its process
dies. On SQLite one writer works at a time anyway: there is nothing to take. The customers'
row claims (:mod:`engine.durable.batches`) stay the guarantee: a pass of the whole and a pass
of a partition, or passes split in different counts, never decide for one customer at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from engine.drive.partitions import BUCKETS, Partition
from engine.storage.database import KEEPALIVES

PARTITION_LEASES = 0x70617274  # "part": the first key of the partitions' advisory locks


@contextmanager
def partition_lease(db: sa.Engine, partition: Partition) -> Iterator[bool]:
    """Whether this pass holds ``partition`` until the context ends (the whole, or on SQLite:
    always)."""
    if partition.whole or db.dialect.name != "postgresql":
        yield True
        return
    key = {"space": PARTITION_LEASES, "key": partition.count * BUCKETS + partition.index}
    with db.connect() as conn:
        conn.exec_driver_sql(KEEPALIVES)
        held = bool(conn.scalar(sa.text("SELECT pg_try_advisory_lock(:space, :key)"), key))
        conn.commit()  # a session lock: no transaction stays open while the pass runs
        try:
            yield held
        finally:
            if held:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:space, :key)"), key)
                conn.commit()
