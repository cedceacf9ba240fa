"""The http webhook provider against a real local HTTP server that checks each request's
signature with ``verify_signature``: the request as sent, and every fault's outcome."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

from engine.channels import (
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderContext,
    Recipient,
)
from engine.providers import build_providers
from integrations.webhook import HttpWebhook, http_provider
from tests.webhook.server import SECRET, Reply, webhook_receiver


class _Clock:
    """The provider's clock, set to the wall clock at the start of each test: the receiver
    checks the signed timestamp against its own clock."""

    now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


CLOCK = _Clock()
IN_5_MINUTES = "<an HTTP date 5 minutes from now>"


@pytest.fixture(autouse=True)
def _wall_clock() -> None:
    CLOCK.now = datetime.now(UTC).replace(microsecond=0)


BODY = json.dumps({"event": "cart_abandoned", "customer": "c_1", "value": 42.5})


def a_hook(url: str = "crm", body: str = BODY, step: str = "2") -> Delivery:
    return Delivery(
        key=f"j_0123abcd:{step}",
        campaign="abandoned-cart",
        journey="j_0123abcd",
        step=step,
        channel="webhook",
        action=DeliveryAction.SEND,
        due_at=CLOCK.now,
        recipient=Recipient(customer_id="c_1"),
        fields={"url": url, "body": body},
    )


def build(
    root: Path,
    urls: dict[str, str],
    secret: str = SECRET,
    **settings: Any,
) -> HttpWebhook:
    config = {"provider": "http", "urls": urls, "secret_env": "HOOK_SECRET", "timeout": 2}
    context = ProviderContext("webhook", root, {"HOOK_SECRET": secret})
    built = http_provider({**config, **settings}, context)
    assert isinstance(built, HttpWebhook)
    return HttpWebhook(built.target, clock=CLOCK, wall_clock=CLOCK)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_signed_json_post_is_delivered(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        urls = {"crm": f"{hook.url}/hooks/followup?source=shop"}
        provider = build(tmp_path, urls, headers={"X-Source": "followup"})
        outcome = provider.deliver(a_hook())
    assert outcome == DeliveryOutcome(DeliveryStatus.DELIVERED, "crm: 200 OK")
    assert not provider.idempotent
    [request] = hook.receiver.requests
    assert request.verified
    assert (request.method, request.path) == ("POST", "/hooks/followup?source=shop")
    assert request.body == BODY.encode()
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "j_0123abcd:2"
    assert headers["X-Followup-Timestamp"] == str(int(CLOCK.now.timestamp()))
    assert headers["X-Followup-Signature"].startswith("v1=")
    assert headers["User-Agent"] == "followup-webhook/1"
    assert headers["X-Source"] == "followup"


def test_a_text_body_goes_as_plain_text(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        provider = build(tmp_path, {"slack": hook.url})
        outcome = provider.deliver(a_hook("slack", body="Ann left 2 items — €42"))
    assert outcome.status is DeliveryStatus.DELIVERED
    [request] = hook.receiver.requests
    assert request.verified and request.path == "/"
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert request.body.decode() == "Ann left 2 items — €42"


def test_a_receiver_with_another_secret_refuses_it_for_good(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        outcome = build(tmp_path, {"crm": hook.url}, secret="not-the-receivers").deliver(a_hook())
    assert outcome == DeliveryOutcome(DeliveryStatus.FAILED, "crm: 401 Unauthorized: bad signature")
    assert [r.verified for r in hook.receiver.requests] == [False]
    assert "not-the-receivers" not in outcome.detail


@pytest.mark.parametrize(
    ("reply", "status", "retry_in", "detail"),
    [
        (Reply(429, {"Retry-After": "120"}), "failed", 120, "crm: 429 Too Many Requests"),
        (Reply(429, {"Retry-After": IN_5_MINUTES}), "failed", 300, "crm: 429 Too Many Requests"),
        (Reply(503, body="maintenance"), "failed", 60, "crm: 503 Service Unavailable: maintenance"),
        (Reply(500, body="boom"), "failed", 60, "crm: 500 Internal Server Error: boom"),
        (Reply(408), "failed", 60, "crm: 408 Request Timeout"),
        (Reply(400, body="no field x"), "failed", None, "crm: 400 Bad Request: no field x"),
        (Reply(404), "failed", None, "crm: 404 Not Found"),
        (
            Reply(301, {"Location": "https://crm.example.com/v2"}),
            "failed",
            None,
            "redirected to https://crm.example.com/v2; put the final URL in providers.webhook.urls",
        ),
        (Reply(action="stall"), "unknown", None, "no answer came (timed out)"),
        (
            Reply(action="reset"),
            "unknown",
            None,
            "the receiver may have acted, so it is not resent",
        ),
    ],
    ids=lambda value: value.action or value.status if isinstance(value, Reply) else None,
)
def test_each_answer_has_its_outcome_and_the_post_went_out_once(
    tmp_path: Path, reply: Reply, status: str, retry_in: int | None, detail: str
) -> None:
    if reply.headers.get("Retry-After") == IN_5_MINUTES:
        later = format_datetime(CLOCK.now + timedelta(minutes=5), usegmt=True)
        reply = Reply(reply.status, {"Retry-After": later})
    with webhook_receiver() as hook:
        hook.receiver.replies.append(reply)
        provider = build(tmp_path, {"crm": hook.url}, timeout=0.5)
        outcome = provider.deliver(a_hook())
        after = provider.deliver(a_hook(step="3"))  # the receiver healthy again
    assert outcome.status.value == status, outcome.detail
    assert detail in outcome.detail
    expected = CLOCK.now + timedelta(seconds=retry_in) if retry_in is not None else None
    assert outcome.retry_at == expected
    assert after.status is DeliveryStatus.DELIVERED
    keys = [r.headers["Idempotency-Key"] for r in hook.receiver.requests]
    assert keys == ["j_0123abcd:2", "j_0123abcd:3"]  # each sent once, none lost
    assert all(r.verified for r in hook.receiver.requests)


def test_a_receiver_that_dedupes_gets_a_timed_out_post_again(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        hook.receiver.replies.append(Reply(action="stall"))
        provider = build(tmp_path, {"crm": hook.url}, timeout=0.5, receiver_dedupes=True)
        first = provider.deliver(a_hook())
        again = provider.deliver(a_hook())
    assert provider.idempotent
    assert first.status is DeliveryStatus.FAILED
    assert first.retry_at == CLOCK.now + timedelta(minutes=1)
    assert "the receiver dedupes, so it is sent again" in first.detail
    assert again.status is DeliveryStatus.DELIVERED
    keys = [r.headers["Idempotency-Key"] for r in hook.receiver.requests]
    assert keys == ["j_0123abcd:2", "j_0123abcd:2"]  # the same key: the receiver keeps one


def test_a_receiver_that_is_down_is_retried(tmp_path: Path) -> None:
    port = closed_port()
    provider = build(tmp_path, {"crm": f"http://127.0.0.1:{port}/in"})
    outcome = provider.deliver(a_hook())
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.retry_at == CLOCK.now + timedelta(minutes=1)
    assert outcome.detail == f"crm: cannot send to http://127.0.0.1:{port}: Connection refused"


def test_https_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with webhook_receiver(ca=ca) as hook:
        assert hook.url.startswith("https://")
        trusted = build(tmp_path, {"crm": hook.url}, ca_file="ca.pem").deliver(a_hook())
        untrusted = build(tmp_path, {"crm": hook.url}).deliver(a_hook(step="3"))
    assert trusted.status is DeliveryStatus.DELIVERED
    assert [r.headers["Idempotency-Key"] for r in hook.receiver.requests] == ["j_0123abcd:2"]
    assert (untrusted.status, untrusted.retry_at) == (DeliveryStatus.FAILED, None)
    assert "TLS certificate not trusted" in untrusted.detail


def test_check_connects_and_sends_no_request(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with webhook_receiver() as plain, webhook_receiver(ca=ca) as tls:
        urls = {"crm": f"{plain.url}/in", "erp": f"{tls.url}/in"}
        result = build(tmp_path, urls, ca_file="ca.pem").check()
        down = build(tmp_path, {**urls, "old": f"http://127.0.0.1:{closed_port()}/"}).check()
    assert result.ok and result.detail == "connected to 2 url(s): crm, erp"
    assert plain.receiver.requests == [] and tls.receiver.requests == []
    assert not down.ok
    assert "old (http://127.0.0.1:" in down.detail and "Connection refused" in down.detail
    assert "erp" in down.detail  # not trusted without the CA file


def test_the_default_webhook_provider_fails_each_delivery_naming_the_url(tmp_path: Path) -> None:
    providers = build_providers(tmp_path, {}, environ={})
    provider = providers["webhook"]
    assert isinstance(provider, HttpWebhook)
    outcome = provider.deliver(a_hook("crm"))
    assert outcome == DeliveryOutcome(
        DeliveryStatus.FAILED, "no url named crm; add it under providers.webhook.urls"
    )
    check = provider.check()
    assert check.ok and "providers.webhook.urls" in check.detail


def test_an_unknown_url_name_fails_for_good(tmp_path: Path) -> None:
    provider = build(tmp_path, {"crm": "https://crm.example.com/in"})
    outcome = provider.deliver(a_hook("erp"))
    assert (outcome.status, outcome.retry_at) == (DeliveryStatus.FAILED, None)
    assert outcome.detail == "no url named erp; add it under providers.webhook.urls"


def test_a_pass_ahead_of_the_wall_clock_dates_retries_on_its_clock_and_signs_real_time(
    tmp_path: Path,
) -> None:
    """``followup tick --now`` a year ahead: the retry is dated on the pass's clock (else it is
    due at once and every attempt burns in one pass); the receiver, checking the signature
    against its own clock, still takes the request."""
    ahead = CLOCK.now + timedelta(days=365)
    context = ProviderContext("webhook", tmp_path, {"K": SECRET}, clock=lambda: ahead)
    with webhook_receiver() as hook:
        hook.receiver.replies.append(Reply(503))
        config = {"provider": "http", "urls": {"crm": hook.url}, "secret_env": "K"}
        outcome = http_provider(config, context).deliver(a_hook())
    assert (outcome.status, outcome.retry_at) == (
        DeliveryStatus.FAILED,
        ahead + timedelta(minutes=1),
    )
    assert [r.verified for r in hook.receiver.requests] == [True]
