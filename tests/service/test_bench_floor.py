"""The HTTP floor of ``make bench-service`` takes followup's ``/v1/batch`` requests, with the
same write key, and stores the same ``events`` rows followup does (benchmarks/service/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from benchmarks.service.floor_app import create_floor_app
from benchmarks.service.workload import LateSpec, ensure_late
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.storage.database import open_database
from tests.conftest import FIXED_NOW
from tests.service.conftest import Running

_SAME = ("message_id", "type", "name", "user_id", "anonymous_id", "channel", "payload")


def _rows(engine: sa.Engine) -> dict[str, tuple[Any, ...]]:
    columns = ", ".join(_SAME)
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT {columns} FROM events")).all()
    return {row[0]: (*row[:-1], orjson.loads(row[-1])) for row in found}


def test_the_floor_stores_the_rows_followup_stores_and_checks_the_key(
    service: Running, tmp_path: Path
) -> None:
    messages = ensure_late(LateSpec(4, 5), tmp_path / "work")["shuffled"].read_bytes()
    body = b'{"batch": [' + b",".join(messages.splitlines()) + b"]}"
    floor_engine = open_database(f"sqlite:///{tmp_path / 'floor.db'}")
    _, key = KeyStore(floor_engine).create("bench", None, FIXED_NOW)
    server = BackgroundServer(create_floor_app(str(floor_engine.url))).start()
    try:
        for url, write_key in ((service.url, service.key), (server.url, key)):
            answer = httpx.post(f"{url}/v1/batch", content=body, auth=(write_key, ""))
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 20
        refused = httpx.post(f"{server.url}/v1/batch", content=body, auth=("fu_wrong", ""))
        assert refused.status_code == 401
    finally:
        server.stop()
    floor_rows = _rows(floor_engine)
    floor_engine.dispose()
    assert len(floor_rows) == 20
    assert floor_rows == _rows(service.followup.engine)
