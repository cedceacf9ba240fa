"""The driver's writes of a batch store what SQLAlchemy Core stores: the same text of every
time and JSON document on SQLite (compared as text by the queries), the same values on
PostgreSQL, by every kind of write, in a few rows (executemany) and in many (on PostgreSQL
staged by COPY), with serial ids in the rows' order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.journeys.outcomes import JourneyStatus
from engine.storage.customer_store import among
from engine.storage.database import open_database
from engine.storage.driver_writes import (
    STAGED_FROM,
    insert_new_rows,
    insert_rows,
    update_rows,
    upsert_rows,
)
from engine.storage.tables import customers, decisions, journeys, outbox
from engine.storage.upserts import insert_new, upsert

AT = datetime(2024, 5, 6, 9, 30, 15, 123456, tzinfo=UTC)


def _journey(n: int, prefix: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{prefix}{n:04d}",
        "campaign_id": "cart",
        "campaign_version": "v1",
        "customer_id": f"c{n}",
        "status": JourneyStatus.ACTIVE,  # an enum, as the engine hands it over
        "settled": n % 2 == 0,
        "entered_at": AT + timedelta(microseconds=n),
        "state": state,
        "updated_at": AT.astimezone(UTC),
    }


def _stored(conn: sa.Connection, table: sa.Table, key: str, prefix: str) -> list[tuple[Any, ...]]:
    """Each row written under ``prefix`` as the database keeps it (SQLite: the text itself),
    the prefix taken off its key, in key order."""
    columns = [c for c in table.columns if c.name not in ("id", key)]
    if conn.dialect.name == "sqlite":  # the stored text, not what a type makes of it
        listed = ", ".join(f'"{c.name}"' for c in columns)
        rows = conn.exec_driver_sql(
            f'SELECT "{key}", {listed} FROM {table.name} WHERE "{key}" LIKE ? ORDER BY "{key}"',
            (prefix + "%",),
        )
    else:
        rows = conn.execute(
            sa.select(table.c[key], *columns)
            .where(table.c[key].startswith(prefix))
            .order_by(table.c[key])
        )
    return [(row[0].removeprefix(prefix), *row[1:]) for row in rows]


@pytest.mark.parametrize("count", [3, STAGED_FROM + 8])
def test_every_kind_of_write_stores_what_core_stores(database_url: str, count: int) -> None:
    db = open_database(database_url)
    try:
        with db.begin() as conn:
            first = [_journey(n, "d", {"step": 0, "when": AT.isoformat()}) for n in range(count)]
            upsert_rows(conn, journeys, first, ["id"])
            upsert(conn, journeys, [{**row, "id": "k" + row["id"][1:]} for row in first], ["id"])
            again = [{**row, "state": {"step": 1}, "settled": True} for row in first[::2]]
            upsert_rows(conn, journeys, again, ["id"])
            upsert(conn, journeys, [{**row, "id": "k" + row["id"][1:]} for row in again], ["id"])
            assert _stored(conn, journeys, "id", "d") == _stored(conn, journeys, "id", "k")
            assert len(_stored(conn, journeys, "id", "d")) == count

            sends = [
                {
                    "key": f"{prefix}{n:04d}:wait-1",
                    "journey_id": f"j{n}",
                    "step": "wait-1",
                    "campaign_id": "cart",
                    "customer_id": f"c{n}",
                    "bucket": n,
                    "channel": "email",
                    "action": "send",
                    "fields": {"subject": "Hi", "n": n, "none": None},
                    "status": "pending",
                    "attempts": 0,
                    "decided_at": AT,
                    "next_attempt_at": AT + timedelta(hours=n),
                    "updated_at": AT,
                }
                for prefix in ("d", "k")
                for n in range(count)
            ]
            ours, core = sends[:count], sends[count:]
            insert_new_rows(conn, outbox, ours)
            insert_new_rows(conn, outbox, ours[:2])  # there already: left alone
            insert_new(conn, outbox, core)
            assert _stored(conn, outbox, "key", "d") == _stored(conn, outbox, "key", "k")
            ids = conn.scalars(
                sa.select(outbox.c.id).where(outbox.c.key.startswith("d")).order_by(outbox.c.key)
            ).all()
            assert ids == sorted(ids)  # in the rows' order

            records = [
                {
                    "at": AT,
                    "campaign_id": "cart",
                    "journey_id": None,
                    "customer_id": f"{prefix}{n:04d}",
                    "action": "not_entered",
                    "step": None,
                    "channel": None,
                    "status": None,
                    "reason": "no_consent",
                    "fields": {},
                    "recorded_at": AT,
                }
                for prefix in ("d", "k")
                for n in range(count)
            ]
            insert_rows(conn, decisions, records[:count])
            conn.execute(decisions.insert(), records[count:])
            assert _stored(conn, decisions, "customer_id", "d") == _stored(
                conn, decisions, "customer_id", "k"
            )

            people = [
                {"id": f"{prefix}{n:04d}", "state": {}, "version": 1, "updated_at": AT}
                for prefix in ("d", "k")
                for n in range(count)
            ]
            conn.execute(customers.insert(), people)
            views = [
                {"id": f"{prefix}{n:04d}", "engine_state": {"seen": n} if n % 2 else None}
                for prefix in ("d", "k")
                for n in range(count)
            ]
            update_rows(conn, customers, views[:count], ["id"])
            conn.execute(
                customers.update()
                .where(customers.c.id == sa.bindparam("b_id"))
                .values(engine_state=sa.bindparam("b_view")),
                [{"b_id": row["id"], "b_view": row["engine_state"]} for row in views[count:]],
            )
            assert _stored(conn, customers, "id", "d") == _stored(conn, customers, "id", "k")
    finally:
        db.dispose()


@pytest.mark.parametrize("count", [3, STAGED_FROM + 8])
def test_a_key_given_twice_ends_with_its_last_row(database_url: str, count: int) -> None:
    """As row by row: the last of the rows with one key wins, in few rows and in many."""
    db = open_database(database_url)
    try:
        with db.begin() as conn:
            rows = [_journey(n % 2, "d", {"n": n}) for n in range(count)]
            upsert_rows(conn, journeys, rows, ["id"])
            upsert(conn, journeys, [{**row, "id": "k" + row["id"][1:]} for row in rows], ["id"])
            assert _stored(conn, journeys, "id", "d") == _stored(conn, journeys, "id", "k")
            conn.execute(
                customers.insert(),
                [{"id": c, "state": {}, "version": 1, "updated_at": AT} for c in ("p0", "p1")],
            )
            views = [{"id": f"p{n % 2}", "engine_state": {"n": n}} for n in range(count)]
            update_rows(conn, customers, views, ["id"])
            kept = dict(conn.execute(sa.select(customers.c.id, customers.c.engine_state)).all())
            assert kept == {row["id"]: row["engine_state"] for row in views}  # the last of each
    finally:
        db.dispose()


def test_a_naive_time_or_rows_of_different_columns_are_refused(database_url: str) -> None:
    db = open_database(database_url)
    try:
        with db.begin() as conn:
            with pytest.raises(ValueError, match="naive datetime"):
                upsert_rows(
                    conn,
                    journeys,
                    [{**_journey(0, "d", {}), "updated_at": datetime(2024, 1, 1)}],
                    ["id"],
                )
            with pytest.raises(ValueError, match="different columns"):
                insert_rows(conn, decisions, [{"at": AT}, {"at": AT, "campaign_id": "c"}])
    finally:
        db.dispose()


def test_a_lookup_by_a_longer_value_finds_no_row_cut_to_the_column(database_url: str) -> None:
    """On PostgreSQL the array is text[]: a cast to the column's varchar(32)[] would cut the
    value and find the row of its first 32 characters."""
    db = open_database(database_url)
    try:
        with db.begin() as conn:
            conn.execute(
                customers.insert(), [{"id": "a" * 32, "state": {}, "version": 1, "updated_at": AT}]
            )
            found = [
                row
                for where in among(conn, customers.c.id, ["a" * 32 + "-other", "b"])
                for row in conn.scalars(sa.select(customers.c.id).where(where))
            ]
            assert found == []
            assert among(conn, customers.c.id, []) == []
            (by_id,) = among(conn, outbox.c.id, [2, 1])  # a bigint column: a bigint[] array
            assert conn.scalars(sa.select(outbox.c.id).where(by_id)).all() == []
    finally:
        db.dispose()


def test_a_lookup_is_one_condition_of_any_number_of_values(database_url: str) -> None:
    """Past SQLite's old bound of 999 parameters, with quotes and accents in the values, text
    and integer keys alike: one condition (a JSON array on SQLite, an array on PostgreSQL)
    takes exactly the rows named, to read or to delete."""
    db = open_database(database_url)
    ids = [f"c{n}" for n in range(1_200)] + ["o'brien", 'say "hi"', "zoë", "[1, 2]"]
    try:
        with db.begin() as conn:
            conn.execute(
                customers.insert(),
                [{"id": cid, "state": {}, "version": 1, "updated_at": AT} for cid in ids[::2]],
            )
            (where,) = among(conn, customers.c.id, [*ids, "c5", "missing"])
            found = conn.scalars(sa.select(customers.c.id).where(where)).all()
            assert sorted(found) == sorted(ids[::2])
            (where,) = among(conn, customers.c.id, ids[:600])
            assert conn.execute(customers.delete().where(where)).rowcount == 300
            (by_id,) = among(conn, sa.literal_column("1", sa.Integer()), [2, 1])
            assert conn.scalar(sa.select(sa.func.count()).where(by_id)) == 1
    finally:
        db.dispose()
