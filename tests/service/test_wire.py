"""The tracking API as Segment's and RudderStack's clients use it, over real HTTP: compressed
bodies, error bodies they can read, batches with bad events, Segment's timestamp rule, library
channels, and no 500 for any body."""

from __future__ import annotations

import gzip
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from engine.ingest.rejects import RejectStore
from engine.storage.tables import events
from tests.service.conftest import Running
from tests.service.test_operations import _samples


def _track(message_id: str, **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Product Added",
        "userId": "u1",
        "messageId": message_id,
        "timestamp": "2024-05-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 30},
        **extra,
    }


def _post(service: Running, path: str, body: bytes, **headers: str) -> httpx.Response:
    with service.client() as client:
        return client.post(path, content=body, headers=headers)


def _stored(service: Running) -> dict[str, Any]:
    """Every stored event by messageId: its time, channel and payload."""
    with service.followup.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.message_id, events.c.timestamp, events.c.channel, events.c.payload)
        )
        return {row.message_id: row for row in rows}


def test_gzip_and_deflate_bodies_are_decompressed(service: Running) -> None:
    """RudderStack's Python and Node SDKs gzip every request by default."""
    body = orjson.dumps({"batch": [_track("gz")]})
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = raw.compress(orjson.dumps(_track("raw"))) + raw.flush()
    answers = [
        _post(service, "/v1/batch", gzip.compress(body), **{"Content-Encoding": "gzip"}),
        _post(
            service,
            "/v1/track",
            zlib.compress(orjson.dumps(_track("zl"))),
            **{"Content-Encoding": "deflate"},
        ),
        _post(service, "/v1/track", raw_deflate, **{"Content-Encoding": "deflate"}),
        _post(
            service,
            "/v1/track",
            gzip.compress(orjson.dumps(_track("x"))),
            **{"Content-Encoding": "x-gzip"},
        ),
        # two gzip members, as a stream that was flushed and restarted writes them
        _post(
            service,
            "/v1/batch",
            gzip.compress(body[:10]) + gzip.compress(body[10:]),
            **{"Content-Encoding": "gzip"},
        ),
    ]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert sorted(service.message_ids()) == ["gz", "raw", "x", "zl"]


def test_bad_encodings_get_a_clear_4xx(service: Running) -> None:
    body = orjson.dumps(_track("e"))
    unknown = _post(service, "/v1/track", body, **{"Content-Encoding": "br"})
    corrupt = _post(service, "/v1/track", b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})
    cut = _post(service, "/v1/track", gzip.compress(body)[:-6], **{"Content-Encoding": "gzip"})
    plain = _post(service, "/v1/track", body, **{"Content-Encoding": "gzip"})
    assert unknown.status_code == 415
    assert unknown.json()["code"] == "unsupported_encoding"
    assert "'br'" in unknown.json()["message"]
    for answer in (corrupt, cut, plain):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_encoding"
    assert service.message_ids() == []


def _bomb(megabytes: int) -> bytes:
    """A gzip body that decompresses to ``megabytes`` MB of spaces inside a JSON object."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    body = packer.compress(b"{")
    for _ in range(megabytes):
        body += packer.compress(chunk)
    return body + packer.compress(b"}") + packer.flush()


def test_a_zip_bomb_is_refused_once_past_the_limit(service: Running) -> None:
    """The request limit holds after decompression, and decompression stops at it: 200 MB in a
    200 KB gzip is refused once 500 KB are out."""
    bomb = _bomb(200)
    assert len(bomb) < 500_000
    started = time.perf_counter()
    with service.client() as client:
        answer = client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
        small = client.post(
            "/v1/track", content=gzip.compress(b" " * 40_000), headers={"Content-Encoding": "gzip"}
        )
    assert time.perf_counter() - started < 1
    assert answer.status_code == 413
    assert small.status_code == 413
    assert small.json() == {
        "code": "too_large",
        "error": "too_large",
        "message": "the request body is larger than 32,768 bytes decompressed",
        "errors": [],
    }


def test_errors_carry_code_and_message_as_the_clients_read_them(service: Running) -> None:
    """rudder-sdk-python reads ``code`` and ``message`` of every non-200 body (a KeyError
    without them, and then it retries a 400)."""
    with service.client() as client:
        answers = {
            400: client.post("/v1/batch", content=b"{not json"),
            401: httpx.post(f"{service.url}/v1/batch", json={"batch": []}),
            404: client.post("/v1/nothing", json={}),
            405: client.get("/v1/batch"),
            413: client.post("/v1/track", json=_track("big", note="x" * 40_000)),
        }
    for status, answer in answers.items():
        assert answer.status_code == status
        body = answer.json()
        assert isinstance(body["code"], str) and body["code"], body
        assert isinstance(body["message"], str) and body["message"], body
    assert answers[400].json()["code"] == "invalid_json"
    assert answers[401].json()["code"] == "unauthorized"


def test_the_write_key_may_come_in_the_body(service: Running) -> None:
    """segment-analytics-python 2.3 sends ``writeKey`` in the body and no Authorization."""
    body = {"batch": [_track("wk")], "writeKey": service.key}
    good = httpx.post(f"{service.url}/v1/batch", json=body)
    wrong = httpx.post(f"{service.url}/v1/batch", json={**body, "writeKey": "fu_nope"})
    assert good.status_code == 200, good.text
    assert wrong.status_code == 401
    assert service.message_ids() == ["wk"]


def test_a_batch_keeps_its_good_events_and_names_its_bad_ones(backend_service: Running) -> None:
    """Segment's API answers 200 to a batch with bad events: the good ones must not be lost
    with them (the clients drop a batch answered 400)."""
    service = backend_service
    batch = [
        _track("b0"),
        {"type": "track", "userId": "u1", "messageId": "b1"},
        _track("b2", properties={"price": "thirty"}),
        "not an object",
        _track("b4", timestamp="9999-12-31T23:59:59-01:00"),
        _track("b5", properties={"note": "x" * 40_000}),
        _track("b6"),
    ]
    with service.client() as client:
        answer = client.post("/v1/batch", json={"batch": batch}, headers={"X-Request-Id": "r-7"})
        single = client.post("/v1/track", json={**_track("s1"), "timestamp": "soon"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 5)
    named = [(p["index"], p["field"], p["reason"]) for p in body["errors"]]
    assert named == [
        (1, "event", "missing_field"),
        (2, "properties.price", "invalid_field"),
        (3, "", "not_an_object"),
        (4, "timestamp", "bad_timestamp"),
        (5, "", "too_large"),
    ]
    assert single.status_code == 400
    assert single.json()["errors"][0]["field"] == "timestamp"
    assert sorted(service.message_ids()) == ["b0", "b6"]

    kept = RejectStore(service.followup.engine).latest(10)
    assert [(r.position, r.field, r.reason) for r in kept] == [
        (None, "timestamp", "bad_timestamp"),
        *reversed([(i, f, r) for i, f, r in named]),
    ]
    assert all(r.source.startswith("http:key_") for r in kept)
    assert {r.source.rsplit(":", 1)[1] for r in kept[1:]} == {"r-7"}
    assert orjson.loads(kept[-1].raw) == batch[1]
    assert orjson.loads(kept[-3].raw) == "not an object"
    assert orjson.loads(kept[0].raw)["messageId"] == "s1"
    with service.client() as client:  # the client retries: the rejects are kept once
        assert client.post("/v1/batch", json={"batch": batch}).json()["duplicates"] == 2
    assert len(RejectStore(service.followup.engine).latest(10)) == 6
    samples = _samples(service)
    assert samples[("followup_events_rejected_total", (("reason", "missing_field"),))] == 2
    assert samples[("followup_events_rejected_total", (("reason", "bad_timestamp"),))] == 3


RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)  # the service's clock (tests.conftest)


def test_segments_timestamp_rule(service: Running) -> None:
    """timestamp = receivedAt - (sentAt - originalTimestamp): a browser 1 h fast that held an
    event 2 s; a batch's sentAt for its messages; an explicit timestamp kept as given."""
    skewed = {"type": "track", "event": "Cart Viewed", "anonymousId": "a1"}
    batch = {
        "batch": [
            {**skewed, "messageId": "held", "originalTimestamp": "2024-06-01T12:59:58.000Z"},
            {
                **skewed,
                "messageId": "own",
                "originalTimestamp": "2024-06-01T13:00:00Z",
                "sentAt": "2024-06-01T13:00:30Z",
            },
            {
                **skewed,
                "messageId": "given",
                "timestamp": "2024-05-01T10:00:00Z",
                "originalTimestamp": "2024-06-01T12:59:58Z",
            },
            {**skewed, "messageId": "now"},
        ],
        "sentAt": "2024-06-01T13:00:00.000Z",
    }
    with service.client() as client:
        assert client.post("/v1/batch", json=batch).json()["accepted"] == 4
        single = {
            **skewed,
            "messageId": "single",
            "originalTimestamp": "2024-06-01T11:00:00Z",
            "sentAt": "2024-06-01T11:00:05Z",
        }
        assert client.post("/v1/track", json=single).status_code == 200
    times = {mid: row.timestamp for mid, row in _stored(service).items()}
    assert times == {
        "held": datetime(2024, 6, 1, 11, 59, 58, tzinfo=UTC),
        "own": datetime(2024, 6, 1, 11, 59, 30, tzinfo=UTC),
        "given": datetime(2024, 5, 1, 10, tzinfo=UTC),
        "now": RECEIVED,
        "single": datetime(2024, 6, 1, 11, 59, 55, tzinfo=UTC),
    }


def test_a_library_channel_is_not_the_shop_channel(service: Running) -> None:
    """rudder-sdk-python sends ``channel: server`` on every message."""
    batch = [
        _track("lib", channel="server", context={"library": {"name": "analytics-python"}}),
        _track("pos", channel="server", context={"channel": "pos"}),
        _track("web", channel="browser"),
    ]
    with service.client() as client:
        assert client.post("/v1/batch", json={"batch": batch}).json()["accepted"] == 3
    stored = _stored(service)
    assert {mid: row.channel for mid, row in stored.items()} == {
        "lib": "web",
        "pos": "pos",
        "web": "web",
    }
    assert stored["lib"].payload["context"] == {
        "library": {"name": "analytics-python"},
        "libraryChannel": "server",
    }
    profile = service.followup.profile("u1")
    assert profile is not None
    assert set(profile.state.channels) == {"web", "pos"}


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_no_body_gets_a_500(backend_service: Running) -> None:
    """JSON nested 253 to 1,024 levels (orjson writes 254 at most), NUL in any string
    (PostgreSQL refuses it, SQLite keeps it), timestamps past year 9999 in UTC."""
    service = backend_service
    nul = {
        **_track("n\x00ul"),
        "userId": "u\x00",
        "properties": {"na\x00me": "bo\x00ots", "price": 3},
        "context": {"traits": {"firstName": "A\x00nn"}},
    }
    batch = [
        _track("deep", properties=_deep(300)),
        nul,
        _track("late", timestamp="9999-12-31T23:59:59-01:00"),
        {
            **_track("skew"),
            "timestamp": None,
            "originalTimestamp": "1900-01-01T00:00:00Z",
            "sentAt": "2999-01-01T00:00:00Z",
        },
    ]
    with service.client() as client:
        answer = client.post("/v1/batch", json={"batch": batch})
        body_1000 = client.post("/v1/track", content=b'{"a":' * 1000 + b"1" + b"}" * 1000)
        body_2000 = client.post("/v1/batch", content=b"[" * 2000 + b"]" * 2000)
        deep_call = client.post("/v1/identify", json={"userId": "u", "traits": _deep(253)})
    assert answer.status_code == 200, answer.text
    named = [(p["index"], p["field"][:20], p["reason"]) for p in answer.json()["errors"]]
    assert named == [
        (0, "properties.k.k.k.k.k", "invalid_field"),
        (2, "timestamp", "bad_timestamp"),
        (3, "originalTimestamp", "bad_timestamp"),
    ]
    assert "deeper than 32 levels" in answer.json()["errors"][0]["message"]
    assert body_1000.status_code == 400
    assert body_1000.json()["errors"][0]["field"].startswith("a.a.a")
    assert body_2000.status_code == 400
    assert body_2000.json()["code"] == "invalid_json"
    assert deep_call.status_code == 400
    stored = _stored(service)
    assert list(stored) == ["n\ufffdul"]
    assert stored["n\ufffdul"].payload["properties"] == {"na\ufffdme": "bo\ufffdots", "price": 3}
    profile = service.followup.profile("u\ufffd")
    assert profile is not None
    assert profile.state.traits["first_name"] == "A\ufffdnn"
