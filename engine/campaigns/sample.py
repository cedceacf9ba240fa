"""The names sample data sets: event names, the properties of each event, the traits.

``followup validate`` warns on names that no event or trait in the sample data ever sets
(CAMPAIGN_FORMAT.md, Expressions). The sample is a JSONL file of Segment messages
(``--events``) or else the project database, of which the latest :data:`DATABASE_SAMPLE` events
are read with SQL over the event log's JSON payloads (nothing is written, and a database that
does not exist is not created).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from engine.campaigns.loader import Problem, display_path
from engine.events import Event, EventType, Rejection
from engine.state.reducers import snake_case

DATABASE_SAMPLE = 100_000  # the latest events of the log that make the sample
CONNECT_TIMEOUT = 5  # seconds, for a database server


def trait_key(key: str) -> str:
    """The key a trait is kept under in the profile (``firstName`` -> ``first_name``)."""
    return snake_case(key)


@dataclass(frozen=True)
class SampleData:
    """What the sample sets: the property keys of each track event name, and the trait keys
    (as the profile keeps them, see :func:`trait_key`). ``source`` names the sample in
    messages (``events.jsonl``, ``followup.db``)."""

    source: str
    properties: Mapping[str, frozenset[str]] = field(default_factory=dict)
    traits: frozenset[str] = frozenset()

    @property
    def event_names(self) -> frozenset[str]:
        """The names of the track events in the sample."""
        return frozenset(self.properties)


class SampleBuilder:
    """Collects the names that events set, one event at a time."""

    def __init__(self) -> None:
        self.events = 0
        self._properties: dict[str, set[str]] = {}
        self._traits: set[str] = set()

    def add(self, event: Event) -> None:
        """Note the event's name and property keys (a track) and its trait keys (any call,
        ``context.traits`` included, as the profile takes them)."""
        self.events += 1
        if event.type is EventType.TRACK:
            self.add_properties(event.name, event.properties)
        self.add_traits(event.traits)

    def add_properties(self, name: str, keys: Iterable[str]) -> None:
        """Note a track event ``name`` with these property keys."""
        self._properties.setdefault(name, set()).update(keys)

    def add_traits(self, keys: Iterable[str]) -> None:
        """Note trait keys; ``consent`` is not a trait (it sets ``customer.consent``)."""
        self._traits.update(trait_key(key) for key in keys if key != "consent")

    def build(self, source: str) -> SampleData:
        """The sample collected so far, named ``source``."""
        properties = {name: frozenset(keys) for name, keys in self._properties.items()}
        return SampleData(source, properties, frozenset(self._traits))


def sample_of(events: Iterable[Event], source: str) -> SampleData:
    """The names ``events`` set."""
    builder = SampleBuilder()
    for event in events:
        builder.add(event)
    return builder.build(source)


def read_events_sample(
    path: Path, phone_region: str = "US"
) -> tuple[SampleData | None, list[Problem]]:
    """The sample in a JSONL file of Segment messages, and what is wrong with the file: an
    unreadable file is a problem; rejected lines, or a file without events, are a warning.
    ``None`` when the file gives no sample."""
    from engine.ingest.jsonl import read_jsonl  # ingest needs storage: only when asked

    shown = display_path(path)
    builder = SampleBuilder()
    rejected: list[Rejection] = []
    try:
        for record in read_jsonl(path, phone_region=phone_region):
            if isinstance(record, Rejection):
                rejected.append(record)
                continue
            for event in record.events:
                builder.add(event)
    except FileNotFoundError:
        return None, [Problem(shown, 1, 1, "no such events file")]
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return None, [Problem(shown, 1, 1, f"cannot read the events file: {reason}")]
    findings = []
    if rejected:
        first = rejected[0]
        reason = f"{first.field}: {first.message}" if first.field else first.message
        if len(rejected) == 1:
            message = f"this line is not a valid event; the sample leaves it out ({reason})"
        else:
            message = (
                f"{len(rejected)} lines are not valid events; the sample leaves them out "
                f"(this one: {reason})"
            )
        findings.append(Problem(shown, first.line or 1, 1, message, "warning"))
    if builder.events == 0:
        message = "no events in the file, so no names were checked against it"
        findings.append(Problem(shown, 1, 1, message, "warning"))
        return None, findings
    return builder.build(shown), findings


def read_database_sample(url: str, limit: int = DATABASE_SAMPLE) -> SampleData | None:
    """The sample in the project database at ``url``: the latest ``limit`` events of its log.
    ``None`` when there is no sample: no such SQLite file, no event log or no events in it, a
    database that cannot be read, or one other than SQLite and PostgreSQL."""
    engine = _read_only_engine(url)
    if engine is None:
        return None
    try:
        with engine.connect() as connection:
            return _query_sample(connection, _database_name(url), limit)
    except (sa.exc.SQLAlchemyError, sqlite3.Error):
        return None
    finally:
        engine.dispose()


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in (prefix, prefix + ":memory:"):
        return None
    return Path(url.removeprefix(prefix).split("?", 1)[0])


def _read_only_engine(url: str) -> sa.Engine | None:
    if url.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is None or not file.is_file():
            return None
        uri = file.resolve().as_uri() + "?mode=ro"
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
    if url.startswith("postgresql"):
        try:
            return sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
        except (sa.exc.ArgumentError, ImportError):
            return None
    return None


def _database_name(url: str) -> str:
    file = _sqlite_file(url)
    if file is not None:
        return display_path(file)
    name = sa.make_url(url).database
    return f"database {name}" if name else "the database"


_SQL = {
    "sqlite": (
        """
        SELECT e.name, j.key FROM events AS e
        LEFT JOIN json_each(e.payload, '$.properties') AS j
        WHERE e.seq > :floor AND e.type = 'track'
        GROUP BY e.name, j.key
        """,
        """
        SELECT DISTINCT j.key FROM events AS e, json_each(e.payload, '$.traits') AS j
        WHERE e.seq > :floor
        """,
    ),
    "postgresql": (
        """
        SELECT e.name, k.key FROM events AS e
        LEFT JOIN LATERAL jsonb_object_keys(
            CASE WHEN jsonb_typeof(e.payload -> 'properties') = 'object'
            THEN e.payload -> 'properties' END
        ) AS k(key) ON true
        WHERE e.seq > :floor AND e.type = 'track'
        GROUP BY e.name, k.key
        """,
        """
        SELECT DISTINCT k.key FROM events AS e
        CROSS JOIN LATERAL jsonb_object_keys(
            CASE WHEN jsonb_typeof(e.payload -> 'traits') = 'object'
            THEN e.payload -> 'traits' END
        ) AS k(key)
        WHERE e.seq > :floor
        """,
    ),
}


def _query_sample(connection: sa.Connection, name: str, limit: int) -> SampleData | None:
    queries = _SQL.get(connection.dialect.name)
    if queries is None or not sa.inspect(connection).has_table("events"):
        return None
    low, high = connection.execute(sa.text("SELECT min(seq), max(seq) FROM events")).one()
    if high is None:
        return None
    floor = max(high - limit, low - 1)
    builder = SampleBuilder()
    properties, traits = queries
    for event, key in connection.execute(sa.text(properties), {"floor": floor}):
        builder.add_properties(event, [key] if key is not None else [])
    builder.add_traits(key for (key,) in connection.execute(sa.text(traits), {"floor": floor}))
    source = name if floor < low else f"the latest {limit:,} events of {name}"
    return builder.build(source)
