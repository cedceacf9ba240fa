"""Inbound webhooks over real HTTP: Mailchimp's URL check and list events, and signed call
outcomes (signature, clock skew, missing secrets)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project
from engine.service.app import create_app
from engine.service.server import BackgroundServer
from engine.service.webhooks import signature
from engine.storage.tables import events
from tests.service.conftest import CALLS_SECRET, MAILCHIMP_SECRET, Running, project_config


def _stored(service: Running, name: str) -> list[sa.Row[tuple[object, ...]]]:
    query = sa.select(events).where(events.c.name == name)
    with service.followup.engine.connect() as conn:
        return list(conn.execute(query))


def test_mailchimp_url_check_and_unsubscribe(service: Running) -> None:
    hook = f"{service.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}"
    assert httpx.get(hook).status_code == 200
    assert httpx.get(f"{service.url}/webhooks/mailchimp/wrong").status_code == 404
    with service.client() as client:
        consent = {
            "timestamp": "2024-05-01T00:00:00Z",
            "traits": {"email": "dee@example.com", "consent": {"email": True}},
        }
        assert client.post("/v1/identify", json={"userId": "dee", **consent}).status_code == 200
    form = {
        "type": "unsubscribe",
        "fired_at": "2024-05-02 10:00:00",
        "data[action]": "unsub",
        "data[reason]": "manual",
        "data[email]": "Dee@Example.com",
        "data[list_id]": "a6b5da1054",
    }
    assert httpx.post(f"{service.url}/webhooks/mailchimp/wrong", data=form).status_code == 404
    answer = httpx.post(hook, data=form)
    assert answer.status_code == 200, answer.text
    assert httpx.post(hook, data=form).json()["duplicates"] == 1  # a resend dedupes
    profile = service.followup.profile("dee")
    assert profile is not None
    assert profile.state.consent.email is False
    (row,) = _stored(service, "Unsubscribed")
    assert row.payload["properties"] == {
        "channel": "email",
        "source": "mailchimp_unsubscribe",
        "list_id": "a6b5da1054",
        "reason": "manual",
    }
    assert row.timestamp.isoformat() == "2024-05-02T10:00:00+00:00"


def test_mailchimp_profile_upemail_and_cleaned(service: Running) -> None:
    hook = f"{service.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}"
    with service.client() as client:
        traits = {"email": "eve@example.com", "consent": {"email": True}}
        identify = {"userId": "eve", "timestamp": "2024-05-01T00:00:00Z", "traits": traits}
        assert client.post("/v1/identify", json=identify).status_code == 200
    profile = {
        "type": "profile",
        "fired_at": "2024-05-02 09:00:00",
        "data[email]": "eve@example.com",
        "data[merges][FNAME]": "Eve",
        "data[merges][LNAME]": "Ng",
    }
    assert httpx.post(hook, data=profile).status_code == 200
    upemail = {
        "type": "upemail",
        "fired_at": "2024-05-02 09:30:00",
        "data[old_email]": "eve@example.com",
        "data[new_email]": "eve.ng@example.com",
    }
    assert httpx.post(hook, data=upemail).status_code == 200
    found = service.followup.profile("eve")
    assert found is not None
    assert (found.state.first_name, found.state.last_name) == ("Eve", "Ng")
    assert found.state.email == "eve.ng@example.com"
    assert service.followup.customer_id("eve.ng@example.com") == found.id
    cleaned = {
        "type": "cleaned",
        "fired_at": "2024-05-03 08:00:00",
        "data[email]": "eve.ng@example.com",
        "data[reason]": "hard",
    }
    assert httpx.post(hook, data=cleaned).status_code == 200
    found = service.followup.profile("eve")
    assert found is not None
    assert found.state.consent.email is False
    unknown = httpx.post(hook, data={"type": "campaign"})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "type"


def _signed(body: bytes, at: int | None = None, secret: str = CALLS_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    return {
        "X-Followup-Timestamp": stamp,
        "X-Followup-Signature": signature(secret, stamp, body),
        "Content-Type": "application/json",
    }


def test_signed_call_outcomes(service: Running) -> None:
    url = f"{service.url}/webhooks/calls"
    body = orjson.dumps(
        {
            "call_id": "call-1",
            "outcome": "ordered",
            "userId": "fay",
            "phone": "+14155550100",
            "timestamp": "2024-05-03T15:00:00Z",
            "duration_seconds": 95,
            "list": "high-value-carts",
        }
    )
    answer = httpx.post(url, content=body, headers=_signed(body))
    assert answer.status_code == 200, answer.text
    assert httpx.post(url, content=body, headers=_signed(body)).json()["duplicates"] == 1
    (row,) = _stored(service, "Call Completed")
    assert (row.message_id, row.user_id, row.channel) == ("call:call-1", "fay", "call")
    assert row.payload["properties"]["outcome"] == "ordered"
    found = service.followup.profile("fay")
    assert found is not None
    assert found.state.phone == "+14155550100"

    other = orjson.dumps({"call_id": "call-2", "outcome": "no_answer", "userId": "fay"})
    rejected = [
        httpx.post(url, content=other, headers=_signed(body)),  # signature of another body
        httpx.post(url, content=other, headers=_signed(other, secret="not the secret")),
        httpx.post(url, content=other, headers=_signed(other, at=int(time.time()) - 330)),
        httpx.post(
            url, content=other, headers=_signed(other, at=int(time.time()) + 330)
        ),  # clear of the 300 s tolerance
        httpx.post(url, content=other, headers={"Content-Type": "application/json"}),
    ]
    assert [r.status_code for r in rejected] == [401] * 5
    missing = orjson.dumps({"userId": "fay"})
    invalid = httpx.post(url, content=missing, headers=_signed(missing))
    assert invalid.status_code == 400
    assert [p["field"] for p in invalid.json()["errors"]] == ["call_id", "outcome"]
    assert len(_stored(service, "Call Completed")) == 1


def test_webhooks_without_secrets_do_not_exist(tmp_path: Path) -> None:
    followup = Followup(Project(project_config(f"sqlite:///{tmp_path / 'f.db'}"), tmp_path))
    try:
        with BackgroundServer(create_app(followup, environ={})) as server:
            body = b'{"call_id": "c", "outcome": "x", "userId": "u"}'
            calls = httpx.post(f"{server.url}/webhooks/calls", content=body, headers=_signed(body))
            check = httpx.get(f"{server.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}")
    finally:
        followup.close()
    assert calls.status_code == 404
    assert check.status_code == 404
