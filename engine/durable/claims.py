"""The claims of a dispatch on outbox rows, and the outcomes it writes back.

A row is claimed (``pending`` -> ``sending``, attempts + 1, ``claimed_by`` the dispatch's
holder) right before its provider is called, in a transaction of its own: one row, or the one
batch a :class:`~engine.channels.BatchProvider` is about to get. Its outcome is kept and written
in the next claim's transaction, so before the next call, or at the end of the page: a process
that dies leaves at most the row (or batch) in flight ``sending``. Each write names the row as
it must still be (claimed by this holder at this attempt; or, for a row settled without a call,
still ``pending`` at the attempt read), so it never undoes what another dispatch did since.

:func:`retake` gives back the rows a dead holder left ``sending`` (see
:mod:`engine.durable.holders`), and those whose holder cannot be told once their lease is over.

A claim or an outcome of a provider that deduplicates is harmless to lose (the row is sent again
and deduplicated), so unless an outcome of another provider rides along, the transaction does
not wait for the disk (:func:`~engine.storage.database.transactions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.drive.outbox_status import UNKNOWN_DETAIL, OutboxStatus
from engine.durable.holders import Holder, Holders
from engine.storage.database import Begin
from engine.storage.tables import outbox


def _param(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


ROW = outbox.c.id == sa.bindparam("b_id")
AT_ATTEMPT = outbox.c.attempts == sa.bindparam("b_attempts")
NOW = _param("b_now", outbox.c.updated_at)
OUTCOME = {
    "status": sa.bindparam("b_status"),
    "detail": sa.bindparam("b_detail"),
    "updated_at": NOW,
}

# A claim, of a row still as it was read
CLAIM = (
    outbox.update()
    .where(ROW, outbox.c.status == OutboxStatus.PENDING, AT_ATTEMPT)
    .values(
        status=OutboxStatus.SENDING,
        attempts=sa.bindparam("b_attempts") + 1,
        updated_at=NOW,
        claimed_by=sa.bindparam("b_holder"),
    )
)
# On PostgreSQL, the claim of many rows (a batch provider's) in one statement: a row each
# was a round trip each, 3.6 s of a 13 s delivery of 20,000 emails to the file outbox
CLAIM_MANY = sa.text(
    "UPDATE outbox AS o SET status = :sending, attempts = o.attempts + 1, updated_at = :now,"
    " claimed_by = :holder"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[])) AS r(id, attempts)"
    " WHERE o.id = r.id AND o.attempts = r.attempts AND o.status = :pending RETURNING o.id"
)
# The outcome of a call: the row as this holder claimed it
SETTLE = (
    outbox.update()
    .where(ROW, outbox.c.claimed_by == sa.bindparam("b_holder"), AT_ATTEMPT)
    .values(
        **OUTCOME,
        provider_id=sa.func.coalesce(
            _param("b_provider_id", outbox.c.provider_id), outbox.c.provider_id
        ),
        next_attempt_at=sa.func.coalesce(
            _param("b_retry_at", outbox.c.next_attempt_at), outbox.c.next_attempt_at
        ),
        claimed_by=None,
    )
)
# On PostgreSQL, the outcomes of many calls in one statement (as SETTLE, row by row)
SETTLE_MANY = sa.text(
    "UPDATE outbox AS o SET status = r.status, detail = r.detail, updated_at = :b_now,"
    " provider_id = coalesce(r.provider_id, o.provider_id),"
    " next_attempt_at = coalesce(r.retry_at, o.next_attempt_at), claimed_by = NULL"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),"
    " CAST(:statuses AS text[]), CAST(:details AS text[]), CAST(:provider_ids AS text[]),"
    " CAST(:retry_ats AS timestamptz[]))"
    " AS r(id, attempts, status, detail, provider_id, retry_at)"
    " WHERE o.id = r.id AND o.claimed_by = :b_holder AND o.attempts = r.attempts"
)
SETTLE_MANY_FROM = 8  # outcomes; fewer go row by row


def _one_time(outcomes: list[dict[str, Any]]) -> bool:
    return len({o["b_now"] for o in outcomes}) == 1


def _settle_many(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of :data:`SETTLE_MANY` for ``outcomes`` (:data:`SETTLE`'s, of one
    holder at one time)."""
    first = outcomes[0]
    return {
        "b_now": first["b_now"],
        "b_holder": first["b_holder"],
        "ids": [o["b_id"] for o in outcomes],
        "attempts": [o["b_attempts"] for o in outcomes],
        "statuses": [str(o["b_status"]) for o in outcomes],
        "details": [o["b_detail"] for o in outcomes],
        "provider_ids": [o["b_provider_id"] for o in outcomes],
        "retry_ats": [o["b_retry_at"] for o in outcomes],
    }


# The outcome of a row settled without a call (skipped, failed): still as it was read
DECIDE = (
    outbox.update()
    .where(ROW, outbox.c.status == OutboxStatus.PENDING, AT_ATTEMPT)
    .values(**OUTCOME)
)
# A row put off without a call (a throttle): still pending, due later, no attempt counted
POSTPONE = (
    outbox.update()
    .where(ROW, outbox.c.status == OutboxStatus.PENDING, AT_ATTEMPT)
    .values(
        detail=sa.bindparam("b_detail"),
        updated_at=NOW,
        next_attempt_at=_param("b_until", outbox.c.next_attempt_at),
    )
)


class Claims:
    """One dispatch's claims, on its connection (``begin`` starts its transactions)."""

    def __init__(self, conn: sa.Connection, begin: Begin, holder: str) -> None:
        self.conn = conn
        self.begin = begin
        self.holder = holder
        self._kept: dict[sa.Update, list[dict[str, Any]]] = {SETTLE: [], DECIDE: [], POSTPONE: []}
        self._synced = False  # whether an outcome kept must wait for the disk

    def claim(self, rows: Sequence[Any], now: datetime, *, synced: bool) -> set[int]:
        """Claim ``rows`` (read ``pending``), writing the outcomes kept so far in the same
        transaction; the ids claimed (another dispatch may have taken some meanwhile)."""
        with self.begin(synced or self._synced):
            self._write()
            if len(rows) > 1 and self.conn.dialect.name == "postgresql":
                taken = self.conn.execute(
                    CLAIM_MANY,
                    {
                        "ids": [row.id for row in rows],
                        "attempts": [row.attempts for row in rows],
                        "now": now,
                        "holder": self.holder,
                        "sending": OutboxStatus.SENDING.value,
                        "pending": OutboxStatus.PENDING.value,
                    },
                )
                return set(taken.scalars())
            params = [
                {"b_id": row.id, "b_attempts": row.attempts, "b_now": now, "b_holder": self.holder}
                for row in rows
            ]
            taken = self.conn.execute(CLAIM, params)  # executemany: one statement compiled
            if taken.rowcount == len(rows):
                return {row.id for row in rows}
            return self._claimed(rows) if taken.rowcount else set()

    def _claimed(self, rows: Sequence[Any]) -> set[int]:
        """Which of ``rows`` this holder's claim just took (another dispatch took the rest):
        those now ``sending`` under this holder one attempt on from when they were read."""
        wanted = {row.id: row.attempts + 1 for row in rows}
        found = self.conn.execute(
            sa.select(outbox.c.id, outbox.c.attempts).where(
                outbox.c.id.in_(list(wanted)),
                outbox.c.status == OutboxStatus.SENDING,
                outbox.c.claimed_by == self.holder,
            )
        )
        return {row_id for row_id, attempts in found if wanted[row_id] == attempts}

    def settle(
        self,
        row: Any,
        now: datetime,
        status: OutboxStatus,
        detail: str,
        *,
        synced: bool,
        provider_id: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Keep the outcome of a claimed row's call, for the next write."""
        self._kept[SETTLE].append(
            {
                "b_id": row.id,
                "b_holder": self.holder,
                "b_attempts": row.attempts + 1,
                "b_status": status,
                "b_detail": detail or None,
                "b_now": now,
                "b_provider_id": provider_id,
                "b_retry_at": retry_at,
            }
        )
        self._synced |= synced

    def decide(
        self, row: Any, now: datetime, status: OutboxStatus, detail: str, *, synced: bool
    ) -> None:
        """Keep the outcome of a row settled without a call, for the next write."""
        self._kept[DECIDE].append(
            {
                "b_id": row.id,
                "b_attempts": row.attempts,
                "b_status": status,
                "b_detail": detail or None,
                "b_now": now,
            }
        )
        self._synced |= synced

    def postpone(self, row: Any, now: datetime, until: datetime, detail: str) -> None:
        """Keep ``row`` pending until ``until`` without a call, for the next write (a
        provider's throttle had no turn for it)."""
        self._kept[POSTPONE].append(
            {
                "b_id": row.id,
                "b_attempts": row.attempts,
                "b_detail": detail,
                "b_now": now,
                "b_until": until,
            }
        )

    def flush(self) -> None:
        """Write the outcomes kept so far, in a transaction of their own."""
        if any(self._kept.values()):
            with self.begin(self._synced):
                self._write()

    def _write(self) -> None:
        for statement, params in self._kept.items():
            if not params:
                continue
            many = statement is SETTLE and len(params) >= SETTLE_MANY_FROM
            if many and self.conn.dialect.name == "postgresql" and _one_time(params):
                self.conn.execute(SETTLE_MANY, _settle_many(params))
            else:
                self.conn.execute(statement, params)
            params.clear()
        self._synced = False


def retake(
    db: sa.Engine,
    holders: Holders,
    resend: Callable[[str], bool],
    now: datetime,
    lease: timedelta,
) -> Counter[str]:
    """Give back the rows left ``sending`` by a dead holder, or past ``lease`` when it cannot
    be told whether their holder is alive: ``pending`` again when ``resend(channel)`` (its
    provider deduplicates), else ``unknown``. A live holder keeps its rows. Counts by
    ``channel:reclaimed`` and ``channel:unknown``."""
    found: Counter[str] = Counter()
    with db.begin() as conn:
        held = list(
            conn.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.channel,
                    outbox.c.attempts,
                    outbox.c.claimed_by,
                    outbox.c.updated_at,
                ).where(outbox.c.status == OutboxStatus.SENDING)
            )
        )
        known = holders.judge(conn, {row.claimed_by for row in held if row.claimed_by})
        for row in held:
            holder = known.get(row.claimed_by, Holder.UNKNOWN)
            if holder is Holder.ALIVE or (
                holder is Holder.UNKNOWN and row.updated_at > now - lease
            ):
                continue
            again = resend(row.channel)
            values: dict[str, Any] = (
                {"status": OutboxStatus.PENDING, "claimed_by": None}
                if again
                else {"status": OutboxStatus.UNKNOWN, "detail": UNKNOWN_DETAIL}
            )
            taken = conn.execute(
                outbox.update()
                .where(
                    outbox.c.id == row.id,
                    outbox.c.status == OutboxStatus.SENDING,
                    outbox.c.attempts == row.attempts,
                    outbox.c.claimed_by.is_not_distinct_from(row.claimed_by),
                )
                .values(updated_at=now, **values)
            )
            if taken.rowcount:
                found[f"{row.channel}:{'reclaimed' if again else 'unknown'}"] += 1
    return found
