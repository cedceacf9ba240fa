"""Reading CSV exports (a POS, a call center) with a column mapping into Segment messages.

A mapping file (YAML) says what each row is and where each column goes::

    type: track
    event: Order Completed          # every row is this event (or map a column to `event`)
    channel: pos                    # in-store purchases
    timestamp: {column: sold_at, format: "%Y-%m-%d %H:%M:%S", timezone: Europe/Paris}
    message_id: {column: receipt_no, prefix: "pos-"}   # optional; default: a hash of the row
    columns:
      customer_no: userId
      email: traits.email
      receipt_no: properties.order_id
      total: {to: properties.revenue, type: number}

Each row is built into a message and goes through the same validation as JSONL; a bad row is a
:class:`Rejection` naming the file, line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from engine.clock import check_time_zone
from engine.errors import InputError
from engine.events import EventInvalid, Rejection, RejectReason, parse_message
from engine.ingest.pipeline import Accepted

ValueType = Literal["string", "number", "integer", "boolean"]
_TARGET_ROOTS = (
    "userId",
    "anonymousId",
    "event",
    "channel",
    "messageId",
    "traits",
    "properties",
    "context",
)


class ColumnTarget(BaseModel):
    """Where a column goes (a dotted path in the message) and how its text is read."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    to: str
    type: ValueType = "string"

    @field_validator("to")
    @classmethod
    def _known_root(cls, value: str) -> str:
        if value.split(".", 1)[0] not in _TARGET_ROOTS:
            roots = ", ".join(_TARGET_ROOTS)
            raise ValueError(f"{value!r} must start with one of {roots}")
        return value


class TimestampColumn(BaseModel):
    """The column with the event time: ``iso``, ``unix``, ``unix_ms`` or a strptime pattern."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    column: str
    format: str = "iso"
    timezone: str = "UTC"

    _known_zone = field_validator("timezone")(check_time_zone)


class MessageIdColumn(BaseModel):
    """The column with a unique row id, prefixed to keep it apart from other sources' ids."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    column: str
    prefix: str = ""


class CsvMapping(BaseModel):
    """How the rows of one CSV export become Segment messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["track", "identify"] = "track"
    event: str | None = None
    channel: str | None = None
    delimiter: str = ","
    timestamp: TimestampColumn
    message_id: MessageIdColumn | None = None
    columns: dict[str, ColumnTarget]

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        """``column: path`` is short for ``column: {to: path}``."""
        if isinstance(value, dict):
            return {k: {"to": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


def load_mapping(path: Path) -> CsvMapping:
    """The mapping in the YAML file at ``path``; an :class:`InputError` says what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the mapping: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return CsvMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise InputError(f"{path}: invalid column mapping: {problems}") from exc


def _convert(text: str, value_type: ValueType) -> Any:
    if value_type == "string":
        return text
    if value_type == "number":
        return float(text)
    if value_type == "integer":
        return int(text)
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "y"):
        return True
    if lowered in ("false", "no", "0", "n", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean")


def _parse_time(text: str, spec: TimestampColumn) -> str:
    if spec.format == "iso":
        parsed = datetime.fromisoformat(text)
    elif spec.format == "unix":
        return datetime.fromtimestamp(float(text), UTC).isoformat()
    elif spec.format == "unix_ms":
        return datetime.fromtimestamp(float(text) / 1000, UTC).isoformat()
    else:
        parsed = datetime.strptime(text, spec.format)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(spec.timezone))
    return parsed.isoformat()


def _put(message: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = message
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def row_to_message(row: dict[str, str], mapping: CsvMapping) -> dict[str, Any]:
    """The Segment message of one CSV row; raises :class:`EventInvalid` naming the column."""
    message: dict[str, Any] = {"type": mapping.type}
    if mapping.event is not None:
        message["event"] = mapping.event
    if mapping.channel is not None:
        message["channel"] = mapping.channel
    for column, target in mapping.columns.items():
        text = (row.get(column) or "").strip()
        if text == "":
            continue
        try:
            _put(message, target.to, _convert(text, target.type))
        except ValueError:
            raise EventInvalid(
                RejectReason.INVALID_ROW, column, f"{text!r} is not a valid {target.type}"
            ) from None
    time_text = (row.get(mapping.timestamp.column) or "").strip()
    try:
        message["timestamp"] = _parse_time(time_text, mapping.timestamp)
    except (ValueError, OverflowError):
        raise EventInvalid(
            RejectReason.BAD_TIMESTAMP,
            mapping.timestamp.column,
            f"{time_text!r} does not match the time format {mapping.timestamp.format!r}",
        ) from None
    if mapping.message_id is not None:
        row_id = (row.get(mapping.message_id.column) or "").strip()
        if not row_id:
            raise EventInvalid(
                RejectReason.MISSING_FIELD, mapping.message_id.column, "the row id is empty"
            )
        message["messageId"] = mapping.message_id.prefix + row_id
    return message


class _Lines:
    """The lines of a CSV file as text, a byte-order mark at its head left out. A line that is
    not UTF-8 goes on with replacement characters, so that the reader keeps its place, and is
    kept in ``bad`` (line number -> what is wrong): its row is refused, never stored with
    its text mangled (an email key ``josé@`` read as ``jos\ufffd@``)."""

    def __init__(self, path: Path, on_progress: Callable[[int], None] | None) -> None:
        self.path = path
        self.on_progress = on_progress
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if self.on_progress is not None:
                    self.on_progress(len(raw))
                codec = "utf-8-sig" if number == 1 else "utf-8"
                try:
                    yield raw.decode(codec)
                except UnicodeDecodeError as exc:
                    byte = raw[exc.start]
                    self.bad[number] = f"byte 0x{byte:02x} is not UTF-8; save the file as UTF-8"
                    yield raw.decode(codec, errors="replace")


def read_csv(
    path: Path,
    mapping: CsvMapping,
    on_progress: Callable[[int], None] | None = None,
    phone_region: str = "US",
) -> Iterator[Accepted | Rejection]:
    """Every row of the CSV at ``path`` as events or a rejection."""
    source = str(path)
    lines = _Lines(path, on_progress)
    reader = csv.DictReader(lines, delimiter=mapping.delimiter)
    header = reader.fieldnames or []
    if 1 in lines.bad:
        raise InputError(f"{source}:1: the header's {lines.bad[1]}")
    needed = [*mapping.columns, mapping.timestamp.column]
    if mapping.message_id is not None:
        needed.append(mapping.message_id.column)
    missing = [column for column in needed if column not in header]
    if missing:
        raise InputError(
            f"{source}:1: the header lacks the mapped column(s) {', '.join(missing)}; "
            f"it has {', '.join(header) or 'nothing'}"
        )
    after = reader.line_num  # the line the last row ended on
    for row in reader:
        first, line = after + 1, reader.line_num
        after = line
        raw = mapping.delimiter.join(row.get(column) or "" for column in header)
        bad = next((number for number in range(first, line + 1) if number in lines.bad), None)
        if bad is not None:
            yield Rejection(source, bad, RejectReason.INVALID_ROW, "", lines.bad[bad], raw)
            continue
        try:
            message = row_to_message(row, mapping)
            events = parse_message(message, phone_region=phone_region)
        except EventInvalid as exc:
            yield Rejection(source, line, exc.reason, exc.field, exc.message, raw)
            continue
        yield Accepted(events, f"{source}:{line}")
