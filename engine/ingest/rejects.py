"""The rejects store: every event refused, by file ingest or the HTTP API, in one table.

``followup rejects list`` reads it, so there is one place to look whatever way the events came
in. A reject is kept with where it came from (a file and its line, or ``http:<key id>:<request
id>`` and the index in the batch), why (reason, field, message), its raw text and when. The same
raw record refused for the same reason again (a client retrying, a file ingested twice) is kept
once, as first seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

import sqlalchemy as sa

from engine.events import Rejection
from engine.journeys.plan import format_time
from engine.json_values import NUL, REPLACEMENT
from engine.storage.tables import rejects
from engine.storage.upserts import insert_new


@dataclass(frozen=True, slots=True)
class StoredReject:
    """One row of the rejects store; ``position`` is the line of a file or the index in a
    batch (none for a single HTTP call)."""

    id: int
    source: str
    position: int | None
    reason: str
    field: str
    message: str
    raw: str
    rejected_at: datetime

    def as_json(self) -> dict[str, object]:
        """The reject as ``followup rejects list --json`` prints it."""
        return {
            "id": self.id,
            "source": self.source,
            "position": self.position,
            "reason": self.reason,
            "field": self.field,
            "message": self.message,
            "raw": self.raw,
            "rejected_at": format_time(self.rejected_at),
        }


def _text(value: str, limit: int | None = None) -> str:
    """``value`` as every backend stores it: no NUL (PostgreSQL refuses it), within ``limit``."""
    value = value.replace(NUL, REPLACEMENT)
    return value[:limit] if limit is not None else value


def _row(rejection: Rejection, at: datetime) -> dict[str, object]:
    reason = rejection.reason.value
    digest = hashlib.sha256(
        f"{reason}\x1f{rejection.field}\x1f{rejection.raw}".encode("utf-8", "replace")
    ).hexdigest()
    return {
        "digest": digest,
        "source": _text(rejection.source, 512),
        "position": rejection.line,
        "reason": reason,
        "field": _text(rejection.field, 255),
        "message": _text(rejection.message),
        "raw": _text(rejection.raw),
        "rejected_at": at,
    }


class RejectStore:
    """Writes and reads the ``rejects`` table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, rejections: Iterable[Rejection], at: datetime) -> None:
        """Keep ``rejections`` (one transaction); one already kept is left as it was."""
        rows = [_row(rejection, at) for rejection in rejections]
        if rows:
            with self.engine.begin() as conn:
                insert_new(conn, rejects, rows)

    def latest(self, limit: int) -> list[StoredReject]:
        """The ``limit`` rejects kept last, newest first."""
        columns = [rejects.c[f.name] for f in fields(StoredReject)]
        query = sa.select(*columns).order_by(rejects.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [StoredReject(**row._asdict()) for row in conn.execute(query)]
