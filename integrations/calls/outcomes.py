"""Call outcomes reported back by the dialer (or an agent): recorded on the entry, and logged as a
``Call Completed`` track event through ingest, so campaigns can trigger on it.

Recording is idempotent and safe to repeat after a crash: the entry's outcome is claimed first
(a second, different outcome for the same entry is refused), then the event is ingested with the
messageId ``call-outcome:<entry id>`` built from what the entry holds, so a repeat finds the
event already logged. ``do_not_call`` also puts the phone on the do-not-call list.

The event names the customer by an identity it already has (userId first, then anonymousId,
email or phone), so it never links two profiles.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.api import Followup
from engine.errors import InputError
from engine.events import EventInvalid, parse_timestamp
from engine.identity import ANONYMOUS, EMAIL, PHONE, USER
from integrations.calls.entries import EntryStatus, dnc_add
from integrations.calls.tables import call_entries

EVENT = "Call Completed"
FILE_COLUMNS = ("entry_id", "outcome", "called_at", "agent", "note")


class CallOutcome(enum.StrEnum):
    """How a call ended. ``interested`` and ``not_interested`` are answered calls with the
    customer's answer (the ``call-center-follow-up`` campaign follows up on ``interested``)."""

    ANSWERED = "answered"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"
    DO_NOT_CALL = "do_not_call"


class OutcomeRejected(Exception):
    """An outcome that cannot be recorded (unknown entry, a different outcome already there);
    the message says which and why."""


@dataclass(frozen=True, slots=True)
class OutcomeReport:
    """One call's outcome as reported: the entry, how it ended, when, by whom, and a note."""

    entry_id: str
    outcome: CallOutcome
    called_at: datetime
    agent: str | None = None
    note: str | None = None


def parse_outcome(text: str) -> CallOutcome:
    """``text`` as an outcome; case, spaces and hyphens are forgiven (``No Answer``)."""
    cleaned = "_".join(text.strip().lower().replace("-", " ").split())
    try:
        return CallOutcome(cleaned)
    except ValueError:
        choices = ", ".join(o.value for o in CallOutcome)
        raise ValueError(f"outcome {text!r} is not one of {choices}") from None


def _identity(followup: Followup, conn: sa.Connection, customer_id: str) -> dict[str, Any]:
    """The message fields that name the customer by an identity key it already owns."""
    store = followup.ingestor.store
    live = store.resolve(conn, customer_id)
    keys = store.keys_of(conn, live) if live is not None else []
    for kind in (USER, ANONYMOUS, EMAIL, PHONE):
        value = next((k.split(":", 1)[1] for k in keys if k.startswith(kind + ":")), None)
        if value is None:
            continue
        if kind == USER:
            return {"userId": value}
        if kind == ANONYMOUS:
            return {"anonymousId": value}
        return {"context": {"traits": {kind: value}}}
    raise OutcomeRejected(f"customer {customer_id} is no longer in the database")


def _message(entry: Any, identity: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "outcome": entry.outcome,
        "list": entry.list_name,
        "campaign": entry.campaign_id,
        "entry_id": entry.id,
        "agent": entry.agent,
        "note": entry.note,
    }
    return {
        "type": "track",
        "event": EVENT,
        "messageId": f"call-outcome:{entry.id}",
        "timestamp": entry.called_at.isoformat(),
        "channel": "call",
        "properties": {k: v for k, v in properties.items() if v is not None},
        **identity,
    }


def _claim(followup: Followup, report: OutcomeReport) -> tuple[bool, dict[str, Any]]:
    """Record the outcome on the entry unless it has it; the event message to log."""
    now = followup.clock()
    query = sa.select(call_entries).where(call_entries.c.id == report.entry_id)
    with followup.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        entry = conn.execute(query).first()
        if entry is None:
            raise OutcomeRejected(f"{report.entry_id}: no such call entry")
        identity = _identity(followup, conn, entry.customer_id)
        if entry.outcome is not None:
            if entry.outcome != report.outcome.value:
                raise OutcomeRejected(
                    f"{entry.id}: the outcome {entry.outcome} is already recorded "
                    f"(called {entry.called_at.isoformat()}); not changed to {report.outcome}"
                )
            return False, _message(entry, identity)
        values = {
            "status": EntryStatus.CALLED.value,
            "outcome": report.outcome.value,
            "called_at": report.called_at,
            "agent": report.agent or None,
            "note": report.note or None,
            "updated_at": now,
        }
        conn.execute(call_entries.update().where(call_entries.c.id == entry.id).values(values))
        if report.outcome is CallOutcome.DO_NOT_CALL:
            dnc_add(conn, [entry.phone], f"outcome of {entry.id}", now)
        recorded = conn.execute(sa.select(call_entries).where(call_entries.c.id == entry.id))
        return True, _message(recorded.one(), identity)


def record_outcome(followup: Followup, report: OutcomeReport) -> bool:
    """Record ``report`` and log its ``Call Completed`` event; ``False`` when the entry already
    had this outcome (the event is then made sure of, never doubled). Raises
    :class:`OutcomeRejected`."""
    recorded, message = _claim(followup, report)
    summary = followup.ingest_messages([message], source="call-outcome")
    if summary.rejections:
        problem = summary.rejections[0]
        raise OutcomeRejected(f"{report.entry_id}: the event was rejected: {problem.message}")
    return recorded


def _cell(row: dict[str, str | None], column: str) -> str:
    return (row.get(column) or "").strip()


def read_outcomes(path: Path, default_at: datetime) -> Iterator[tuple[int, OutcomeReport | str]]:
    """The outcomes of a dialer's CSV (header ``entry_id,outcome[,called_at,agent,note]``), as
    ``(line, report)``, or ``(line, problem)`` for a row that cannot be used. A row without
    ``called_at`` happened at ``default_at``. Raises :class:`InputError` for a file that cannot
    be read or lacks the columns."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from error
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in ("entry_id", "outcome") if c not in header]
        if missing:
            raise InputError(
                f"{path}:1: the header lacks {', '.join(missing)}; expected "
                f"{','.join(FILE_COLUMNS)}"
            )
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue
            yield line, _report(row, default_at)


def _report(row: dict[str, str | None], default_at: datetime) -> OutcomeReport | str:
    entry = _cell(row, "entry_id")
    if not entry:
        return "entry_id: missing"
    try:
        outcome = parse_outcome(_cell(row, "outcome"))
    except ValueError as error:
        return f"outcome: {error}"
    called = _cell(row, "called_at")
    try:
        at = parse_timestamp(called, "called_at") if called else default_at
    except EventInvalid as error:
        return f"called_at: {error.message}"
    agent, note = _cell(row, "agent") or None, _cell(row, "note") or None
    return OutcomeReport(entry, outcome, at, agent, note)
