"""Operations endpoints over real HTTP: health, readiness (database and migrations), Prometheus
metrics, and the JSON request log with its request id."""

from __future__ import annotations

import logging
import time

import httpx
import orjson
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from engine.service.logs import JsonFormatter
from engine.storage.schema_head import schema_heads
from tests.service.conftest import Running


def _samples(service: Running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{service.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_health_and_readiness(service: Running) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok", "detail": None}
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    with service.followup.engine.begin() as conn:  # as if the code were newer than the schema
        conn.execute(
            sa.text("UPDATE alembic_version SET version_num = '0003' WHERE version_num = :core"),
            {"core": schema_heads()[0]},
        )
    behind = httpx.get(f"{service.url}/readyz")
    assert behind.status_code == 503
    assert behind.json()["detail"] == "schema at 0003 + calls0001, code expects 0023 + calls0001"


def test_metrics_count_events_and_rejects(service: Running) -> None:
    with service.client() as client:
        batch = [
            {"type": "track", "event": "Product Viewed", "userId": "u", "messageId": "1"},
            {"type": "page", "userId": "u", "messageId": "2"},
            {"type": "track", "event": "Product Viewed", "userId": "u", "messageId": "1"},
        ]
        assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
        bad = [{"type": "track", "userId": "u"}, {"type": "track", "event": "x"}]
        assert client.post("/v1/batch", json={"batch": bad}).json()["rejected"] == 2
        assert client.post("/v1/batch", content=b"[").status_code == 400
    assert httpx.post(f"{service.url}/v1/track", json={}).status_code == 401
    samples = _samples(service)
    assert samples[("followup_events_received_total", (("type", "track"),))] == 2
    assert samples[("followup_events_received_total", (("type", "page"),))] == 1
    assert samples[("followup_events_duplicate_total", ())] == 1
    assert samples[("followup_events_rejected_total", (("reason", "missing_field"),))] == 2
    assert samples[("followup_rejects_total", (("reason", "invalid"),))] == 1
    assert samples[("followup_rejects_total", (("reason", "unauthorized"),))] == 1
    assert samples[("followup_outbox_lag_seconds", ())] == 0
    latency = ("followup_http_request_seconds_count", (("route", "/v1/batch"), ("status", "200")))
    assert samples[latency] == 2


def test_each_request_is_logged_as_json_with_its_id(
    service: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="followup.service")
    token = "tok.en"
    answer = httpx.get(f"{service.url}/unsubscribe/{token}", headers={"X-Request-Id": "abc-123"})
    assert answer.headers["X-Request-Id"] == "abc-123"
    deadline = time.monotonic() + 10  # the line is written once the response has gone out
    while not (found := [r for r in caplog.records if getattr(r, "request_id", None) == "abc-123"]):
        assert time.monotonic() < deadline, "no log line for the request"
        time.sleep(0.01)
    (record,) = found
    line = orjson.loads(JsonFormatter().format(record))
    assert line["msg"] == "request"
    assert line["request_id"] == "abc-123"
    assert line["route"] == "/unsubscribe/{token}"  # the template: no token in the log
    assert line["status"] == 400
    assert line["method"] == "GET"
    assert token not in orjson.dumps(line).decode()
