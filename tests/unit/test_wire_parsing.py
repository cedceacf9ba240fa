"""A property of the tracking API's parsing: whatever the body, it is read into events and
rejects, or refused whole with an HTTP error; never another exception (a 500). What it keeps is
storable on every backend: times within bounds, no NUL, JSON orjson can write."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import LimitsConfig
from engine.events import EARLIEST, LATEST
from engine.service.errors import ApiError
from engine.service.parsing import parse_request

RECEIVED = datetime(2024, 6, 1, 12, tzinfo=UTC)
LIMITS = LimitsConfig()

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON carries as integers
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.just("a\x00b"),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
edges = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2999-12-31T23:59:59Z"]
times = st.one_of(
    st.sampled_from(edges),
    st.datetimes(timezones=st.builds(timezone, offsets)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.text(max_size=25),
    ints,
    st.none(),
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


messages = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["track", "identify", "page", "screen", "group", "alias", "batch", 3]
        )
    },
    optional={
        "event": st.one_of(st.text(max_size=8), values),
        "userId": st.one_of(st.text(max_size=8), ints, values),
        "anonymousId": st.text(max_size=8),
        "previousId": st.text(max_size=8),
        "groupId": st.text(max_size=8),
        "messageId": st.one_of(st.text(max_size=8), values),
        "timestamp": times,
        "originalTimestamp": times,
        "sentAt": times,
        "channel": st.one_of(st.sampled_from(["server", "browser", "pos", "\x00"]), values),
        "properties": st.one_of(values, st.integers(1, 250).map(_nested)),
        "traits": values,
        "context": values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.one_of(messages, values), max_size=6),
    sent_at=times,
    squeeze=st.booleans(),
)
def test_any_batch_is_read_or_refused_never_crashed(
    items: list[Any], sent_at: Any, squeeze: bool
) -> None:
    body = orjson.dumps({"batch": items, "sentAt": sent_at})
    encoding = "gzip" if squeeze else None
    try:
        parsed = parse_request(
            "batch", gzip.compress(body) if squeeze else body, encoding, LIMITS, RECEIVED, "US"
        )
    except ApiError as exc:
        assert 400 <= exc.status < 500
        return
    assert len(parsed.events) + len(parsed.refused) == len(items)  # each one or the other
    for event in parsed.events:
        assert EARLIEST <= event.timestamp < LATEST
        written = orjson.dumps(
            [event.payload(), event.name, event.user_id, event.anonymous_id, event.channel]
        )
        assert b"\\u0000" not in written
    for refused in parsed.refused:
        assert refused.raw
        assert refused.problem.reason
