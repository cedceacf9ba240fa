"""Running the installed ``followup`` command as a user would, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FOLLOWUP = str(Path(sys.executable).parent / "followup")


def run_followup(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``followup ARGS`` in ``cwd``: a wide terminal, no database from the caller's environment."""
    environment = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    environment["COLUMNS"] = "250"
    environment.update(env or {})
    return subprocess.run(
        [FOLLOWUP, *args],
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
