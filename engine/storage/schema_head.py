"""The heads of the schema's migrations, read from the migration scripts with the standard
library alone: a command finds a database up to date without loading Alembic, and ``followup
tick``'s quiet check without loading SQLAlchemy.

The schema is the core's branch of migrations and one branch per integration that keeps tables
(the call lists), each in a folder of its own: the core's ``engine/storage/migrations/versions``
and the package an installed distribution names under the ``followup.migrations`` entry points
(``integrations.calls.migrations``). Each script names its ``revision`` and ``down_revision``
(Alembic's own layout, whatever the file is called); a head is a revision no other names as its
``down_revision``, and a database at the heads has one ``alembic_version`` row per branch.
``tests/integration/test_migrations.py`` checks this against Alembic's own heads.
"""

from __future__ import annotations

import re
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


_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def script_links(folder: Path) -> dict[str, tuple[str, ...]]:
    """Each script's revision in ``folder``, with the revisions it follows (none for a base).
    A script whose revision cannot be read here is left out (Alembic reports it)."""
    links: dict[str, tuple[str, ...]] = {}
    for file in folder.glob("*.py"):
        if file.name.startswith("__"):
            continue
        text = file.read_text("utf-8")
        found = {match[1]: match[2] for match in _ASSIGNED.finditer(text)}
        revision = _QUOTED.fullmatch(found.get("revision", ""))
        if revision is not None:
            links[revision.group(1)] = tuple(_QUOTED.findall(found.get("down_revision", "")))
    return links


@cache
def schema_heads() -> tuple[str, ...]:
    """The head of every branch of the schema (a revision no script follows), sorted."""
    links: dict[str, tuple[str, ...]] = {}
    for folder in migration_folders():
        links.update(script_links(folder))
    return heads_among(links)


def heads_among(links: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The revisions of ``links`` (revision -> those it follows) that no other follows."""
    followed = {down for downs in links.values() for down in downs}
    return tuple(sorted(revision for revision in links if revision not in followed))
