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
from typing import Any, Protocol, TypeVar

import orjson
import psycopg

from engine.storage.bulk import EVENT_COLUMNS

# as followup writes (seq by the log; received_as empty until a merge moves the event)
COLUMNS = tuple(c for c in EVENT_COLUMNS if c not in ("seq", "received_as"))
_PAYLOAD_KEYS = ("properties", "traits", "context", "previousId")

Row = tuple[Any, ...]
T = TypeVar("T")


def _items(message: dict[str, Any]) -> list[dict[str, Any]]:
    batch = message.get("batch")
    return batch if isinstance(batch, list) else [message]


def _message_id(message: dict[str, Any]) -> str:
    found = message.get("messageId")
    if found:
        return str(found)
    content = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(content).hexdigest()[:40]


def message_row(m: dict[str, Any], source: str, received_at: Any) -> Row:
    """The ``events`` row of one Segment message, in :data:`COLUMNS` order."""
    kind = m.get("type")
    user_id = m.get("userId")
    anonymous_id = m.get("anonymousId")
    name = m.get("event") if kind == "track" else m.get("name")
    payload = {k: m[k] for k in _PAYLOAD_KEYS if k in m}
    return (
        _message_id(m),
        kind,
        name if kind in ("track", "page") and isinstance(name, str) else "",
        m.get("timestamp"),
        str(user_id or anonymous_id or "")[:32],
        user_id,
        anonymous_id,
        m.get("channel") or "web",
        orjson.dumps(payload).decode(),
        source,
        received_at,
    )


def batches(
    path: Path, batch_size: int, now: Callable[[], Any], make: Callable[[Any, str, Any], T]
) -> Iterator[list[T]]:
    """``make(message, where, received_at)`` for each message of the file, in batches of
    ``batch_size``; ``now()`` is each batch's ``received_at``."""
    source = str(path)
    batch: list[T] = []
    received_at = now()
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{source}:{line}"
            batch.extend(make(m, where, received_at) for m in _items(orjson.loads(raw)))
            if len(batch) >= batch_size:
                yield batch
                batch = []
                received_at = now()
    if batch:
        yield batch


def row_batches(path: Path, batch_size: int, now: Callable[[], Any]) -> Iterator[list[Row]]:
    """The file's rows in batches of ``batch_size``; ``now()`` is each batch's ``received_at``."""
    return batches(path, batch_size, now, message_row)


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


class SqliteSink:
    """Rows into a SQLite file with ``executemany``, one transaction per call, in the engine's
    durability mode (WAL, ``synchronous=FULL``)."""

    def __init__(self, database: Path) -> None:
        self.statement = (
            f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
        )
        self.conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.now: Callable[[], Any] = _sqlite_now

    def write(self, rows: list[Row]) -> int:
        """Insert ``rows`` in one transaction; how many."""
        self.conn.execute("BEGIN")
        self.conn.executemany(self.statement, rows)
        self.commit()
        return len(rows)

    def commit(self) -> None:
        """Commit (its own method, so a profile tells it from the insert)."""
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class PostgresSink:
    """Rows into PostgreSQL with ``COPY ... FROM STDIN``, one transaction per call."""

    def __init__(self, conninfo: str) -> None:
        self.statement = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.now: Callable[[], Any] = _aware_now

    def write(self, rows: list[Row]) -> int:
        """Copy ``rows`` in one transaction; how many."""
        conn = self.conn
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(self.statement) as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def open_sink(url: str) -> SqliteSink | PostgresSink:
    """The cheapest bulk path into the database at the SQLAlchemy ``url``."""
    if url.startswith("sqlite:///"):
        return SqliteSink(sqlite_file(url))
    return PostgresSink(postgres_conninfo(url))


class Sink(Protocol):
    """Where a loader's batches go: ``write`` one in one transaction (the events it logged)."""

    now: Callable[[], Any]

    def write(self, batch: list[Any]) -> int: ...

    def close(self) -> None: ...


def drive(
    sink: Sink,
    batches: Callable[[Callable[[], Any]], Iterator[list[Any]]],
    on_batch: Callable[[int], None] | None = None,
    more: Callable[[], bool] | None = None,
) -> int:
    """Write every batch of ``batches(sink.now)`` into ``sink``; the events logged.
    ``on_batch`` gets each committed batch's count; loading stops early once ``more()`` says
    no. The sink is closed at the end."""
    count = 0
    try:
        for batch in batches(sink.now):
            written = sink.write(batch)
            count += written
            if on_batch is not None:
                on_batch(written)
            if more is not None and not more():
                break
    finally:
        sink.close()
    return count


def load(
    url: str,
    path: Path,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    more: Callable[[], bool] | None = None,
) -> int:
    """Load the file's rows into the database at ``url``, one transaction per batch; the number
    of rows (see :func:`drive`)."""
    return drive(open_sink(url), lambda now: row_batches(path, batch_size, now), on_batch, more)
