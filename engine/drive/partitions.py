"""Customers hashed to partitions, so several workers share a pass without sharing a customer.

Every customer falls in one of :data:`BUCKETS` buckets by a stable hash of their id, kept on
the rows of their due work (inbox events, timers, segment looks). A partition ``i/N`` is the
``i``-th of ``N`` equal runs of buckets: a worker that takes it decides for its customers only,
so a customer's work is never split between workers, and no two workers page over the same
rows. The buckets never change; ``N`` is chosen per pass, so the number of workers can change
between passes without moving a row.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

BUCKETS = 1024  # the most partitions a pass can be split into

_SPELLING = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def bucket_of(customer_id: str) -> int:
    """The bucket of ``customer_id``: CRC-32 of its UTF-8 bytes (the same in every process,
    unlike ``hash``), modulo :data:`BUCKETS`."""
    return zlib.crc32(customer_id.encode()) % BUCKETS


@dataclass(frozen=True)
class Partition:
    """The ``index``-th of ``count`` partitions: buckets ``lo`` up to (not including) ``hi``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= BUCKETS:
            raise ValueError(f"a pass splits into 1 to {BUCKETS} partitions, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"partition {self.index} of {self.count}: counted from 0 to {self.count - 1}"
            )

    @classmethod
    def parse(cls, text: str) -> Partition:
        """``"i/N"``: the ``i``-th of ``N`` partitions, counted from 0."""
        match = _SPELLING.match(text)
        if match is None:
            raise ValueError(f"a partition is written i/N, such as 0/4, not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, customer_id: str, count: int) -> Partition:
        """The partition of ``count`` that holds ``customer_id``: the ``i`` whose buckets
        ``[i * B // count, (i + 1) * B // count)`` hold its bucket ``b``, which is
        ``((b + 1) * count - 1) // B`` (``B``: :data:`BUCKETS`)."""
        return cls(((bucket_of(customer_id) + 1) * count - 1) // BUCKETS, count)

    @property
    def whole(self) -> bool:
        """Every customer: the pass is not split."""
        return self.count == 1

    @property
    def lo(self) -> int:
        return self.index * BUCKETS // self.count

    @property
    def hi(self) -> int:
        return (self.index + 1) * BUCKETS // self.count

    def holds(self, customer_id: str) -> bool:
        """Whether ``customer_id`` is one of this partition's customers."""
        return self.lo <= bucket_of(customer_id) < self.hi

    def row_name(self, name: str) -> str:
        """The name of this partition's row of the schedule ``name``: each partition runs a
        schedule over its own customers and keeps its own progress; the whole keeps ``name``."""
        return name if self.whole else f"{name}#{self}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Partition()


def split_row_name(row_name: str) -> tuple[str, Partition]:
    """The schedule and the partition of a row named by :meth:`Partition.row_name`."""
    name, split, spelled = row_name.partition("#")
    return name, Partition.parse(spelled) if split else WHOLE


def next_due(rows: Mapping[str, datetime], name: str) -> datetime | None:
    """When the schedule ``name`` is next due, from the due times of its rows (by row name) of
    every count of partitions: the earliest row of the count furthest on (the rows of a count
    the passes are no longer split in lag behind)."""
    by_count: dict[int, list[datetime]] = {}
    for row_name, due in rows.items():
        schedule, partition = split_row_name(row_name)
        if schedule == name:
            by_count.setdefault(partition.count, []).append(due)
    return max((min(dues) for dues in by_count.values()), default=None)
