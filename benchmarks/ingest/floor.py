"""The floor: what any loader of the same file into the same ``events`` table must spend.

Each line is parsed with orjson and becomes the row :func:`engine.storage.customer_store.event_row`
would write (payload as JSON text), and the rows go in with the cheapest bulk path of the backend:
``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL, one transaction per batch like
followup. There is no validation, deduplication, identity resolution or profile state. Timestamps
go through as the file's ISO text (PostgreSQL parses it; SQLite stores it as is), and
``customer_id`` is the userId (the anonymousId when there is none), cut to the column's 32
characters.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg

from engine.storage.bulk import EVENT_COLUMNS

COLUMNS = tuple(c for c in EVENT_COLUMNS if c != "seq")  # as followup writes; seq by the log
_PAYLOAD_KEYS = ("properties", "traits", "context", "previousId")

Row = tuple[Any, ...]


def _items(message: dict[str, Any]) -> list[dict[str, Any]]:
    batch = message.get("batch")
    return batch if isinstance(batch, list) else [message]


def _message_id(message: dict[str, Any]) -> str:
    found = message.get("messageId")
    if found:
        return str(found)
    content = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(content).hexdigest()[:40]


def row_batches(path: Path, batch_size: int, now: Callable[[], Any]) -> Iterator[list[Row]]:
    """The file's rows in batches of ``batch_size``; ``now()`` is each batch's ``received_at``."""
    source = str(path)
    batch: list[Row] = []
    received_at = now()
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            for m in _items(orjson.loads(raw)):
                kind = m.get("type")
                user_id = m.get("userId")
                anonymous_id = m.get("anonymousId")
                name = m.get("event") if kind == "track" else m.get("name")
                payload = {k: m[k] for k in _PAYLOAD_KEYS if k in m}
                batch.append(
                    (
                        _message_id(m),
                        kind,
                        name if kind in ("track", "page") and isinstance(name, str) else "",
                        m.get("timestamp"),
                        str(user_id or anonymous_id or "")[:32],
                        user_id,
                        anonymous_id,
                        m.get("channel") or "web",
                        orjson.dumps(payload).decode(),
                        f"{source}:{line}",
                        received_at,
                    )
                )
            if len(batch) >= batch_size:
                yield batch
                batch = []
                received_at = now()
    if batch:
        yield batch


def sqlite_file(url: str) -> Path:
    """The file of a ``sqlite:///…`` URL."""
    return Path(url.removeprefix("sqlite:///"))


def postgres_conninfo(url: str) -> str:
    """The libpq form of a ``postgresql+psycopg://…`` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _sqlite_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _aware_now() -> datetime:
    return datetime.now(UTC)


def load_sqlite(path: Path, database: Path, batch_size: int) -> int:
    """Insert the file's rows into the SQLite database with ``executemany``, in the engine's
    durability mode (WAL, ``synchronous=FULL``); the number of rows."""
    statement = (
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    )
    count = 0
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for batch in row_batches(path, batch_size, _sqlite_now):
            conn.execute("BEGIN")
            conn.executemany(statement, batch)
            conn.execute("COMMIT")
            count += len(batch)
    finally:
        conn.close()
    return count


def load_postgres(path: Path, conninfo: str, batch_size: int) -> int:
    """Copy the file's rows into PostgreSQL with ``COPY ... FROM STDIN``; the number of rows."""
    statement = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"
    count = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for batch in row_batches(path, batch_size, _aware_now):
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in batch:
                    copy.write_row(row)
            count += len(batch)
    return count
