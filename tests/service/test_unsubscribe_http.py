"""``/unsubscribe/<token>`` over real HTTP: the confirmation page, RFC 8058 one-click, the
consent it records through ingest (merged customers too), and 400 pages for bad tokens."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from engine.identity import customer_id_for
from engine.storage.tables import customers, events
from engine.unsubscribe import UnsubscribeLinks, signing_key
from tests.service.conftest import Running


def _links(service: Running) -> UnsubscribeLinks:
    root = service.followup.project.root
    return UnsubscribeLinks(signing_key(root), service.url)


def _consenting(service: Running, user: str, email: str) -> None:
    with service.client() as client:
        answer = client.post(
            "/v1/identify",
            json={
                "userId": user,
                "messageId": f"{user}-consent",
                "timestamp": "2024-05-01T00:00:00Z",
                "traits": {"email": email, "consent": {"email": True}},
            },
        )
    assert answer.status_code == 200


def _consent(service: Running, reference: str) -> bool:
    profile = service.followup.profile(reference)
    assert profile is not None
    return profile.state.consent.email


def test_get_confirms_and_post_one_click_unsubscribes(service: Running) -> None:
    _consenting(service, "ann", "ann@example.com")
    url = _links(service).url(customer_id_for("user:ann"), "email", service.clock())
    page = httpx.get(url)
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert _consent(service, "ann") is True  # a GET (a link scanner) changes nothing

    done = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert "no more email messages" in done.text
    assert _consent(service, "ann") is False
    again = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    with service.followup.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.name, events.c.user_id, events.c.payload, events.c.source).where(
                events.c.name == "Unsubscribed"
            )
        ).all()
    assert len(rows) == 1  # the second click was a duplicate
    name, user_id, payload, source = rows[0]
    assert (name, user_id, source) == ("Unsubscribed", "ann", "unsubscribe")
    assert payload["properties"]["channel"] == "email"


def test_an_old_link_after_a_new_signup_unsubscribes_again(service: Running) -> None:
    """The customer unsubscribed, signed up again, then clicks the link of an old email: the
    page says they are unsubscribed, so they are (a duplicate of the first click would have
    left them subscribed). Clicks while unsubscribed record nothing."""
    _consenting(service, "eve", "eve@example.com")
    url = _links(service).url(customer_id_for("user:eve"), "email", service.clock())
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _consent(service, "eve") is False
    service.clock.now += timedelta(days=1)
    signup = {
        "userId": "eve",
        "event": "Subscribed",
        "messageId": "eve-again",
        "timestamp": service.clock().isoformat(),
        "properties": {"list": "newsletter"},
    }
    with service.client() as client:
        assert client.post("/v1/track", json=signup).status_code == 200
    assert _consent(service, "eve") is True
    service.clock.now += timedelta(days=1)
    for _ in range(2):  # a double click
        done = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "no more email messages" in done.text
    assert _consent(service, "eve") is False
    with service.followup.engine.connect() as conn:
        unsubscribes = conn.scalar(
            sa.select(sa.func.count()).where(events.c.name == "Unsubscribed")
        )
    assert unsubscribes == 2


def test_a_merged_customers_link_still_works(backend_service: Running) -> None:
    """A link made for a profile that was merged later unsubscribes the survivor."""
    service = backend_service
    _consenting(service, "bo", "bo@example.com")
    anonymous = customer_id_for("anon:device-7")
    with service.client() as client:
        visit = {"anonymousId": "device-7", "messageId": "v1", "timestamp": "2024-04-01T00:00:00Z"}
        assert client.post("/v1/page", json=visit).status_code == 200
        link = {"userId": "bo", "previousId": "device-7", "messageId": "l1"}
        assert client.post("/v1/alias", json=link).status_code == 200
    with service.followup.engine.connect() as conn:
        merged = dict(conn.execute(sa.select(customers.c.id, customers.c.merged_into)).all())
    gone = next(cid for cid, into in merged.items() if into is not None)
    assert gone in (anonymous, customer_id_for("user:bo"))
    url = _links(service).url(gone, "email", service.clock())
    assert httpx.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200
    assert _consent(service, "bo") is False


def test_bad_tokens_get_a_400_page(service: Running) -> None:
    _consenting(service, "cy", "cy@example.com")
    links = _links(service)
    customer = customer_id_for("user:cy")
    expired = links.token(customer, "email", service.clock() - links.ttl - timedelta(seconds=1))
    forged = UnsubscribeLinks(b"another key", service.url).token(customer, "email", service.clock())
    valid = links.token(customer, "email", service.clock())
    tampered = "x" + valid[1:]
    unknown = links.token("c_0000000000000000", "email", service.clock())
    odd_channel = links.token(customer, "pigeon", service.clock())
    for token in (expired, forged, tampered, unknown, odd_channel, "garbage", "a.b", "%00"):
        for method in ("GET", "POST"):
            answer = httpx.request(method, f"{service.url}/unsubscribe/{token}")
            assert answer.status_code == 400, (method, token, answer.text)
            assert "text/html" in answer.headers["content-type"]
    assert _consent(service, "cy") is True
