"""One pass of the durable runtime in its own process, killed at a named point.

``python -m tests.durable.crash_worker PROJECT DATABASE_URL NOW [POINT]``: ingests nothing, runs
one pass at NOW and, when POINT is given, ends the process with ``os._exit`` the first time the
runtime reaches it (no cleanup, no commit: as a power cut or an OOM kill would).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.durable.project import DurableProject
from engine.events import parse_timestamp
from tests.durable.harness import Clock, open_followup

KILLED = 86


def main(argv: list[str]) -> None:
    project, database_url, now = Path(argv[0]), argv[1], parse_timestamp(argv[2])
    point = argv[3] if len(argv) > 3 else None

    def crash(reached: str) -> None:
        if reached == point:
            os._exit(KILLED)

    followup = open_followup(project, database_url, Clock(now))
    try:
        DurableProject(followup, crash=crash).run_once()
    finally:
        followup.close()


if __name__ == "__main__":
    main(sys.argv[1:])
