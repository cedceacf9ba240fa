"""The events as the peers read them: plain dicts, from the same events followup gets.

Every system is handed events already parsed (followup's ``simulate`` gets ``Event`` objects, as
the CLI passes them): parsing is outside every clock. A peer's record keeps what the abandoned-cart
rules need: time (integer milliseconds since the epoch, so timer arithmetic is exact), messageId,
call type, event name, userId, anonymousId, the email and phone that identify the customer
(normalised as followup normalises them, before the clock) and properties.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.events import Event

Record = dict[str, Any]
RECORDS_VERSION = 2  # part of the cache name: a new record shape is a new cache


def parse_events(path: Path) -> list[Event]:
    """Every event of a Segment JSONL file, as ``followup simulate`` reads it (rejects dropped)."""
    from engine.ingest.jsonl import read_jsonl
    from engine.ingest.pipeline import Accepted

    return [
        event
        for record in read_jsonl(path)
        if isinstance(record, Accepted)
        for event in record.events
    ]


def _cache_path(path: Path, cache_dir: Path, kind: str) -> Path:
    """A cache file named after ``path``, its size and modification time."""
    stat = path.stat()
    name = f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}-v{RECORDS_VERSION}.{kind}.pickle"
    return cache_dir / name


def _load(cache: Path) -> Any:
    with cache.open("rb") as handle:
        return pickle.load(handle)


def _save(cache: Path, value: object) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    with partial.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(cache)


def build_caches(path: Path, cache_dir: Path) -> tuple[int, int]:
    """Parse ``path`` once and keep the events (for followup) and the records (for the peers)
    as pickles in ``cache_dir``, so each measurement loads its input in a fraction of the
    parse time and holds only its own form of it; returns (events, records)."""
    events_cache = _cache_path(path, cache_dir, "events")
    records_cache = _cache_path(path, cache_dir, "records")
    if events_cache.exists() and records_cache.exists():
        return -1, -1
    for stale in cache_dir.glob(f"{path.stem}-*.pickle"):  # of an older version of the file
        stale.unlink()
    events = parse_events(path)
    _save(events_cache, events)
    records = to_records(events)
    _save(records_cache, records)
    return len(events), len(records)


def load_events(path: Path, cache_dir: Path, limit: int | None = None) -> list[Event]:
    """The events of ``path`` as followup gets them (the first ``limit`` in file order)."""
    cache = _cache_path(path, cache_dir, "events")
    events: list[Event] = _load(cache) if cache.exists() else parse_events(path)
    return events[:limit] if limit else events


def load_records(path: Path, cache_dir: Path, limit: int | None = None) -> list[Record]:
    """The records of ``path`` as the peers get them (the first ``limit`` in file order)."""
    cache = _cache_path(path, cache_dir, "records")
    records: list[Record] = _load(cache) if cache.exists() else to_records(parse_events(path))
    return records[:limit] if limit else records


def to_records(events: Iterable[Event], phone_region: str = "US") -> list[Record]:
    """The peers' records of ``events``, in the same (file) order."""
    from engine.contact import normalize_email, normalize_phone

    records = []
    for event in events:
        traits, properties = event.traits, event.properties
        email = normalize_email(traits.get("email")) if traits else None
        if email is None and properties:
            email = normalize_email(properties.get("email"))
        records.append(
            {
                "ts": round(event.timestamp.timestamp() * 1000),
                "id": event.message_id,
                "type": event.type.value,
                "name": event.name,
                "user": event.user_id,
                "anon": event.anonymous_id,
                "email": email,
                "phone": normalize_phone(traits.get("phone"), phone_region) if traits else None,
                "props": dict(properties),
            }
        )
    return records


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.campaigns.records FILE CACHE_DIR``: build the caches of FILE."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("cache_dir", type=Path)
    args = parser.parse_args(argv)
    events, records = build_caches(args.file, args.cache_dir)
    print("cached" if events < 0 else f"parsed {events:,} events, {records:,} records")


if __name__ == "__main__":
    main()
