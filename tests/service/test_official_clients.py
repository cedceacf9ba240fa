"""The official client libraries as they ship, against a real ``followup serve`` process.

segment-analytics-python (gzip off and on) and rudder-sdk-python (gzip by default) send
identifies, pages, tracks, screens, groups and aliases with properties, traits and context, in
one batch with a bad event among them: every good event lands once with its fields and its time,
the bad one is kept in the rejects store. And each client treats the answers as meant: a 400 is
not retried, a 429 and a 5xx are.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from rudderstack.analytics.client import Client as RudderClient
from rudderstack.analytics.consumer import Consumer as RudderConsumer
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics.client import Client as SegmentClient
from segment.analytics.consumer import Consumer as SegmentConsumer
from segment.analytics.request import APIError as SegmentAPIError

from engine.events import parse_timestamp
from engine.storage.tables import events
from tests.service.test_cli import _create_key, invoke, serving


@dataclass
class Served:
    """A ``followup serve`` process on SQLite in ``root``, with a write key."""

    root: Path
    url: str
    key: str

    def rows(self, prefix: str) -> dict[str, sa.Row[Any]]:
        """The stored events whose messageId starts with ``prefix``, by messageId."""
        engine = sa.create_engine(f"sqlite:///{self.root / 'followup.db'}")
        try:
            with engine.connect() as conn:
                query = sa.select(events).where(events.c.message_id.startswith(prefix))
                return {row.message_id: row for row in conn.execute(query)}
        finally:
            engine.dispose()

    def answered(self, status: int) -> float:
        """How many ``/v1/batch`` requests were answered ``status`` so far."""
        text = httpx.get(f"{self.url}/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "followup_http_request_seconds_count"
            and sample.labels == {"route": "/v1/batch", "status": str(status)}
        )

    def wait_answered(self, status: int, count: float) -> None:
        """Until ``count`` requests were answered ``status`` (the count follows the answer)."""
        deadline = time.monotonic() + 10
        while self.answered(status) < count:
            assert time.monotonic() < deadline, f"fewer than {count} answers {status}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    with serving(root) as service:
        yield Served(root, service.url, service.key)
    assert service.process.returncode == 0, service.stderr


Client = Callable[..., Any]
CLIENTS: dict[str, tuple[Client, dict[str, Any]]] = {
    "segment": (SegmentClient, {"gzip": False}),
    "segment-gzip": (SegmentClient, {"gzip": True}),
    "rudder": (RudderClient, {}),  # gzip by default
}
PAST = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
CONTEXT = {"ip": "203.0.113.9", "locale": "fr-FR", "page": {"url": "https://shop.example/b"}}
PRODUCT = {"product_id": "p1", "name": "Boots", "price": 120.5, "quantity": 2}


@pytest.mark.parametrize("name", list(CLIENTS))
def test_every_event_of_the_official_clients_lands_once(served: Served, name: str) -> None:
    kind, options = CLIENTS[name]
    errors: list[Exception] = []
    client = kind(
        served.key,
        host=served.url,
        upload_size=8,  # the eight calls below go in one batch (made within the second)
        upload_interval=1,
        max_retries=2,
        on_error=lambda error, _batch: errors.append(error),
        **options,
    )
    user, anon = f"{name}-u1", f"{name}-a1"
    calls = [
        client.identify(
            user,
            {"email": f"{name}@example.com", "firstName": "Ann"},
            context=CONTEXT,
            anonymous_id=anon,
            message_id=f"{name}-1",
        ),
        client.page(
            anonymous_id=anon,
            name="Boots",
            properties={"path": "/b"},
            context=CONTEXT,
            message_id=f"{name}-2",
        ),
        client.track(user, "Product Added", PRODUCT, context=CONTEXT, message_id=f"{name}-3"),
        client.track(
            user, "Product Added", {**PRODUCT, "price": "thirty"}, message_id=f"{name}-bad"
        ),
        client.track(
            user,
            "Order Completed",
            {"order_id": "o1", "total": 241.0},
            timestamp=PAST,
            message_id=f"{name}-4",
        ),
        client.screen(user, name="Basket", message_id=f"{name}-5"),
        client.group(user, "acme", {"name": "Acme"}, message_id=f"{name}-6"),
        client.alias(anon, user, message_id=f"{name}-7"),
    ]
    client.shutdown()
    assert errors == []
    assert all(queued for queued, _ in calls)
    sent = {msg["messageId"]: msg for _, msg in calls}
    landed = served.rows(f"{name}-")  # messageId is unique in the log: each at most once
    assert sorted(landed) == sorted(set(sent) - {f"{name}-bad"})
    for message_id, row in landed.items():
        msg = sent[message_id]
        assert row.type == msg["type"]
        # both libraries set timestamp (the caller's or their clock's): kept as given
        assert row.timestamp == parse_timestamp(msg["timestamp"]), message_id
        assert row.payload["context"]["library"]["name"] == "analytics-python"
        assert row.channel == "web"  # rudder's channel "server" is its library's, not the shop's
        if name == "rudder":
            assert row.payload["context"]["libraryChannel"] == "server"
    assert landed[f"{name}-4"].timestamp == PAST
    assert landed[f"{name}-3"].payload["properties"] == PRODUCT
    assert landed[f"{name}-1"].payload["traits"]["firstName"] == "Ann"
    assert landed[f"{name}-2"].payload["context"]["ip"] == CONTEXT["ip"]
    assert landed[f"{name}-6"].payload["properties"]["traits"] == {"name": "Acme"}

    listed = invoke(served.root, "rejects", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rejects = [orjson.loads(line) for line in listed.stdout.splitlines()]
    (bad,) = [r for r in rejects if orjson.loads(r["raw"])["messageId"] == f"{name}-bad"]
    where = (bad["reason"], bad["field"], bad["position"])
    assert where == ("invalid_field", "properties.price", 3)
    assert bad["source"].startswith("http:key_")


# a 25-line order: about 7 KB of JSON, far under the 32 KB of an event
ORDER_LINES = [
    {
        "product_id": f"sku-{n:05d}",
        "name": f"Organic cotton t-shirt, size M, colour {n}",
        "price": 19.9,
        "quantity": 1,
        "category": "Apparel/Men/T-shirts",
        "url": f"https://shop.example/products/sku-{n:05d}",
        "image_url": f"https://cdn.shop.example/img/sku-{n:05d}.jpg",
    }
    for n in range(25)
]


@pytest.mark.parametrize("name", ["segment", "rudder"])
def test_a_full_batch_of_the_clients_defaults_lands(served: Served, name: str) -> None:
    """Each library as it ships batches 100 calls: 100 big orders make a batch of about 700 KB
    from rudder-sdk-python (it fills one up to 4 MB), which the default limits take whole,
    where a 500 KB limit refused it, and the client dropped all 100 as a final 413."""
    kind, options = CLIENTS[name]
    errors: list[Exception] = []
    client = kind(served.key, host=served.url, on_error=lambda e, _b: errors.append(e), **options)
    for n in range(100):
        client.track(
            f"{name}-buyer{n}",
            "Order Completed",
            {"order_id": f"o{n}", "revenue": 497.5, "products": ORDER_LINES},
            message_id=f"{name}-order-{n}",
        )
    client.shutdown()
    assert errors == []
    assert len(served.rows(f"{name}-order-")) == 100


LIBRARIES = {
    "segment": (SegmentConsumer, SegmentAPIError),
    "rudder": (RudderConsumer, RudderAPIError),
}


def _message(message_id: str) -> dict[str, str]:
    at = datetime.now(UTC).isoformat()
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": "u9",
        "messageId": message_id,
        "timestamp": at,
    }


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_a_400_is_not_retried(served: Served, library: str) -> None:
    consumer, api_error = LIBRARIES[library]
    before = served.answered(400)
    with pytest.raises(api_error) as info:  # the clients' own upload, with a body we refuse
        consumer(queue.Queue(), served.key, host=served.url, retries=3).request("not a list")
    assert (info.value.status, info.value.code) == (400, "invalid")
    time.sleep(0.3)
    assert served.answered(400) == before + 1


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_a_429_is_retried(served: Served, library: str) -> None:
    consumer, api_error = LIBRARIES[library]
    _, slow = _create_key(served.root, "--rate", "1/h")
    upload = consumer(queue.Queue(), slow, host=served.url, retries=2)
    upload.request([_message(f"{library}-429-a")])  # the key's one request this hour
    before = served.answered(429)
    with pytest.raises(api_error) as info:
        upload.request([_message(f"{library}-429-b")])
    assert info.value.status == 429
    if library == "segment":  # it honours Retry-After: the batch goes back on its queue
        assert info.value.rate_limited
        served.wait_answered(429, before + 1)
    else:  # it backs off and tries again, up to its retries
        served.wait_answered(429, before + 3)


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_a_5xx_is_retried_and_the_event_lands_once(served: Served, library: str) -> None:
    """The event log out of reach (its table renamed under the running service) gives 500s;
    the client tries again, and once the table is back the event lands, once."""
    consumer, _ = LIBRARIES[library]
    before = served.answered(500)
    database = sqlite3.connect(served.root / "followup.db", timeout=30)
    database.execute("ALTER TABLE events RENAME TO events_away")
    failures: list[BaseException] = []

    def upload() -> None:
        try:
            consumer(queue.Queue(), served.key, host=served.url, retries=6).request(
                [_message(f"{library}-5xx")]
            )
        except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
            failures.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        served.wait_answered(500, before + 1)
    finally:
        database.execute("ALTER TABLE events_away RENAME TO events")
        database.close()
    thread.join(timeout=60)
    assert failures == []
    assert list(served.rows(f"{library}-5xx")) == [f"{library}-5xx"]
