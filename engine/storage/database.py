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
from engine.storage.schema_head import migration_folders, schema_heads

MIGRATIONS = Path(__file__).with_name("migrations")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


SQLITE_SYNCHRONOUS = "FULL"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# A session is dropped ~40 s after its machine stops answering: 20 s idle, 4 probes 5 s apart
KEEPALIVES = (
    "SET tcp_keepalives_idle = 20; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4"
)


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """No JIT compilation: the engine's queries are short lookups by index whose estimated
    cost (a LIMIT over an index scan with subqueries) passes ``jit_above_cost``, so PostgreSQL
    spent 13 ms compiling the outbox's due page that then ran in 0.2 ms: most of an idle pass
    over a partition, and of every page of a delivery."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        # a pass whose machine stops answering lets go of its rows (a schedule's, its
        # customers') in about 40 s, as its partition lease does, not the system's 2 hours
        cursor.execute(KEEPALIVES)
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


def _alembic_config(connection: sa.Connection | None = None) -> Any:
    """Alembic's configuration: the core's environment, and the core's scripts beside those of
    every installed integration (each a branch of its own)."""
    import os

    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")  # Alembic 1.16 and later
    config.set_main_option("version_path_separator", "os")  # before 1.16 (ignored after)
    config.set_main_option(
        "version_locations", os.pathsep.join(str(folder) for folder in migration_folders())
    )
    config.attributes["connection"] = connection
    return config


UPGRADE_LOCK = 0x666F6C6C  # PostgreSQL advisory lock key of schema upgrades ("foll")


def head_revisions() -> tuple[str, ...]:
    """The heads of the schema's branches this code knows, as Alembic reads the scripts (what
    :func:`engine.storage.schema_head.schema_heads` finds from their names alone)."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory.from_config(_alembic_config()).get_heads()))


def current_revisions(engine: sa.Engine) -> tuple[str, ...]:
    """The migrations the database is at, one per branch, sorted; none for an empty database."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return ()
        found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        return tuple(sorted(found))


def upgrade(engine: sa.Engine, to: str = "heads") -> None:
    """Apply every migration the database lacks (on every branch, or up to revision ``to``)
    in one transaction, so a process killed halfway leaves the schema as it was; safe to call
    on every start."""
    try:
        if to == "heads" and current_revisions(engine) == schema_heads():
            return  # up to date, found without loading Alembic
        from alembic import command
        from alembic.util.exc import CommandError

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
            try:
                command.upgrade(_alembic_config(connection), to)
            except CommandError as exc:
                raise StorageError(_unknown_revisions(engine, exc)) from exc
    except sa.exc.OperationalError as exc:
        raise StorageError(f"cannot reach the database at {engine.url!r}: {exc.orig}") from exc


def _unknown_revisions(engine: sa.Engine, exc: Exception) -> str:
    """What to say when Alembic cannot upgrade: mostly a revision in the database that no
    script here knows (a newer followup, or an integration since uninstalled, migrated it)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    unknown = [revision for revision in current_revisions(engine) if not _known(scripts, revision)]
    if not unknown:
        return f"cannot bring the schema of {engine.url!r} up to date: {exc}"
    return (
        f"the database at {engine.url!r} was migrated to {', '.join(unknown)}, which no "
        "migration script of this installation knows: a newer followup, or an integration "
        "that is no longer installed, brought it there. Install that version or integration "
        "again; followup never drops what it cannot read."
    )


def _known(scripts: Any, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - Alembic raises its own errors for unknown revisions
        return False


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
