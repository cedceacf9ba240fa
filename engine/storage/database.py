"""Opening the database and bringing its schema up to date with Alembic.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a committed event
survives a crash, which is what "durable before accepted" needs. PostgreSQL is used as is.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from engine.errors import StorageError
from engine.storage.schema_head import newest_migration

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = newest_migration()
"""The newest migration (``tests/integration/test_migrations.py`` checks it against the
scripts): a database already there is found up to date without loading Alembic, which every
command (a cron ``tick`` each minute) would otherwise pay for on start."""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


SQLITE_SYNCHRONOUS = "FULL"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """No JIT compilation: the engine's queries are short lookups by index whose estimated
    cost (a LIMIT over an index scan with subqueries) passes ``jit_above_cost``, so PostgreSQL
    spent 13 ms compiling the outbox's due page that then ran in 0.2 ms: most of an idle pass
    over a partition, and of every page of a delivery."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()  # a SET rolled back with its transaction would be undone


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    options: dict[str, Any] = {}
    if url.startswith("postgresql+psycopg"):
        # psycopg prepares a statement after 5 runs; ingest's long IN (...) lookups then get a
        # generic plan that scans the table (seen in benchmarks/: 28x the floor instead of ~10x)
        options["connect_args"] = {"prepare_threshold": None}
        # followup serve answers up to 40 requests at once (the thread pool) beside its writer:
        # with SQLAlchemy's default 5 kept connections most write-key lookups connected anew,
        # 18% of the service's CPU under load (benchmarks/README.md)
        options["pool_size"] = 20
    try:
        engine = sa.create_engine(
            url, json_serializer=_json_dumps, json_deserializer=orjson.loads, **options
        )
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database_url {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        sa.event.listen(engine, "connect", _postgresql_session)
    return engine


Begin = Callable[[bool], AbstractContextManager[None]]
"""Begins a transaction on a connection; ``begin(False)``: one whose commit needs no fsync."""


@contextmanager
def transactions(connection: sa.Connection) -> Iterator[Begin]:
    """Transactions on ``connection``, one after another, each synced or not. An unsynced one
    (``begin(False)``) does not wait for the disk to commit (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit=off``): still atomic and safe from a dying process, but a
    power cut or an OS crash may lose it. For writes that are harmless to lose, where an fsync
    per commit would cost more than the work. The setting is the session's: it is changed only
    when a transaction wants the other one, and put back at the end."""
    sqlite = connection.dialect.name == "sqlite"
    synced_now = [True]

    def set_synced(synced: bool) -> None:
        if sqlite:
            connection.exec_driver_sql(
                f"PRAGMA synchronous={SQLITE_SYNCHRONOUS if synced else 'NORMAL'}"
            )
        else:
            connection.exec_driver_sql(
                f"SET synchronous_commit TO {'DEFAULT' if synced else 'off'}"
            )
        connection.commit()  # (SQLite's pragma is refused within a transaction)
        synced_now[0] = synced

    @contextmanager
    def begin(synced: bool = True) -> Iterator[None]:
        if synced != synced_now[0]:
            set_synced(synced)
        with connection.begin():
            yield

    try:
        yield begin
    finally:
        if not synced_now[0]:
            set_synced(True)


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


UPGRADE_LOCK = 0x666F6C6C  # PostgreSQL advisory lock key of schema upgrades ("foll")


def head_revision() -> str | None:
    """The newest migration this code knows, read from the scripts."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The migration the database is at, or ``None`` for an empty database."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        found: str | None = connection.execute(
            sa.text("SELECT version_num FROM alembic_version")
        ).scalar()
        return found


def upgrade(engine: sa.Engine, to: str = "head") -> None:
    """Apply every migration the database lacks (up to revision ``to``) in one transaction, so
    a process killed halfway leaves the schema as it was; safe to call on every start."""
    try:
        if current_revision(engine) == (HEAD_REVISION if to == "head" else to):
            return
        from alembic import command

        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # Python's sqlite3 opens a transaction before INSERT/UPDATE/DELETE only, so each
                # CREATE TABLE would commit on its own: begin one explicitly (IMMEDIATE: take the
                # write lock now, waiting for busy_timeout, rather than fail to upgrade a reader
                # later). Only this connection, only now: the rest of the engine is unchanged.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif connection.dialect.name == "postgresql":
                # processes starting together (workers, a service) upgrade one at a time; the
                # lock goes with the transaction, and the next one finds nothing left to do
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK}
                )
            command.upgrade(_alembic_config(connection), to)
    except sa.exc.OperationalError as exc:
        raise StorageError(f"cannot reach the database at {engine.url!r}: {exc.orig}") from exc


@contextmanager
def _upgrade_lock(url: str) -> Iterator[None]:
    """For a SQLite file, an exclusive lock beside it while the schema is brought up to date:
    processes started together (``run`` and ``serve``) take turns, as on PostgreSQL."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        yield
        return
    database = Path(url.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.upgrade-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_database(url: str) -> sa.Engine:
    """An engine for ``url`` with the schema at the newest migration."""
    engine = create_engine(url)
    with _upgrade_lock(url):
        upgrade(engine)
    return engine
