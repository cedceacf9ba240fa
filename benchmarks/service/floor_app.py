"""The HTTP floor: the least any service taking followup's ``/v1/batch`` requests must spend.

A FastAPI app with one route, ``POST /v1/batch``: it checks the same Basic auth header (the write
key's SHA-256 against the one stored in ``api_keys``, read once at start), parses the body with
orjson, turns each message into the ``events`` row followup writes (the ingest floor's
:func:`benchmarks.ingest.floor.message_row`) and stores the rows with the backend's cheapest bulk
path (``executemany`` on SQLite in WAL with ``synchronous=FULL``, ``COPY`` on PostgreSQL). Like
followup it answers ``200`` only once the rows are committed, and like followup's group writer
one thread writes whatever requests are waiting in one transaction. It is served by
:func:`engine.service.server.serve`, so with the same uvicorn settings as ``followup serve``.

No validation, deduplication, identities, profile state, journey inbox or metrics: what parsing
and storing alone cost on this machine.

    python -m benchmarks.service.floor_app DATABASE_URL --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import count

import orjson
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response

from benchmarks.ingest.floor import PostgresSink, Row, SqliteSink, message_row, open_sink

MAX_EVENTS = 5000  # what followup's group writer puts in one transaction at most


@dataclass
class _Submission:
    rows: list[Row]
    future: Future[None] = field(default_factory=Future)


class GroupInsert:
    """One writer thread: the rows of every request waiting, in one transaction."""

    def __init__(self, sink: SqliteSink | PostgresSink) -> None:
        self.sink = sink
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="floor-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[Row]) -> Future[None]:
        """Queue one request's rows; the future resolves once they are committed."""
        submission = _Submission(rows)
        self._queue.put(submission)
        return submission.future

    def close(self) -> None:
        """Write what is queued, stop the thread, close the connection."""
        self._queue.put(None)
        self._thread.join()
        self.sink.close()

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = len(first.rows)
            while size < MAX_EVENTS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                size += len(more.rows)
            try:
                self.sink.write([row for submission in group for row in submission.rows])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                for submission in group:
                    submission.future.set_exception(exc)
                continue
            for submission in group:
                submission.future.set_result(None)


def stored_key(url: str) -> tuple[str, str]:
    """``(id, key_hash)`` of the one write key in the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT id, key_hash FROM api_keys")).one()
    finally:
        engine.dispose()
    return str(row.id), str(row.key_hash)


def _key_of(header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(value, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def create_floor_app(url: str) -> FastAPI:
    """The floor service over the database at ``url`` (followup's schema, one write key)."""
    key_id, key_hash = stored_key(url)
    sink = open_sink(url)
    writer = GroupInsert(sink)
    numbers = count(1)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = writer  # engine.service.server closes it once the requests are done

    @app.post("/v1/batch")
    async def batch(request: Request) -> Response:
        key = _key_of(request.headers.get("authorization", ""))
        digest = hashlib.sha256(key.encode()).hexdigest()
        if not hmac.compare_digest(digest, key_hash):
            return Response(b'{"error":"unauthorized"}', status_code=401)
        body = await request.body()
        source = f"http:{key_id}:{next(numbers)}"
        received_at = sink.now()
        rows = [message_row(m, source, received_at) for m in orjson.loads(body)["batch"]]
        await asyncio.wrap_future(writer.submit(rows))
        answer = {"success": True, "accepted": len(rows), "duplicates": 0}
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the floor until SIGINT or SIGTERM."""
    from engine.service.server import serve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of a database with followup's schema")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(create_floor_app(args.url), args.host, args.port)


if __name__ == "__main__":
    main()
