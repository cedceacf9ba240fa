"""A dispatch's claims and outcomes, as one statement for many rows on PostgreSQL and as one
executemany elsewhere: a row another dispatch changed since it was read is neither claimed nor
settled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from engine.drive.outbox_status import OutboxStatus
from engine.durable.claims import SETTLE_MANY_FROM, Claims
from engine.storage.database import open_database, transactions
from engine.storage.driver_writes import insert_new_rows
from engine.storage.tables import outbox

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
ROWS = SETTLE_MANY_FROM + 4


def _send(n: int) -> dict[str, object]:
    return {
        "key": f"j{n}:s",
        "journey_id": f"j{n}",
        "step": "s",
        "campaign_id": "cart",
        "customer_id": f"c{n}",
        "bucket": 0,
        "channel": "email",
        "action": "send",
        "fields": {},
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "decided_at": NOW,
        "next_attempt_at": NOW,
        "updated_at": NOW,
    }


def test_claims_and_outcomes_pass_over_rows_changed_since_read(database_url: str) -> None:
    db = open_database(database_url)
    try:
        with db.begin() as conn:
            insert_new_rows(conn, outbox, [_send(n) for n in range(ROWS)])
        with db.connect() as conn:
            read = list(conn.execute(sa.select(outbox).order_by(outbox.c.id)))
        with db.begin() as conn:  # another dispatch took the first row meanwhile
            conn.execute(
                outbox.update()
                .where(outbox.c.id == read[0].id)
                .values(status=OutboxStatus.SENDING, attempts=1, claimed_by="other")
            )
        with db.connect() as conn, transactions(conn) as begin:
            claims = Claims(conn, begin, "me")
            claimed = claims.claim(read, NOW, synced=True)
            assert claimed == {row.id for row in read[1:]}
            later = NOW + timedelta(minutes=5)
            for n, row in enumerate(read):  # the first is not ours: its outcome is not written
                if n % 2:
                    claims.settle(
                        row, NOW, OutboxStatus.DELIVERED, "", synced=True, provider_id=f"p{n}"
                    )
                else:
                    claims.settle(
                        row, NOW, OutboxStatus.PENDING, "retry", synced=True, retry_at=later
                    )
            claims.flush()
        with db.connect() as conn:
            found = {row.id: row for row in conn.execute(sa.select(outbox))}
        first = found[read[0].id]
        assert (first.status, first.attempts, first.claimed_by) == ("sending", 1, "other")
        for n, row in enumerate(read[1:], start=1):
            got = found[row.id]
            assert got.attempts == 1 and got.claimed_by is None
            if n % 2:
                assert (got.status, got.provider_id, got.detail) == ("delivered", f"p{n}", None)
                assert got.next_attempt_at == NOW
            else:
                assert (got.status, got.provider_id, got.detail) == ("pending", None, "retry")
                assert got.next_attempt_at == later
    finally:
        db.dispose()
