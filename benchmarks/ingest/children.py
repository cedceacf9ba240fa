"""Running work in child processes, so the orchestrator stays small.

Linux carries a process's peak RSS into the processes it starts: a child's ``ru_maxrss`` is at
least its parent's peak at the fork. So anything big (generating the synthetic file, importing
the engine to create a schema or build the sample) runs in a child too, and the orchestrator
imports only the standard library, orjson and psycopg.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_python(*args: str) -> str:
    """Run this interpreter with ``args`` in the repository; its stdout, or an error with its
    stderr when it fails. ``FOLLOWUP_DATABASE_URL`` is dropped so it cannot redirect a run."""
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout
