"""The newest migration, read from the migration scripts' file names (``0020_engine_marks.py``
is revision ``0020``) with the standard library alone: a command finds a database up to date
without loading Alembic, and ``followup tick``'s quiet check without loading SQLAlchemy.
``tests/integration/test_migrations.py`` checks it against Alembic's own head."""

from __future__ import annotations

from pathlib import Path

VERSIONS = Path(__file__).with_name("migrations") / "versions"


def newest_migration() -> str:
    """The revision of the newest migration: the number its file name starts with."""
    return max(file.name.split("_", 1)[0] for file in VERSIONS.glob("[0-9]*_*.py"))
