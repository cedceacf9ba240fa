"""Scratch databases for one measurement each: a SQLite file in a temporary folder, or a fresh
PostgreSQL database; both get followup's schema from ``open_database`` (in a child process, see
:mod:`benchmarks.ingest.children`)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from itertools import count

import psycopg
from psycopg import sql

from benchmarks.ingest.children import run_python
from benchmarks.ingest.floor import postgres_conninfo, sqlite_file

POSTGRES_SERVER = "postgres@127.0.0.1:5432"
ADMIN_DATABASE = "test"
BACKENDS = ("sqlite", "postgresql")
_names = count(1)


def conninfo(database: str) -> str:
    """A libpq URL for ``database`` on the benchmark's PostgreSQL server."""
    return f"postgresql://{POSTGRES_SERVER}/{database}"


_CREATE_SCHEMA = (
    "import sys; from engine.storage.database import open_database; "
    "open_database(sys.argv[1]).dispose()"
)


def _create_schema(url: str) -> None:
    run_python("-c", _CREATE_SCHEMA, url)


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database with the schema; dropped on exit."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="followup-bench-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            _create_schema(url)
            yield url
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    name = f"bench_ingest_{os.getpid()}_{next(_names)}"
    with psycopg.connect(conninfo(ADMIN_DATABASE), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = f"postgresql+psycopg://{POSTGRES_SERVER}/{name}"
            _create_schema(url)
            yield url
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def stored_events(url: str) -> int:
    """How many rows the ``events`` table of the database at ``url`` holds."""
    query = "SELECT count(*) FROM events"
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(sqlite_file(url))) as conn:
            return int(conn.execute(query).fetchone()[0])
    with psycopg.connect(postgres_conninfo(url)) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0
