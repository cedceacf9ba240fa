"""``followup calls export``: the CSV a dialer imports, for the entries it may call today.

An entry is listed when it is ``pending``, due, its phone is not on the do-not-call list, and
its calling window (local ``HH:MM``, in the customer's zone; may wrap midnight; start == end means
any time) is open now or opens later today. ``not_before_utc`` and ``not_after_utc`` bound the
call in UTC for dialers that keep no zones. Do-not-call entries become ``suppressed``.

The file is written next to its target and linked into place only after the listed entries are
marked ``exported`` in the open transaction, which commits last: an export that fails anywhere
leaves every entry ``pending`` and no file behind. An existing file is never overwritten.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.drive.crash_points import CrashPoint, no_crash
from engine.errors import InputError
from engine.policies import in_window, next_local_time
from integrations.calls.entries import DNC_DETAIL, EntryStatus
from integrations.calls.tables import call_dnc, call_entries
from integrations.outbox._files import fsync_dir

COLUMNS = (
    "entry_id",
    "contact_id",
    "phone_e164",
    "first_name",
    "last_name",
    "timezone",
    "call_window_start_local",
    "call_window_end_local",
    "not_before_utc",
    "not_after_utc",
    "priority",
    "reason",
    "campaign",
    "cart_value",
    "script",
    "dnc_checked_at",
)
PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True, slots=True)
class CallSlot:
    """When a call may be placed, in UTC: ``[not_before, not_after)``."""

    not_before: datetime
    not_after: datetime


def calling_slot(now: datetime, timezone: str, start: time, end: time) -> CallSlot | None:
    """The part of the local window ``[start, end)`` in ``timezone`` that is open at ``now`` or
    opens later on the same local day; ``None`` once the day's window has passed."""
    if start == end:  # no closed hours, as calling_hours "00:00-00:00"
        return CallSlot(now, next_local_time(now + timedelta(microseconds=1), end, timezone))
    local = now.astimezone(ZoneInfo(timezone)).time()
    if in_window(local, (start, end)):
        return CallSlot(now, next_local_time(now, end, timezone))
    if start < end and local >= end:
        return None  # today's window is over; tomorrow's export lists it
    opens = next_local_time(now, start, timezone)
    return CallSlot(opens, next_local_time(opens, end, timezone))


def _clock_time(text: str) -> time:
    return time.fromisoformat(text)


def _utc_text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What one export did: the file, and how many entries it listed, suppressed (do-not-call)
    and left pending for a later export (not due yet, or today's window over)."""

    path: Path
    exported: int
    suppressed: int
    waiting: int


def _row(entry: Any, slot: CallSlot, now: datetime) -> list[str]:
    cells = {
        "entry_id": entry.id,
        "contact_id": entry.customer_id,
        "phone_e164": entry.phone,
        "first_name": entry.first_name,
        "last_name": entry.last_name,
        "timezone": entry.timezone,
        "call_window_start_local": entry.window_start,
        "call_window_end_local": entry.window_end,
        "not_before_utc": _utc_text(slot.not_before),
        "not_after_utc": _utc_text(slot.not_after),
        "priority": entry.priority,
        "reason": entry.reason,
        "campaign": entry.campaign_id,
        "cart_value": entry.cart_value,
        "script": entry.script,
        "dnc_checked_at": _utc_text(now),
    }
    return [cells[column] for column in COLUMNS]


def _pending(conn: sa.Connection, list_name: str) -> list[Any]:
    query = (
        sa.select(call_entries, call_dnc.c.phone.label("dnc"))
        .outerjoin(call_dnc, call_dnc.c.phone == call_entries.c.phone)
        .where(call_entries.c.list_name == list_name, call_entries.c.status == "pending")
        .order_by(call_entries.c.due_at, call_entries.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=call_entries)  # two exports never list one entry
    return list(conn.execute(query))


def _set_status(conn: sa.Connection, ids: list[str], now: datetime, **values: Any) -> None:
    if ids:
        conn.execute(
            call_entries.update()
            .where(call_entries.c.id.in_(ids), call_entries.c.status == "pending")
            .values(updated_at=now, **values)
        )


def _write(out: Path, rows: list[list[str]], crash: CrashPoint) -> Path:
    """The CSV written and fsynced to a temporary file beside ``out``."""
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=out.parent, prefix=f".{out.name}.", delete=False
        ) as handle:
            temporary = Path(handle.name)
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        crash("export_written")
    except BaseException as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise InputError(f"cannot write {out}: {error.strerror or error}") from error
        raise
    assert temporary is not None  # set as soon as the file was opened
    return temporary


def export_list(
    engine: sa.Engine,
    list_name: str,
    out: Path,
    now: datetime,
    crash: CrashPoint = no_crash,
) -> ExportSummary:
    """Write the dialer CSV of ``list_name`` to ``out`` and mark its entries ``exported`` (see
    the module docstring). Raises :class:`InputError` when ``out`` exists or cannot be written;
    the entries then stay ``pending``."""
    if out.exists():
        raise InputError(f"{out} already exists; an export never overwrites one")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot write {out}: {error.strerror or error}") from error
    linked = False
    try:
        with engine.begin() as conn:
            listed, suppressed, waiting = _choose(conn, list_name, now)
            _set_status(
                conn, suppressed, now, status=EntryStatus.SUPPRESSED.value, detail=DNC_DETAIL
            )
            ids = [entry.id for entry, _slot in listed]
            _set_status(conn, ids, now, status=EntryStatus.EXPORTED.value, exported_at=now)
            rows = [_row(entry, slot, now) for entry, slot in listed]
            _link(_write(out, rows, crash), out)
            linked = True
            crash("export_linked")
    except BaseException:
        if linked:  # the entries stay pending: the file must not be imported
            out.unlink(missing_ok=True)
        raise
    return ExportSummary(out, len(listed), len(suppressed), waiting)


def _choose(
    conn: sa.Connection, list_name: str, now: datetime
) -> tuple[list[tuple[Any, CallSlot]], list[str], int]:
    """The entries to list (by priority, then due time), to suppress, and how many wait."""
    listed: list[tuple[Any, CallSlot]] = []
    suppressed: list[str] = []
    waiting = 0
    for entry in _pending(conn, list_name):
        if entry.dnc is not None:
            suppressed.append(entry.id)
            continue
        start, end = _clock_time(entry.window_start), _clock_time(entry.window_end)
        slot = calling_slot(now, entry.timezone, start, end)
        if entry.due_at > now or slot is None:
            waiting += 1
            continue
        listed.append((entry, slot))
    listed.sort(key=lambda pair: PRIORITY_ORDER.get(pair[0].priority, len(PRIORITY_ORDER)))
    return listed, suppressed, waiting


def _link(temporary: Path, out: Path) -> None:
    """Put the written file in place; never replaces a file that appeared meanwhile."""
    try:
        os.link(temporary, out)
    except OSError as error:
        raise InputError(f"cannot write {out}: {error.strerror or error}") from error
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(out.parent)
