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
import hashlib
import math
from collections import deque
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

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in '\r\n"':
            raise ValueError(f"{value!r} is not one character; write e.g. ',' or ';' or a tab")
        return value

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
    if "_" in text:  # Python reads 1_000 as a number; a spreadsheet does not
        raise ValueError(text)
    if value_type == "number":
        number = float(text)
        if not math.isfinite(number):  # nan, inf, 1e999: JSON has no such number
            raise ValueError(text)
        return number
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
    """The lines of a CSV file as text, a byte-order mark at its head left out, numbered, with
    the ones since :meth:`mark` kept to read again (:meth:`again`) after a row that would not
    parse. A line that is not UTF-8 goes on with replacement characters, so that the reader
    keeps its place, and is kept in ``bad`` (line number -> what is wrong): its row is refused,
    never stored with its text mangled (an email key ``josé@`` read as ``jos\ufffd@``)."""

    def __init__(self, path: Path, on_progress: Callable[[int], None] | None) -> None:
        self.bad: dict[int, str] = {}
        self.number = 0  # the number of the last line handed out
        self.kept: list[tuple[int, str]] = []  # the lines handed out since the mark
        self._again: deque[tuple[int, str]] = deque()
        self._file = self._read(path, on_progress)

    def _read(self, path: Path, on_progress: Callable[[int], None] | None) -> Iterator[str]:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if on_progress is not None:
                    on_progress(len(raw))
                codec = "utf-8-sig" if number == 1 else "utf-8"
                try:
                    yield raw.decode(codec)
                except UnicodeDecodeError as exc:
                    byte = raw[exc.start]
                    self.bad[number] = f"byte 0x{byte:02x} is not UTF-8; save the file as UTF-8"
                    yield raw.decode(codec, errors="replace")

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._again:
            self.number, text = self._again.popleft()
        else:
            text = next(self._file)
            self.number += 1
        self.kept.append((self.number, text))
        return text

    def mark(self) -> None:
        """A row starts after the lines handed out so far."""
        self.kept.clear()

    def raw(self) -> str:
        """The lines of the row since the mark, as the file has them (less the last line end)."""
        return _less_line_end("".join(text for _number, text in self.kept))

    def first_line(self) -> str:
        """The row's first line as the file has it (less its line end): what a row that did
        not parse is kept as."""
        return _less_line_end(self.kept[0][1] if self.kept else "")

    def again(self) -> None:
        """Hand out the lines since the mark again, but the first: a row that would not parse
        (a stray quote that ran to the field size limit) takes its own line only."""
        self._again.extendleft(reversed(self.kept[1:]))
        self.kept.clear()


def _less_line_end(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def row_message_id(cells: list[str]) -> str:
    """The messageId of a row with no id column: a hash of its cells, every column counted (two
    sales alike but for their receipt number are two sales; the same row again is one)."""
    digest = hashlib.sha256("\x1f".join(cells).encode()).hexdigest()
    return "csv:" + digest[:40]


def read_csv(
    path: Path,
    mapping: CsvMapping,
    on_progress: Callable[[int], None] | None = None,
    phone_region: str = "US",
) -> Iterator[Accepted | Rejection]:
    """Every row of the CSV at ``path`` as events or a rejection: a row the CSV reader cannot
    read (a lone CR, a stray quote) or whose cells are not as many as the header's is refused
    with its line, and the rows after it are read as usual."""
    source = str(path)
    lines = _Lines(path, on_progress)
    reader = csv.reader(lines, delimiter=mapping.delimiter)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise InputError(f"{source}:1: cannot read the header: {exc}") from None
    if 1 in lines.bad:
        raise InputError(f"{source}:1: the header's {lines.bad[1]}")
    needed = [*mapping.columns, mapping.timestamp.column]
    if mapping.message_id is not None:
        needed.append(mapping.message_id.column)
    missing = [column for column in needed if column not in header]
    if missing:
        hint = (
            ""
            if mapping.delimiter in "".join(header) or len(header) != 1
            else (
                f"; is the file separated by another character than {mapping.delimiter!r}? "
                "set delimiter: in the mapping"
            )
        )
        raise InputError(
            f"{source}:1: the header lacks the mapped column(s) {', '.join(missing)}; "
            f"it has {', '.join(header) or 'nothing'}{hint}"
        )
    while True:
        lines.mark()
        first = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raw = lines.first_line()
            lines.again()
            reader = csv.reader(lines, delimiter=mapping.delimiter)
            problem = f"cannot read the row: {exc}; fix its quotes or line breaks"
            yield Rejection(source, first, RejectReason.INVALID_ROW, "", problem, raw)
            continue
        if not cells:
            continue  # a blank line
        line, raw = lines.number, lines.raw()
        bad = next((number for number in range(first, line + 1) if number in lines.bad), None)
        if bad is not None:
            yield Rejection(source, bad, RejectReason.INVALID_ROW, "", lines.bad[bad], raw)
            continue
        if len(cells) != len(header):
            problem = f"the row has {len(cells)} cells, the header {len(header)}"
            if len(lines.kept) > 1:  # a stray quote ran on to the end of the file
                raw = lines.first_line()
                problem += "; a quote on its line is not closed"
                lines.again()
                reader = csv.reader(lines, delimiter=mapping.delimiter)
            yield Rejection(source, first, RejectReason.INVALID_ROW, "", problem, raw)
            continue
        try:
            message = row_to_message(dict(zip(header, cells, strict=True)), mapping)
            if mapping.message_id is None:
                message["messageId"] = row_message_id(cells)
            events = parse_message(message, phone_region=phone_region)
        except EventInvalid as exc:
            yield Rejection(source, line, exc.reason, exc.field, exc.message, raw)
            continue
        yield Accepted(events, f"{source}:{line}")
