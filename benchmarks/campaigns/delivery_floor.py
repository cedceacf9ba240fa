"""The floor of the file outbox: the same row work as the dispatcher, with nothing else done.

Pages of 200 pending ``outbox`` rows are read by plain ``sqlite3``; each becomes a message from
an f-string (its headers and the rendered HTML body, no MIME library), written to a temporary
file; then one ``syncfs`` for the page, each file linked to its final name, one ``fsync`` of the
folder, and the rows marked delivered with one ``executemany`` in one transaction (WAL,
``synchronous=FULL``, as followup runs). The same durability as followup's group commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from integrations.outbox._files import sync_files

PAGE = 200


def deliver_floor(database: Path, folder: Path, now: str) -> int:
    """Deliver every pending email row of ``database`` into ``folder``; how many."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    done = 0
    last = 0
    while page := conn.execute(
        "SELECT id, key, journey_id, step, customer_id, fields FROM outbox"
        " WHERE status = 'pending' AND channel = 'email' AND id > ? ORDER BY id LIMIT ?",
        (last, PAGE),
    ).fetchall():
        staged = []
        for row_id, key, journey, step, customer, fields in page:
            body = json.loads(fields)
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
