"""Provider throttles shared by every process on the database: a bucket per provider in the
``throttles`` table, taken in a transaction that locks its row, so dispatchers in several
processes and Celery workers together keep to the rate.

The bucket is kept as one time, ``tat``, when the bucket would be full again (the generic cell
rate algorithm: :func:`engine.rates.take_turn`). Times are the wall clock's seconds (the
throttle is about real time, also when a pass replays events on a clock of its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from engine.rates import MAX_SLEEP, Rate, take_turn
from engine.storage.tables import throttles
from engine.storage.upserts import insert_new


class Throttles:
    """The shared buckets on ``db``."""

    def __init__(self, db: sa.Engine, wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.wall = wall

    def take(self, name: str, rate: Rate, max_wait: float = MAX_SLEEP) -> float:
        """Take a turn of ``name``'s bucket: the seconds to wait before the call (0: at once).
        A wait longer than ``max_wait`` is not taken (nothing is reserved): the caller puts
        the call off by that long and asks again then."""
        with self.db.begin() as conn:
            if conn.dialect.name == "sqlite":  # take the write lock now: read, then write
                conn.exec_driver_sql("UPDATE throttles SET tat = tat WHERE name = ?", (name,))
            query = sa.select(throttles.c.tat).where(throttles.c.name == name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            tat = conn.execute(query).scalar()
            now = self.wall()  # once the row is ours: a wait for the lock is time passed
            if tat is None:  # the first call: a full bucket (another process may add it too)
                insert_new(conn, throttles, [{"name": name, "tat": now}])
                tat = conn.execute(query).scalar_one()
            wait, after = take_turn(float(tat), now, rate, max_wait)
            if wait <= max_wait:
                conn.execute(throttles.update().where(throttles.c.name == name).values(tat=after))
            return wait

    def state(self, name: str) -> float | None:
        """When ``name``'s bucket is full again (wall seconds), ``None`` before its first call."""
        with self.db.connect() as conn:
            tat = conn.execute(sa.select(throttles.c.tat).where(throttles.c.name == name)).scalar()
        return None if tat is None else float(tat)
