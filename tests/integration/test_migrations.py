"""The Alembic migrations create exactly the tables the code describes, on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.drive.partitions import bucket_of
from engine.storage.database import (
    HEAD_REVISION,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from engine.storage.tables import load_integration_tables, metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    engine = open_database(database_url)
    try:
        assert current_revision(engine) == head_revision()
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
    assert {current_revision(engine) for engine in engines} == {head_revision()}
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


def test_the_head_revision_named_in_code_is_the_newest_script() -> None:
    """``HEAD_REVISION`` lets a command find the schema up to date without loading Alembic:
    a new migration must move it too."""
    assert head_revision() == HEAD_REVISION


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
