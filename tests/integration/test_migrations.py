"""The Alembic migrations create exactly the tables the code describes, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.drive.partitions import bucket_of
from engine.storage.database import current_revisions, head_revisions, open_database, upgrade
from engine.storage.schema_head import schema_heads
from engine.storage.tables import load_integration_tables, metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        assert current_revisions(engine) == head_revisions()
        load_integration_tables()  # the integrations' tables are in the schema too
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"events", "customers", "identities", "merges", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_processes_starting_together_take_turns_at_the_upgrade(database_url: str) -> None:
    """Workers, ``run`` and ``serve`` started at once on a new database: one upgrades, the
    others find nothing left to do (a PostgreSQL advisory lock, a lock file beside SQLite)."""
    import threading

    problems: list[BaseException] = []
    engines: list[sa.Engine] = []

    def start() -> None:
        try:
            engines.append(open_database(database_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            problems.append(exc)

    if database_url.startswith("postgresql"):
        admin = sa.create_engine(database_url)
        with admin.begin() as conn:  # a new, empty schema
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        admin.dispose()
    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert {current_revisions(engine) for engine in engines} == {head_revisions()}
    for engine in engines:
        engine.dispose()


def _schema_at(database_url: str, revision: str) -> sa.Engine:
    """An empty database of ``database_url`` migrated up to ``revision`` only."""
    from engine.storage.database import create_engine

    engine = create_engine(database_url)
    if database_url.startswith("postgresql"):
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine, to=revision)
    return engine


def test_the_inbox_takes_its_event_times_from_the_log(database_url: str) -> None:
    """Migration 0007 copies each waiting event's time into the inbox, and drops an inbox row
    whose event is not in the log (the engine could never take it)."""
    from datetime import UTC, datetime

    from engine.storage.tables import events, journey_inbox

    engine = _schema_at(database_url, "0006")
    try:
        at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                events.insert(),
                [
                    {
                        "message_id": f"m{n}",
                        "type": "track",
                        "name": "Order Completed",
                        "timestamp": at.replace(minute=n),
                        "customer_id": "c1",
                        "channel": "web",
                        "payload": {},
                        "received_at": at,
                    }
                    for n in (1, 2)
                ],
            )
            for message_id in ("m1", "m2", "lost"):
                conn.execute(
                    sa.text("INSERT INTO journey_inbox (message_id) VALUES (:m)"), {"m": message_id}
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(journey_inbox).order_by(journey_inbox.c.message_id))
            # and 0009 the log's sequence numbers; 0017's owner as received is unknown for them;
            # 0018 the bucket of their event's customer
            assert [tuple(row) for row in rows] == [
                ("m1", at.replace(minute=1), 1, None, bucket_of("c1")),
                ("m2", at.replace(minute=2), 2, None, bucket_of("c1")),
            ]
    finally:
        engine.dispose()


def test_sweep_rows_move_onto_the_hours_of_utc(database_url: str) -> None:
    """0023: each partition's ``segments`` row (the next hourly sweep, on the grid of the first
    pass until then) moves to the first UTC hour at or after it; a sweep over everyone's row
    (a run, not a grid) and a schedule's stay."""
    from datetime import UTC, datetime

    from engine.storage.tables import schedule_ticks

    engine = _schema_at(database_url, "0022")
    at = datetime(2026, 3, 1, 9, 37, 13, tzinfo=UTC)
    rows = {"segments": at, "segments#1/2": at.replace(minute=0, second=0)}
    rows |= {"segments:0123abcd": at, "schedule:weekly": at}
    try:
        with engine.begin() as conn:
            conn.execute(
                schedule_ticks.insert(), [{"name": n, "due_at": d} for n, d in rows.items()]
            )
        upgrade(engine)
        with engine.connect() as conn:
            query = sa.select(schedule_ticks.c.name, schedule_ticks.c.due_at)
            found: dict[str, datetime] = dict(conn.execute(query).all())
        assert found == {**rows, "segments": datetime(2026, 3, 1, 10, tzinfo=UTC)}
    finally:
        engine.dispose()


def test_the_heads_read_without_alembic_are_alembics() -> None:
    """``schema_heads`` lets a command find the schema up to date without loading Alembic:
    read from the scripts' ``revision`` and ``down_revision``, they are the heads Alembic
    finds."""
    assert schema_heads() == head_revisions() == ("0023", "calls0001")


def test_heads_are_read_whatever_the_scripts_are_called(tmp_path: Path) -> None:
    """A branch made by ``alembic revision`` (random ids, annotated assignments, a merge of
    two heads): the heads are the revisions no script follows, not the greatest names."""
    scripts = {
        "1975ea83b712_points.py": 'revision: str = "1975ea83b712"\ndown_revision = None\n',
        "0a3f55c2d9e1_tier.py": (
            '"""Tier.\n\nRevision ID: 0a3f55c2d9e1\nRevises: 1975ea83b712\n"""\n'
            'revision: str = "0a3f55c2d9e1"\n'
            "down_revision: Union[str, None] = '1975ea83b712'\n"
        ),
        "ffff_side.py": 'revision = "ffff"\ndown_revision = "1975ea83b712"\n',
        "0001_merge.py": 'revision = "0001"\ndown_revision = ("0a3f55c2d9e1", "ffff")\n',
        "__init__.py": "",
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    from engine.storage.schema_head import heads_among, script_links

    links = script_links(tmp_path)
    assert links == {
        "1975ea83b712": (),
        "0a3f55c2d9e1": ("1975ea83b712",),
        "ffff": ("1975ea83b712",),
        "0001": ("0a3f55c2d9e1", "ffff"),
    }
    assert heads_among(links) == ("0001",)


def test_the_outbox_rows_get_their_customers_bucket(database_url: str) -> None:
    """Migration 0019 fills each outbox row's bucket from its customer, for the rows already
    there (0018 did the same for the inbox, above)."""
    from datetime import UTC, datetime

    from engine.drive.partitions import bucket_of
    from engine.storage.tables import outbox

    engine = _schema_at(database_url, "0018")
    try:
        at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        with engine.begin() as conn:
            for number, customer in enumerate(["c1", "c2", "c2"]):
                conn.execute(
                    sa.text(
                        "INSERT INTO outbox (key, journey_id, step, campaign_id, customer_id,"
                        " channel, action, fields, status, attempts, decided_at,"
                        " next_attempt_at, updated_at) VALUES (:key, 'j', '1', 'c', :customer,"
                        " 'email', 'send', '{}', 'pending', 0, :at, :at, :at)"
                    ),
                    {"key": f"k{number}", "customer": customer, "at": at},
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.customer_id, outbox.c.bucket)).all()
        assert sorted(rows) == [
            ("c1", bucket_of("c1")),
            ("c2", bucket_of("c2")),
            ("c2", bucket_of("c2")),
        ]
        assert bucket_of("c1") != bucket_of("c2")  # the rows were told apart
    finally:
        engine.dispose()


def test_a_database_whose_call_lists_the_core_made_keeps_them(database_url: str) -> None:
    """Until December 2026 the core's migration 0004 created the call lists' tables; they are
    the calls branch's now. A database migrated then (the tables there, with rows, and one
    ``alembic_version`` row) is brought to both heads with its rows kept, and matches the
    tables the code describes."""
    from datetime import UTC, datetime

    from integrations.calls.tables import call_dnc, call_entries

    engine = _schema_at(database_url, "0023")
    try:
        with engine.begin() as conn:  # as the old 0004 left them
            assert not sa.inspect(conn).has_table("call_entries")
            call_entries.create(conn)
            call_dnc.create(conn)
            at = datetime(2026, 3, 1, tzinfo=UTC)
            conn.execute(
                call_dnc.insert(), {"phone": "+15551230000", "source": "t", "added_at": at}
            )
        assert current_revisions(engine) == ("0023",)
        upgrade(engine)
        assert current_revisions(engine) == head_revisions() == ("0023", "calls0001")
        with engine.connect() as conn:
            assert conn.scalars(sa.select(call_dnc.c.phone)).all() == ["+15551230000"]
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_new_database_gets_the_call_lists_from_their_branch(database_url: str) -> None:
    """The core's branch alone makes no call lists; the calls branch makes them, and going
    back down its branch drops them and leaves the core's tables."""
    engine = _schema_at(database_url, "0023")
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("call_entries")
        upgrade(engine, to="calls@head")
        with engine.connect() as conn:
            assert {"call_entries", "call_dnc"} <= set(sa.inspect(conn).get_table_names())
        from alembic import command

        from engine.storage.database import _alembic_config

        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "calls@base")
        assert current_revisions(engine) == ("0023",)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert "call_entries" not in tables and {"outbox", "events"} <= tables
    finally:
        engine.dispose()


def test_a_revision_no_script_knows_is_named_and_nothing_is_dropped(database_url: str) -> None:
    """A database migrated by a newer followup, or by an integration since uninstalled, holds a
    revision no script here knows: opening it says which and what to do, and changes nothing."""
    from engine.errors import StorageError

    engine = open_database(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('loyalty0003')"))
        with pytest.raises(StorageError) as raised:
            upgrade(engine)
        assert "migrated to loyalty0003, which no migration script" in str(raised.value)
        assert "Install that version or integration again" in str(raised.value)
        assert current_revisions(engine) == ("0023", "calls0001", "loyalty0003")
    finally:
        with engine.begin() as conn:  # the PostgreSQL database serves the next tests
            conn.execute(sa.text("DELETE FROM alembic_version WHERE version_num = 'loyalty0003'"))
        engine.dispose()
