"""Reading JSONL files of Segment messages: one message (or ``batch``) per line.

Each line becomes :class:`Accepted` events or a :class:`Rejection` that names the file, the line
and the field, and keeps the raw line. A bad line never stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from engine.events import EventInvalid, Rejection, RejectReason, parse_message
from engine.ingest.pipeline import Accepted
from engine.json_values import clean_text

MAX_LINE_BYTES = 1024 * 1024
RAW_KEPT = 1024 * 1024 * 16  # a rejected line is kept whole up to this size
UTF8_BOM = b"\xef\xbb\xbf"


def _raw_text(raw: bytes) -> str:
    return raw[:RAW_KEPT].decode("utf-8", errors="replace").rstrip("\r\n")


def parse_jsonl_line(
    raw: bytes,
    source: str,
    line: int,
    max_line_bytes: int = MAX_LINE_BYTES,
    phone_region: str = "US",
    arrival: int = 0,
) -> Accepted | Rejection | None:
    """One line of a JSONL file; ``None`` for a blank line. Its events are numbered from
    ``arrival`` on, in the order received (see :attr:`Event.arrival`)."""
    if len(raw) > max_line_bytes:
        return Rejection(
            source,
            line,
            RejectReason.TOO_LARGE,
            "",
            f"line is {len(raw):,} bytes, over the limit of {max_line_bytes:,}; split the batch",
            _raw_text(raw),
        )
    if not raw.strip():
        return None
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(
            source, line, RejectReason.INVALID_JSON, "", f"not valid JSON: {exc}", _raw_text(raw)
        )
    try:
        events = parse_message(
            message, phone_region=phone_region, arrival=arrival, clean_already=clean_text(raw)
        )
    except EventInvalid as exc:
        return Rejection(source, line, exc.reason, exc.field, exc.message, _raw_text(raw))
    return Accepted(events, f"{source}:{line}")


def read_jsonl(
    path: Path,
    max_line_bytes: int = MAX_LINE_BYTES,
    on_progress: Callable[[int], None] | None = None,
    phone_region: str = "US",
) -> Iterator[Accepted | Rejection]:
    """Every record of the file at ``path``; ``on_progress`` hears the bytes read. Events are
    numbered in file order (a batch line's in array order), from 1."""
    source = str(path)
    arrival = 1
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if on_progress is not None:
                on_progress(len(raw))
            if number == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]  # an editor's mark at the head of the file, not data
            record = parse_jsonl_line(raw, source, number, max_line_bytes, phone_region, arrival)
            if isinstance(record, Accepted):
                arrival += len(record.events)
            if record is not None:
                yield record
