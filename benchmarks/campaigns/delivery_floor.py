"""The floor of the file outbox: the same row work as the dispatcher, with nothing else done.

Pages of 200 pending ``outbox`` rows are read by plain ``sqlite3``; each becomes a message from
an f-string (its headers and the rendered HTML body, no MIME library), written to a temporary
file; then one ``syncfs`` for the page, each file linked to its final name, one ``fsync`` of the
folder, and the rows marked delivered with one ``executemany`` in one transaction (WAL,
``synchronous=FULL``, as followup runs). The same durability as followup's group commit.
On PostgreSQL (:func:`deliver_floor_pg`) the same by plain ``psycopg``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from integrations.outbox._files import sync_files

PAGE = 200


SELECT_PAGE = (
    "SELECT id, key, journey_id, step, customer_id, fields FROM outbox"
    " WHERE status = 'pending' AND channel = 'email' AND id > {mark} ORDER BY id LIMIT {mark}"
)
Staged = tuple[int, Path, Path]


def _write_page(folder: Path, page: list[tuple[Any, ...]]) -> list[Staged]:
    """Each row of ``page`` as a message file, durable under its final name (one ``syncfs``
    for the page's files, one ``fsync`` of the folder); the rows' ids with their files."""
    staged = []
    for row_id, key, journey, step, customer, fields in page:
        body = json.loads(fields) if isinstance(fields, str) else fields
        data = (
            f"To: {customer}@example.com\r\nFrom: followup@localhost\r\n"
            f"Subject: {body.get('subject', '')}\r\nX-Followup-Key: {key}\r\n"
            f'Content-Type: text/html; charset="utf-8"\r\n\r\n{body.get("html", "")}\r\n'
        ).encode()
        temp = folder / f".{journey}-{step}.eml.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
        staged.append((row_id, temp, folder / f"{journey}-{step}.eml"))
    sync_files(folder, [temp for _, temp, _ in staged])
    for _, temp, final in staged:
        os.link(temp, final)
        temp.unlink()
    fd = os.open(folder, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return staged


def deliver_floor(database: Path, folder: Path, now: str) -> int:
    """Deliver every pending email row of ``database`` into ``folder``; how many."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    done = 0
    last = 0
    while page := conn.execute(SELECT_PAGE.format(mark="?"), (last, PAGE)).fetchall():
        staged = _write_page(folder, page)
        conn.execute("BEGIN")
        conn.executemany(
            "UPDATE outbox SET status = 'delivered', updated_at = ? WHERE id = ?",
            [(now, row_id) for row_id, _, _ in staged],
        )
        conn.execute("COMMIT")
        done += len(staged)
        last = page[-1][0]
    conn.close()
    return done


def deliver_floor_pg(url: str, folder: Path, now: datetime) -> int:
    """:func:`deliver_floor` on PostgreSQL by plain ``psycopg``: the page read, the files
    written the same way, the page's rows marked delivered by one ``UPDATE ... = ANY``."""
    folder.mkdir(parents=True, exist_ok=True)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = 0
    last = 0
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        while page := conn.execute(SELECT_PAGE.format(mark="%s"), (last, PAGE)).fetchall():
            staged = _write_page(folder, page)
            with conn.transaction():
                conn.execute(
                    "UPDATE outbox SET status = 'delivered', updated_at = %s WHERE id = ANY(%s)",
                    (now, [row_id for row_id, _, _ in staged]),
                )
            done += len(staged)
            last = page[-1][0]
    return done
