"""The ingest benchmark's row floor does the rows followup's ingest does: the same events, inbox
rows, identity keys and customers for a stream without merges, on SQLite and PostgreSQL; a resent
message is logged once. A floor that skipped rows would flatter nothing but itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks.ingest import row_floor
from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.ingest.jsonl import read_jsonl
from engine.storage.database import open_database
from tests.conftest import _empty_postgres

TABLES = ("events", "journey_inbox", "identities", "customers")


def _track(user: str, name: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": name, "properties": properties}


def _messages() -> list[dict[str, Any]]:
    """Twelve shoppers: each identifies with an email, views, adds to the cart and orders; every
    third comes back for a second order; the first message is sent twice."""
    found: list[dict[str, Any]] = []
    for n in range(12):
        user = f"u{n}"
        mine = [
            {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}},
            _track(user, "Product Viewed"),
            _track(user, "Product Added", price=9),
            _track(user, "Order Completed", order_id=f"o{n}", revenue=9),
        ]
        if n % 3 == 0:
            mine.append(_track(user, "Order Completed", order_id=f"o{n}b", revenue=5))
        for index, message in enumerate(mine):
            message["messageId"] = f"{user}-{index}"
            message["timestamp"] = f"2024-05-06T09:{n:02d}:00Z"
        found += mine
    return [found[0], *found]


def _counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = {t: conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) or 0 for t in TABLES}
    engine.dispose()
    return found


def test_the_row_floor_writes_the_rows_followup_writes(database_url: str, tmp_path: Path) -> None:
    stream = tmp_path / "events.jsonl"
    stream.write_bytes(b"\n".join(orjson.dumps(m) for m in _messages()) + b"\n")
    followup = Followup(Project(ProjectConfig(database_url=database_url), tmp_path))
    followup.ingestor.batch_size = 7  # several batches, a customer spread over two
    summary = followup.ingestor.ingest(read_jsonl(stream))  # as `followup ingest`
    followup.close()
    expected = _counts(database_url)
    assert summary.accepted == expected["events"] == 52

    if database_url.startswith("sqlite"):
        floor_url = f"sqlite:///{tmp_path / 'floor.db'}"
    else:
        floor_url = database_url
        _empty_postgres(floor_url)
    open_database(floor_url).dispose()
    logged = row_floor.load(floor_url, stream, 7)
    assert logged == 52
    assert (
        _counts(floor_url)
        == expected
        == {
            "events": 52,
            "journey_inbox": 52,
            "identities": 24,  # user: and email: keys
            "customers": 12,
        }
    )
