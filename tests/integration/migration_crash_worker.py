"""Brings a new database's schema up to date in its own process, SIGKILLed halfway.

``python -m tests.integration.migration_crash_worker DATABASE_URL TABLE``: the process kills
itself (``SIGKILL``: no cleanup, no rollback, as an OOM kill or a power cut would) right after
the migrations create ``TABLE``, with the tables before it already made.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import sqlalchemy as sa

from engine.storage.database import open_database


def main(argv: list[str]) -> None:
    database_url, table = argv

    def kill_after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(f"CREATE TABLE {table.upper()} "):
            os.kill(os.getpid(), signal.SIGKILL)

    sa.event.listen(sa.Engine, "after_cursor_execute", kill_after)
    open_database(database_url)


if __name__ == "__main__":
    main(sys.argv[1:])
