"""A schema-driven fuzz of every operation in ``/openapi.json`` with schemathesis, against the
running service: no 500, every status and body as documented, and no accepted-but-lost event
(after a 200 from an ingest endpoint, every event of the request is in the log but those the
answer names as rejected). Bounded to a few examples per operation so the suite stays fast."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.events import EventInvalid, parse_message
from engine.service.webhooks import signature
from tests.service.conftest import CALLS_SECRET, MAILCHIMP_SECRET, Running

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=6,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _expected_ids(service: Running, path: str, body: Any, answer: dict[str, Any]) -> list[str]:
    """The messageIds the service must have stored after accepting ``body`` at ``path``: every
    event but those the answer names as rejected."""
    kind = path.removeprefix("/v1/")
    body = orjson.loads(json.dumps(body))  # as the service read it (orjson: big ints as floats)
    body.pop("writeKey", None)
    items = body.get("batch", []) if kind == "batch" else [{**body, "type": kind}]
    rejected = {problem["index"] for problem in answer.get("errors", [])}
    ids = []
    for index, item in enumerate(items):
        message = item
        if kind == "batch" and isinstance(body.get("context"), dict) and "context" not in item:
            message = {**item, "context": body["context"]}
        try:
            events = parse_message(
                message, default_timestamp=service.clock(), sent_at=body.get("sentAt")
            )
        except EventInvalid:
            assert index in rejected, f"{path} accepted an invalid message: {message!r}"
            continue
        ids.extend(event.message_id for event in events)
    return ids


def _headers(service: Running, case: schemathesis.Case) -> dict[str, str]:
    if case.path == "/webhooks/calls":
        # the bytes requests will send for this body (json.dumps, as case.call serializes it)
        body = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        stamp = str(int(time.time()))
        return {
            "X-Followup-Timestamp": stamp,
            "X-Followup-Signature": signature(CALLS_SECRET, stamp, body),
        }
    return {}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_holds_under_generated_requests(
    service: Running, mode: GenerationMode
) -> None:
    document = httpx.get(f"{service.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/track",
        "/v1/identify",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/unsubscribe/{token}",
        "/webhooks/mailchimp/{secret}",
        "/webhooks/calls",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    basic = "Basic " + base64.b64encode(f"{service.key}:".encode()).decode()
    seen: set[str] = set()
    if mode is GenerationMode.NEGATIVE:  # only operations with a body have data to break
        operations = [op for op in operations if op.body]
    for operation in operations:
        path_parameters = (
            {"secret": MAILCHIMP_SECRET}
            if operation.path.startswith("/webhooks/mailchimp")
            else None
        )

        @FUZZ
        @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
        def fuzz(case: schemathesis.Case) -> None:
            headers = _headers(service, case)
            if case.path.startswith("/v1/"):
                headers["Authorization"] = basic
            response = case.call(base_url=service.url, headers=headers)
            case.validate_response(response, checks=CHECKS)
            seen.add(f"{case.method} {case.path} {response.status_code}")
            if case.path.startswith("/v1/") and response.status_code == 200:
                stored = set(service.message_ids())
                missing = [
                    i
                    for i in _expected_ids(service, case.path, case.body, response.json())
                    if i not in stored
                ]
                assert not missing, f"accepted but not stored: {missing}"

        fuzz()
    if mode is GenerationMode.POSITIVE:  # the accept path of every ingest endpoint was taken
        for kind in ("track", "identify", "page", "alias", "batch"):
            assert f"POST /v1/{kind} 200" in seen, sorted(seen)
