"""Segment-shaped ingest over real HTTP: write keys, limits, validation, dedupe, batches whose
bad events are set apart, and concurrent clients, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from engine.service.keys import KeyStore
from tests.service.conftest import Running


def _track(message_id: str, user: str = "u1", **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Product Added",
        "userId": user,
        "messageId": message_id,
        "timestamp": "2024-05-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 30},
        **extra,
    }


def test_each_call_is_stored_once_durable(backend_service: Running) -> None:
    service = backend_service
    with service.client() as client:
        track = {k: v for k, v in _track("m-track").items() if k != "type"}
        answers = [
            client.post("/v1/track", json=track),
            client.post(
                "/v1/identify",
                json={"userId": "u1", "messageId": "m-id", "traits": {"email": "Ann@Example.com"}},
            ),
            client.post(
                "/v1/page", json={"anonymousId": "a1", "name": "Home", "messageId": "m-pg"}
            ),
            client.post(
                "/v1/alias", json={"userId": "u1", "previousId": "a1", "messageId": "m-al"}
            ),
            client.post("/v1/screen", json={"userId": "u1", "name": "Basket", "messageId": "m-sc"}),
            client.post(
                "/v1/group",
                json={
                    "userId": "u1",
                    "groupId": "acme",
                    "traits": {"name": "Acme"},
                    "messageId": "m-gr",
                },
            ),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True, "accepted": 1, "duplicates": 0}
    assert sorted(service.message_ids()) == ["m-al", "m-gr", "m-id", "m-pg", "m-sc", "m-track"]
    profile = service.followup.profile("ann@example.com")
    assert profile is not None
    assert profile.state.cart.value == 30.0
    assert "anon:a1" in profile.identity_keys  # the alias linked the page's visitor
    assert "name" not in profile.state.traits  # the group's name is the group's, not Ann's


def test_keys_missing_wrong_and_revoked_get_401(service: Running) -> None:
    body = _track("m-auth")
    plain = httpx.post(f"{service.url}/v1/track", json=body)
    assert plain.status_code == 401
    assert plain.headers["WWW-Authenticate"] == 'Basic realm="followup"'
    assert plain.json()["error"] == "unauthorized"
    bearer = httpx.post(
        f"{service.url}/v1/track", json=body, headers={"Authorization": "Bearer " + service.key}
    )
    assert bearer.status_code == 401
    garbled = httpx.post(
        f"{service.url}/v1/track", json=body, headers={"Authorization": "Basic %%%"}
    )
    assert garbled.status_code == 401
    with service.client("fu_not-a-key") as client:
        assert client.post("/v1/track", json=body).status_code == 401
    store = KeyStore(service.followup.engine)
    record, key = store.create("to revoke", None, service.clock())
    with service.client(key) as client:
        assert client.post("/v1/track", json=_track("m-before")).status_code == 200
        store.revoke(record.id, service.clock())
        after = client.post("/v1/track", json=_track("m-after"))
    assert after.status_code == 401
    assert service.message_ids() == ["m-before"]


def test_malformed_bodies_get_400_and_store_nothing(service: Running) -> None:
    with service.client() as client:
        not_json = client.post("/v1/batch", content=b'{"batch": [', headers={"content-type": "x"})
        not_object = client.post("/v1/track", json=[1, 2])
        wrong_type = client.post("/v1/track", json={**_track("m1"), "type": "identify"})
        no_list = client.post("/v1/batch", json={"batch": {"type": "track"}})
        no_name = client.post("/v1/track", json={"userId": "u1"})
    assert not_json.status_code == 400
    assert not_json.json()["error"] == "invalid_json"
    assert not_object.status_code == 400
    assert not_object.json()["error"] == "not_an_object"
    assert wrong_type.status_code == 400
    assert wrong_type.json()["errors"][0]["field"] == "type"
    assert no_list.status_code == 400
    assert no_list.json()["errors"][0]["field"] == "batch"
    assert no_name.status_code == 400
    assert no_name.json()["errors"] == [
        {
            "index": None,
            "field": "event",
            "reason": "missing_field",
            "message": "track needs an event name",
        }
    ]
    assert service.message_ids() == []


def test_oversized_requests_and_events_get_413(service: Running) -> None:
    big = "x" * (33 * 1024)
    with service.client() as client:
        huge_batch = client.post(
            "/v1/batch",
            # past the 4 MB and 64 KB of a full rudder-sdk-python batch
            json={"batch": [_track(f"m{i}", note="y" * 20_000) for i in range(215)]},
        )
        big_event = client.post(
            "/v1/batch",
            json={"batch": [_track("m-ok"), _track("m-big", properties={"note": big})]},
        )
        big_call = client.post("/v1/track", json=_track("m-big2", properties={"note": big}))
    assert huge_batch.status_code == 413
    assert big_event.status_code == 200  # the event past the limit is a reject, not the batch
    assert [(p["index"], p["reason"]) for p in big_event.json()["errors"]] == [(1, "too_large")]
    assert big_call.status_code == 413
    assert service.message_ids() == ["m-ok"]


def test_bad_events_in_a_batch_are_named_and_the_good_ones_stored(
    backend_service: Running,
) -> None:
    service = backend_service
    batch = [
        _track("b0"),
        {"type": "track", "userId": "u1", "messageId": "b1"},
        _track("b2"),
        _track("b3", properties={"price": "thirty"}),
        {"type": "identify", "messageId": "b4", "traits": {"name": "no id"}},
        "not an object",
        _track("b6", timestamp="yesterday"),
        {"type": "screen_view", "userId": "u1"},
        {**_track("b8"), "event": "x" * 256},  # longer than the event log's columns
        {**_track("b9"), "channel": "y" * 33},
    ]
    with service.client() as client:
        answer = client.post("/v1/batch", json={"batch": batch})
    assert answer.status_code == 200
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (2, 8)
    named = [(p["index"], p["field"], p["reason"]) for p in answer.json()["errors"]]
    assert named == [
        (1, "event", "missing_field"),
        (3, "properties.price", "invalid_field"),
        (4, "userId", "missing_field"),
        (5, "", "not_an_object"),
        (6, "timestamp", "bad_timestamp"),
        (7, "type", "unknown_type"),
        (8, "event", "invalid_field"),
        (9, "channel", "invalid_field"),
    ]
    assert sorted(service.message_ids()) == ["b0", "b2"]


def test_duplicate_message_ids_are_accepted_once(service: Running) -> None:
    with service.client() as client:
        first = client.post("/v1/batch", json={"batch": [_track("d1"), _track("d1"), _track("d2")]})
        again = client.post("/v1/batch", json={"batch": [_track("d2"), _track("d3")]})
        single = client.post("/v1/track", json=_track("d3"))
        no_id = {k: v for k, v in _track("x").items() if k != "messageId"}
        content_1 = client.post("/v1/track", json=no_id)
        content_2 = client.post("/v1/track", json=no_id)  # same content, same derived messageId
    assert first.json() == {"success": True, "accepted": 2, "duplicates": 1}
    assert again.json() == {"success": True, "accepted": 1, "duplicates": 1}
    assert single.json() == {"success": True, "accepted": 0, "duplicates": 1}
    assert content_1.json()["accepted"] == 1
    assert content_2.json() == {"success": True, "accepted": 0, "duplicates": 1}
    ids = service.message_ids()
    assert len(ids) == len(set(ids)) == 4


def test_rate_limited_key_gets_429_with_retry_after(service: Running) -> None:
    _, key = KeyStore(service.followup.engine).create("slow", 0.01, service.clock())
    with service.client(key) as client:
        first = client.post("/v1/track", json=_track("r1"))
        second = client.post("/v1/track", json=_track("r2"))
    with service.client() as unlimited:
        other = unlimited.post("/v1/track", json=_track("r3"))
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert second.json()["error"] == "rate_limited"
    assert other.status_code == 200  # the bucket is per key
    assert sorted(service.message_ids()) == ["r1", "r3"]


def test_request_id_is_echoed_or_made(service: Running) -> None:
    with service.client() as client:
        given = client.get("/healthz", headers={"X-Request-Id": "req-42"})
        made = client.get("/healthz")
        unsafe = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert given.headers["X-Request-Id"] == "req-42"
    assert len(made.headers["X-Request-Id"]) == 32
    assert unsafe.headers["X-Request-Id"] not in ("bad id\twith spaces", "")


@pytest.mark.parametrize("clients", [8])
def test_concurrent_clients_store_every_accepted_event_once(
    backend_service: Running, clients: int
) -> None:
    """8 threads post overlapping batches (shared customers, repeated messageIds); every event
    a 200 covered is in the log exactly once."""
    service = backend_service
    accepted: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(number: int) -> None:
        with service.client() as client:
            for round_ in range(6):
                ids = [f"c{(number * 6 + round_ + k) % 60}" for k in range(10)]
                batch = [_track(i, user=f"u{sum(map(ord, i)) % 7}") for i in ids]
                answer = client.post("/v1/batch", json={"batch": batch})
                assert answer.status_code == 200, answer.text
                with lock:
                    accepted.update(ids)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    stored = service.message_ids()
    assert len(stored) == len(set(stored))
    assert set(stored) == set(accepted)
