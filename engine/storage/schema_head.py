"""The newest migrations, read from the migration scripts' file names with the standard library
alone: a command finds a database up to date without loading Alembic, and ``followup tick``'s
quiet check without loading SQLAlchemy.

The schema is the core's branch of migrations and one branch per integration that keeps tables
(the call lists), each in a folder of its own: the core's ``engine/storage/migrations/versions``
and the package an installed distribution names under the ``followup.migrations`` entry points
(``integrations.calls.migrations``). A branch's scripts are named ``<revision>_<what>.py`` and its
revisions follow one another in name order (``0020_engine_marks.py`` is revision ``0020``,
``calls0001_call_lists.py`` is ``calls0001``), so each folder's head is its greatest revision and
the schema's heads are those of all the folders (a database at them has one ``alembic_version``
row per branch). ``tests/integration/test_migrations.py`` checks this against Alembic's own heads.
"""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from pathlib import Path

from engine.errors import StorageError
from engine.plugin_groups import MIGRATIONS

CORE_VERSIONS = Path(__file__).with_name("migrations") / "versions"


def _package_folder(module: str) -> Path | None:
    """The folder of package ``module``, found without importing it or its parents (an
    integration's ``__init__`` may load what the quiet check means to avoid)."""
    top, *rest = module.split(".")
    spec = find_spec(top)  # a top-level name is found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location).joinpath(*rest)
        if folder.is_dir():
            return folder
    return None


@cache
def migration_folders() -> tuple[Path, ...]:
    """The folders of migration scripts: the core's, then each installed integration's, by its
    entry point's name."""
    from importlib.metadata import entry_points

    folders = [CORE_VERSIONS]
    for point in sorted(entry_points(group=MIGRATIONS), key=lambda point: point.name):
        folder = _package_folder(point.value)
        if folder is None:
            raise StorageError(
                f"the {MIGRATIONS} entry point {point.name!r} names {point.value!r}, "
                "which is not an installed package: reinstall the distribution that brings it"
            )
        folders.append(folder)
    return tuple(folders)


def _revisions(folder: Path) -> list[str]:
    return [
        file.name.split("_", 1)[0]
        for file in folder.glob("*_*.py")
        if not file.name.startswith("_")
    ]


@cache
def schema_heads() -> tuple[str, ...]:
    """The head of every branch of the schema (the newest script in each folder), sorted."""
    found = (_revisions(folder) for folder in migration_folders())
    return tuple(sorted(max(revisions) for revisions in found if revisions))
