"""Ingest into the real databases (SQLite and PostgreSQL): dedupe, identity, state, atomicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.events import parse_message
from engine.ingest.jsonl import read_jsonl
from engine.ingest.pipeline import Accepted
from engine.state.codec import state_to_json
from engine.storage.tables import customers, events, identities, merges

START = datetime(2024, 5, 1, 10, tzinfo=UTC)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def message(kind: str, minute: int, message_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"timestamp": at(minute), "messageId": message_id, **fields}
    if kind == "identify":
        return {"type": "identify", **base}
    if kind == "alias":
        return {"type": "alias", **base}
    return {"type": "track", "event": kind, **base}


def count(followup: Followup, table: sa.Table) -> int:
    with followup.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0


def write_jsonl(path: Path, messages: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def test_the_anonymous_cart_becomes_the_known_customer_at_checkout(followup: Followup) -> None:
    followup.ingest_messages(
        [
            message(
                "Product Added",
                0,
                "m1",
                anonymousId="anon-1",
                properties={"product_id": "p1", "price": 120, "quantity": 1},
            ),
            message("Subscribed", 1, "m2", userId="u-42", properties={"email": "ann@example.com"}),
            message(
                "Checkout Started",
                2,
                "m3",
                anonymousId="anon-1",
                context={"traits": {"email": "Ann@Example.com"}},
            ),
        ]
    )
    profile = followup.profile("ann@example.com")
    assert profile is not None
    state = profile.state
    assert state.cart.value == 120
    assert state.consent.email
    assert state.user_id == "u-42"
    assert set(profile.identity_keys) == {"anon:anon-1", "user:u-42", "email:ann@example.com"}
    assert len(profile.merges) == 1
    assert profile.merges[0].message_id == "m3"
    assert len(profile.recent_events) == 3
    # the merged profile's old id still leads to the survivor
    merged_id = profile.merges[0].merged_id
    assert followup.customer_id(merged_id) == profile.id
    assert followup.customer_id("anon-1") == profile.id
    assert count(followup, merges) == 1


def test_merge_across_batches_keeps_both_histories(followup: Followup) -> None:
    followup.ingest_messages(
        [
            message(
                "Product Added", 0, "a", anonymousId="x", properties={"product_id": "p", "price": 5}
            )
        ]
    )
    followup.ingest_messages(
        [message("Order Completed", 1, "b", userId="u", properties={"order_id": "o", "total": 9})]
    )
    summary = followup.ingest_messages([message("alias", 2, "c", userId="u", previousId="x")])
    assert summary.merges == 1
    profile = followup.profile("u")
    assert profile is not None
    assert profile.state.event_count == 3
    assert profile.state.orders.count == 1
    assert profile.state.cart.items == ()  # the order came after the add, so it cleared the cart
    assert profile.state.first_seen_at == START
    with followup.engine.connect() as conn:
        owners = set(conn.scalars(sa.select(events.c.customer_id)))
        live = conn.scalar(
            sa.select(sa.func.count())
            .select_from(customers)
            .where(customers.c.merged_into.is_(None))
        )
    assert owners == {profile.id}
    assert live == 1


def test_duplicates_by_message_id_change_nothing(followup: Followup, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "events.jsonl",
        [
            message(
                "Product Added", 0, "m1", userId="u", properties={"product_id": "p", "price": 1}
            ),
            message(
                "Product Added", 0, "m1", userId="u", properties={"product_id": "p", "price": 1}
            ),
            message(
                "Product Added", 1, "m2", userId="u", properties={"product_id": "p", "price": 1}
            ),
        ],
    )
    first = followup.ingestor.ingest(read_jsonl(path))
    assert (first.accepted, first.duplicates) == (2, 1)
    with followup.engine.connect() as conn:
        before = conn.execute(sa.select(customers.c.state)).scalar_one()
    second = followup.ingestor.ingest(read_jsonl(path))
    assert (second.accepted, second.duplicates) == (0, 3)
    with followup.engine.connect() as conn:
        after = conn.execute(sa.select(customers.c.state)).scalar_one()
    assert after == before
    assert count(followup, events) == 2


def test_out_of_order_events_follow_event_time(followup: Followup) -> None:
    followup.ingest_messages([message("Unsubscribed", 10, "late", userId="u")])
    followup.ingest_messages([message("Subscribed", 5, "early", userId="u")])
    followup.ingest_messages(
        [
            message(
                "Product Added", 1, "first", userId="u", properties={"product_id": "p", "price": 3}
            )
        ]
    )
    profile = followup.profile("u")
    assert profile is not None
    assert not profile.state.consent.email  # the unsubscribe is the latest by event time
    assert profile.state.first_seen_at == START + timedelta(minutes=1)
    assert profile.state.cart.value == 3
    assert followup.rebuild_states().changed == 0


def test_rebuild_gives_the_same_state_and_repairs_a_corrupted_one(followup: Followup) -> None:
    followup.ingest_messages(
        [
            message("identify", 0, "i", userId="u", traits={"email": "u@x.com", "firstName": "U"}),
            message(
                "Product Added", 1, "p", userId="u", properties={"product_id": "p", "price": 3}
            ),
            message(
                "Order Completed",
                2,
                "o",
                userId="v",
                context={"traits": {"email": "u@x.com"}},
                properties={"order_id": "o", "total": 3},
            ),
        ]
    )
    profile = followup.profile("u@x.com")
    assert profile is not None
    expected = state_to_json(profile.state)
    assert followup.rebuild_states().changed == 0
    with followup.engine.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.id == profile.id)
            .values(state={**expected, "event_count": 99})
        )
    summary = followup.rebuild_states()
    assert (summary.customers, summary.changed) == (1, 1)
    rebuilt = followup.profile("u@x.com")
    assert rebuilt is not None and state_to_json(rebuilt.state) == expected


def test_a_failing_batch_leaves_nothing_half_written(
    followup: Followup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(followup.ingestor.store, "save_states", broken)
    batch = [message("identify", 0, "x", userId="u", traits={"email": "u@x.com"})]
    with pytest.raises(RuntimeError):
        followup.ingest_messages(batch)
    assert count(followup, events) == 0
    assert count(followup, identities) == 0
    monkeypatch.undo()
    assert followup.ingest_messages(batch).accepted == 1
    assert count(followup, events) == 1


def test_rejected_input_loses_nothing_and_applies_nothing(
    followup: Followup, tmp_path: Path
) -> None:
    good = message("Product Added", 0, "ok", userId="u", properties={"product_id": "p", "price": 2})
    huge = {
        **message("Product Viewed", 1, "big", userId="u"),
        "properties": {"blob": "x" * 10_000_000},
    }
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        orjson.dumps(good)
        + b"\n"
        + b'{"type": "track", "event": \n'  # malformed JSON
        + orjson.dumps({"type": "track", "event": "E", "timestamp": at(0)})
        + b"\n"  # no ids
        + orjson.dumps({**good, "messageId": "t", "timestamp": "31/12/2024"})
        + b"\n"
        + orjson.dumps(huge)
        + b"\n"
        + orjson.dumps(
            {
                "batch": [
                    {**good, "messageId": "b1"},
                    {**good, "messageId": "b2", "timestamp": "nope"},
                ]
            }
        )
        + b"\n"
    )
    summary = followup.ingestor.ingest(read_jsonl(path))
    assert summary.accepted == 1
    assert {r.line: r.reason.value for r in summary.rejections} == {
        2: "invalid_json",
        3: "missing_field",
        4: "bad_timestamp",
        5: "too_large",
        6: "bad_timestamp",
    }
    too_large = next(r for r in summary.rejections if r.line == 5)
    assert len(too_large.raw) > 10_000_000  # the raw line is kept whole
    assert next(r for r in summary.rejections if r.line == 6).field == "batch[1].timestamp"
    assert count(followup, events) == 1  # nothing of the half-bad batch went in


def test_many_events_across_batches(followup: Followup) -> None:
    followup.ingestor.batch_size = 50
    records = []
    for i in range(500):
        user = f"u{i % 40}"
        msg = message(
            "Product Added",
            i,
            f"m{i}",
            userId=user,
            properties={"product_id": f"p{i % 7}", "price": 1.5},
        )
        records.append(Accepted(parse_message(msg), f"t:{i}"))
    summary = followup.ingestor.ingest(records)
    assert (summary.accepted, summary.customers_created) == (500, 40)
    profile = followup.profile("u3")
    assert profile is not None
    assert profile.state.event_count == 13 if 500 % 40 > 3 else 12
    assert followup.rebuild_states().changed == 0


def test_two_writers_never_see_a_stale_cached_state(database_url: str, tmp_path: Path) -> None:
    from engine.config import Project, ProjectConfig

    project = Project(ProjectConfig(database_url=database_url), tmp_path)
    first, second = Followup(project), Followup(project)
    try:
        add = {"product_id": "p", "price": 10}
        first.ingest_messages([message("Product Added", 0, "1", userId="u", properties=add)])
        second.ingest_messages([message("Product Added", 1, "2", userId="u", properties=add)])
        first.ingest_messages([message("Product Added", 2, "3", userId="u", properties=add)])
        profile = second.profile("u")
        assert profile is not None
        assert profile.state.cart.items[0].quantity == 3
        assert profile.state.event_count == 3
    finally:
        first.close()
        second.close()


def test_an_event_another_writer_logged_meanwhile_is_a_duplicate(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique key on messageId catches what the dedupe lookup missed (a writer that
    committed in between): the batch is retried and the event counted once, whether the rows
    went in by ``INSERT`` (SQLite) or ``COPY`` (PostgreSQL)."""
    from engine.config import Project, ProjectConfig

    project = Project(ProjectConfig(database_url=database_url), tmp_path)
    first, second = Followup(project), Followup(project)
    try:
        added = message("Product Added", 0, "m1", userId="u", properties={"price": 10})
        first.ingest_messages([added])
        store = second.ingestor.store
        lookup = store.existing_message_ids
        lookups: list[int] = []

        def racing(conn: sa.Connection, ids: list[str]) -> set[str]:
            lookups.append(len(ids))  # the first ran before the other writer committed
            return set() if len(lookups) == 1 else lookup(conn, ids)

        monkeypatch.setattr(store, "existing_message_ids", racing)
        summary = second.ingest_messages([added])
        assert len(lookups) == 2  # the unique key refused the first attempt
        assert (summary.accepted, summary.duplicates) == (0, 1)
        assert count(first, events) == 1
    finally:
        first.close()
        second.close()
