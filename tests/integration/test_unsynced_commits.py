"""``transactions(conn)``: a transaction may commit without waiting for the disk, and the
connection goes back to the pool as durable as it came (the rest of the engine relies on it)."""

from __future__ import annotations

import sqlalchemy as sa

from engine.storage.database import open_database, transactions


def _setting(conn: sa.Connection) -> str:
    if conn.dialect.name == "sqlite":
        return {"2": "FULL", "1": "NORMAL"}[
            str(conn.exec_driver_sql("PRAGMA synchronous").scalar())
        ]
    return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())


def test_unsynced_commits_are_undone_when_the_connection_is_handed_back(database_url: str) -> None:
    db = open_database(database_url)
    try:
        with db.connect() as conn:
            durable = _setting(conn)
            conn.rollback()
            seen = []
            with transactions(conn) as begin:
                for synced in (False, False, True, False):
                    with begin(synced):
                        seen.append(_setting(conn))
            after = _setting(conn)
    finally:
        db.dispose()
    relaxed = "NORMAL" if database_url.startswith("sqlite") else "off"
    assert durable in ("FULL", "on")
    assert seen == [relaxed, relaxed, durable, relaxed]
    assert after == durable
