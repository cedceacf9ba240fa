"""``followup tick`` with nothing due, answered from the SQLite file without loading the engine.

A cron tick every minute mostly finds nothing to do, and loading the engine to find that out
(SQLAlchemy, pydantic, the campaigns, the providers) costs most of a second. Before the command
line is even imported, :func:`main` looks at the embedded SQLite database with the standard
library's ``sqlite3``, read-only. It answers, with the line a full pass with nothing to do
prints, only when all of these hold, and otherwise hands over to the full command:

- the command is ``followup tick`` alone (``--now`` and ``--config`` allowed; not
  ``--summary`` nor ``--partition``), and the project's database is a SQLite file;
- the schema is at the newest migrations (of the core and of each integration), and the last full tick on this database ran with the
  same fingerprint: followup's version, the config file, the ``FOLLOWUP_*`` environment and the
  variables the config names (providers' secrets), whether the signing key file is usable, and
  every file under
  the campaigns folder (a new or changed campaign registers its version and books its schedule
  in a full pass; a missing secret fails a full pass even with nothing to send);
- nothing is due by now: no event waiting for the engine stamped by now, no journey timer,
  schedule tick (segment sweeps are ticks too) or segment look, no outbox row pending and due,
  none left ``sending``.

Anything unexpected on the way (a file that cannot be read, a table that is not there) hands
over too: the full pass is always right, this is only quicker when it would do nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from engine.errors import StorageError
from engine.project_files import (
    CONFIG_FILE,
    DEFAULT_CAMPAIGNS,
    DEFAULT_DATABASE_URL,
    SQLITE,
    database_url,
)
from engine.storage.schema_head import schema_heads
from engine.storage.sqlite_time import sqlite_time

MARK = "quiet_tick"  # its row in engine_marks
# --now in the forms this check reads the same as the full command: a date and time with seconds
# (and a fraction) or not, and Z or an offset
_NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)")

# what a full pass would take, each: any row means the full pass runs
_DUE = (
    "SELECT 1 FROM journey_inbox WHERE timestamp <= :now LIMIT 1",
    "SELECT 1 FROM journey_timers WHERE due_at <= :now LIMIT 1",
    "SELECT 1 FROM schedule_ticks WHERE due_at <= :now LIMIT 1",
    "SELECT 1 FROM segment_looks WHERE due_at <= :now LIMIT 1",
    "SELECT 1 FROM outbox WHERE status = 'sending' LIMIT 1",
    "SELECT 1 FROM outbox WHERE status = 'pending' AND next_attempt_at <= :now LIMIT 1",
)


@dataclass(frozen=True)
class TickRequest:
    """A ``followup tick`` this check may answer: its ``--config`` and ``--now``, if given."""

    config: Path | None
    now: datetime | None


@dataclass(frozen=True)
class QuietProject:
    """What the check needs of a project: its SQLite file and its fingerprint."""

    database: Path
    fingerprint: str


def main() -> None:
    """Entry point of the ``followup`` console script: the quiet answer, or the command line."""
    if not answered_quietly(sys.argv[1:]):
        from engine.cli.app import main as command_line

        command_line()


def answered_quietly(args: list[str]) -> bool:
    """Whether ``args`` are a tick that had nothing to do, its line printed; else nothing is
    printed and the full command must run."""
    request = tick_request(args)
    if request is None:
        return False
    try:
        project = quiet_project(request.config)
        now = request.now or datetime.now(UTC)
        if project is None or not nothing_due(project, now):
            return False
    except (OSError, sqlite3.Error, ValueError, UnicodeDecodeError, StorageError):
        return False  # the full command reports what is wrong, if anything is
    from engine.journeys.plan import format_time

    sys.stdout.write(
        f"{format_time(now)}: 0 events, timers of 0 customers, 0 scheduled, 0 swept; "
        "decided nothing; outbox nothing\n"
    )
    return True


def tick_request(args: list[str]) -> TickRequest | None:
    """``followup [--config F] tick [--now T] [--config F]``; ``None`` for anything else."""
    values: dict[str, str] = {}
    command_seen = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "tick" and not command_seen:
            command_seen = True
        elif arg.split("=", 1)[0] in ("--config", "--now"):
            name, equals, value = arg.partition("=")
            if not equals:
                index += 1
                if index == len(args):
                    return None
                value = args[index]
            if name == "--now" and not command_seen or name in values:
                return None
            values[name] = value
        else:
            return None
        index += 1
    if not command_seen:
        return None
    now: datetime | None = None
    if "--now" in values:
        if not _NOW.fullmatch(values["--now"]):
            return None
        try:
            now = datetime.fromisoformat(values["--now"]).astimezone(UTC)
        except (ValueError, OverflowError):  # 2024-02-30, an offset of 24:00: the full command
            return None  # says what is wrong
        if not 1900 <= now.year <= 2999:  # the full command's range
            return None
    return TickRequest(Path(values["--config"]) if "--config" in values else None, now)


def quiet_project(config: Path | None) -> QuietProject | None:
    """The SQLite file and fingerprint of the project ``config`` names (default:
    ``./followup.yaml``, or the defaults in this folder); ``None`` when its database is not a
    SQLite file."""
    if config is None and (Path.cwd() / CONFIG_FILE).exists():
        config = Path.cwd() / CONFIG_FILE
    text = config.read_bytes() if config is not None else b""
    settings = _settings(text)
    if settings is None:
        return None
    root = config.resolve().parent if config is not None else Path.cwd()
    url = database_url(str(settings.get("database_url", DEFAULT_DATABASE_URL)), root)
    if not url.startswith(SQLITE) or url == SQLITE + ":memory:" or "?" in url:
        return None
    database = Path(url.removeprefix(SQLITE))
    campaigns = (root / str(settings.get("campaigns", DEFAULT_CAMPAIGNS))).resolve()
    return QuietProject(database, fingerprint(config, text, settings, root, campaigns))


def _settings(text: bytes) -> dict[str, object] | None:
    """The config's settings; ``None`` when they are not a mapping."""
    if not text.strip():
        return {}
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None  # the full command says where
    return data if isinstance(data, dict) else None if data is not None else {}


def fingerprint(
    config: Path | None, text: bytes, settings: dict[str, object], root: Path, campaigns: Path
) -> str:
    """The inputs of a full tick besides the database: followup's version and schema, the
    config, the ``FOLLOWUP_*`` environment and the variables the config names (``*_env``: the
    providers' secrets, which a full pass checks even with nothing to send), whether the signing
    key file is usable, and the campaigns: whether their path is a file or a folder, and every
    file there."""
    from engine import __version__
    from engine.signed_links import KEY_FILE

    digest = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            digest.update((part.encode() if isinstance(part, str) else part) + b"\0")

    heads = " ".join(schema_heads())
    add(__version__, heads, str(config and config.resolve()), str(Path.cwd()), text)
    named = set(_named_variables(settings))
    for name, value in sorted(os.environ.items()):
        if name.startswith("FOLLOWUP_") or name in named:
            add(f"{name}={value}")
    add("named but unset:", *sorted(name for name in named if name not in os.environ))
    add("key", _key_file_state(root / KEY_FILE))
    add("plugins", *_plugins())
    add("campaigns", "file" if campaigns.is_file() else "folder" if campaigns.is_dir() else "none")
    files = [campaigns] if campaigns.is_file() else sorted(campaigns.rglob("*"))
    for file in files:
        if file.is_file():
            add(str(file), file.read_bytes())
    return digest.hexdigest()


def _plugins() -> list[str]:
    """Every installed extension of followup (providers, commands, tables): its group, name,
    target and package version. A provider installed, removed or upgraded can change what a full
    pass does at start (a plugin that fails to load stops it)."""
    from importlib.metadata import entry_points

    from engine.plugin_groups import GROUPS

    found = []
    installed = entry_points()  # one walk over the installed packages for the three groups
    for group in GROUPS:
        for point in installed.select(group=group):
            dist = getattr(point, "dist", None)
            version = f"{dist.name}=={dist.version}" if dist is not None else "?"
            found.append(f"{group}:{point.name}={point.value} ({version})")
    return sorted(found)


def _key_file_state(key: Path) -> str:
    """Whether a full pass can use the signing key file: it makes one that is missing, and
    fails on one that is empty or cannot be read (which key it is matters to sends only)."""
    if not key.exists():
        return "usable"  # the full pass makes it
    try:
        return "usable" if key.read_bytes().strip() else "empty"
    except OSError:
        return "unreadable"


def _named_variables(settings: object) -> list[str]:
    """The environment variables a setting ending in ``_env`` names, anywhere in ``settings``."""
    if isinstance(settings, dict):
        found = []
        for key, value in settings.items():
            if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_named_variables(value))
        return found
    if isinstance(settings, list):
        return [name for item in settings for name in _named_variables(item)]
    return []


def nothing_due(project: QuietProject, now: datetime) -> bool:
    """Whether the database is at the newest migration, marked by a full tick with the
    project's fingerprint, and holds nothing due by ``now``."""
    if not project.database.is_file():
        return False
    uri = f"file:{quote(str(project.database))}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        if tuple(sorted(version for (version,) in versions)) != schema_heads():
            return False
        mark = conn.execute("SELECT value FROM engine_marks WHERE name = ?", (MARK,)).fetchone()
        if mark is None or mark[0] != project.fingerprint:
            return False
        at = {"now": sqlite_time(now)}
        return not any(conn.execute(query, at).fetchone() for query in _DUE)
