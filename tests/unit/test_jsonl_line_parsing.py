"""A line of a JSONL file is parsed as any message is: the file reader spares a message the
walk for NULs and depth when its text shows there is nothing to find (``clean_text``), and must
then give exactly the events, or the rejection, the general path gives."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import EventInvalid, parse_message
from engine.ingest.jsonl import parse_jsonl_line
from engine.ingest.pipeline import Accepted
from engine.json_values import MAX_DEPTH, clean_text

_TEXT = st.sampled_from(["", "a", "u1", "\x00", "a\x00b", "{[", " web ", "Order Completed"])
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(0, 9), _TEXT)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "deep\x00" if depth % 2 else 1
    for level in range(depth):
        value = {f"k{level}": value} if level % 3 else [value]
    return {"nested": value}


_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_MESSAGE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "identify", "page", "group", "alias", "batch", "x", 3]),
        "timestamp": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01", "nope", 5]),
    },
    optional={
        "event": _TEXT,
        "userId": st.one_of(_TEXT, st.integers(0, 9), st.just("u" * 256), st.just(True)),
        "anonymousId": _TEXT,
        "messageId": _TEXT,
        "previousId": _TEXT,
        "groupId": _TEXT,
        "channel": _TEXT,
        "properties": st.one_of(
            st.dictionaries(
                st.sampled_from(["price", "revenue", "products", "list", "a\x00"]),
                _VALUE,
                max_size=3,
            ),
            st.builds(_nested, st.integers(MAX_DEPTH - 3, MAX_DEPTH + 2)),
            _SCALAR,
        ),
        "traits": st.one_of(st.dictionaries(_TEXT, _VALUE, max_size=3), _SCALAR),
        "context": st.dictionaries(st.sampled_from(["traits", "timezone", "channel"]), _VALUE),
        "batch": st.lists(st.dictionaries(_TEXT, _VALUE, max_size=3), max_size=2),
    },
)


def _general(message: dict[str, Any]) -> Any:
    try:
        return parse_message(message, arrival=7)
    except EventInvalid as exc:
        return (exc.reason, exc.field, exc.message)


@settings(max_examples=400, deadline=None)
@given(_MESSAGE)
def test_a_line_of_a_file_parses_as_the_message_does(message: dict[str, Any]) -> None:
    raw = orjson.dumps(message)
    record = parse_jsonl_line(raw, "events.jsonl", 1, arrival=7)
    expected = _general(orjson.loads(raw))
    if isinstance(record, Accepted):
        assert record.events == expected
    else:
        assert record is not None
        assert (record.reason, record.field, record.message) == expected


def test_the_text_tells_a_message_clean_only_when_it_is() -> None:
    assert clean_text(orjson.dumps({"type": "track", "userId": "u1"}))
    assert not clean_text(orjson.dumps({"a": "b\x00"}))  # written \u0000
    assert not clean_text(orjson.dumps(_nested(MAX_DEPTH)))
    assert not clean_text(b'{"a": "' + b"{" * MAX_DEPTH + b'"}')  # brackets in a string: look
