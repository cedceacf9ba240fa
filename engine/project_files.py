"""Where a project's config and database are, with the standard library alone: read by
:mod:`engine.config` and by ``followup tick``'s quiet check, which runs before pydantic loads."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE = "followup.yaml"
DATABASE_ENV = "FOLLOWUP_DATABASE_URL"
SQLITE = "sqlite:///"
DEFAULT_DATABASE_URL = SQLITE + "followup.db"
DEFAULT_CAMPAIGNS = "campaigns/"


def database_url(configured: str, root: Path) -> str:
    """The database to use: the environment, then ``configured``; a relative SQLite path made
    absolute from the project's folder ``root``."""
    url = os.environ.get(DATABASE_ENV) or configured
    if url.startswith(SQLITE) and url != SQLITE + ":memory:":
        file = url.removeprefix(SQLITE)
        if not file.startswith("/"):
            url = SQLITE + str((root / file).resolve())
    return url
