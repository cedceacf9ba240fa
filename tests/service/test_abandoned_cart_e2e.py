"""End to end over HTTP: events posted to the service start the abandoned-cart campaign on the
durable engine (a clock the test moves), the email lands in the file outbox with a working
unsubscribe link, and following it (RFC 8058 POST) stops the journey's next step."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.identity import customer_id_for
from engine.journeys.context import is_held_out
from engine.service.app import create_app
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.storage.tables import decisions, outbox
from tests.conftest import FIXED_NOW
from tests.durable.harness import Clock, make_project


def _shoppers() -> list[str]:
    """Two users outside the campaign's holdout."""
    return [
        user
        for user in (f"gus{n}" for n in range(50))
        if not is_held_out("abandoned-cart", customer_id_for(f"user:{user}"), 0.1)
    ][:2]


def _cart(user: str) -> list[dict[str, object]]:
    return [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"{user}-1",
            "timestamp": (FIXED_NOW - timedelta(days=1)).isoformat(),
            "traits": {
                "email": f"{user}@example.com",
                "firstName": "Gus",
                "consent": {"email": True, "ads": True, "call": True},
            },
        },
        {
            "type": "track",
            "event": "Product Added",
            "userId": user,
            "messageId": f"{user}-2",
            "timestamp": FIXED_NOW.isoformat(),
            "properties": {"product_id": "p9", "name": "Lamp", "price": 150},
        },
    ]


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def _read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_http_events_trigger_the_campaign_and_the_link_stops_it(tmp_path: Path) -> None:
    root = make_project(tmp_path, ["abandoned_cart"])
    database_url = f"sqlite:///{root / 'followup.db'}"
    clock = Clock(FIXED_NOW)
    service_engine = Followup(Project(ProjectConfig(database_url=database_url), root), clock)
    _, key = KeyStore(service_engine.engine).create("shop", None, clock())
    server = BackgroundServer(create_app(service_engine, environ={})).start()
    config = ProjectConfig.model_validate(
        {"database_url": database_url, "server": {"public_url": server.url}}
    )
    engine = Followup(Project(config, root), clock)
    try:
        durable = DurableProject(engine)
        user, control = _shoppers()  # the control shopper does not unsubscribe
        with httpx.Client(base_url=server.url, auth=(key, "")) as client:
            answer = client.post("/v1/batch", json={"batch": _cart(user) + _cart(control)})
        assert answer.json() == {"success": True, "accepted": 4, "duplicates": 0}

        durable.run_once()  # enters the journey, waits 1h
        clock.now = FIXED_NOW + timedelta(hours=1, minutes=1)
        durable.runtime.tick()  # decides the email; the outbox is not delivered yet
        clock.now += timedelta(minutes=10)
        assert _metric(server.url, "followup_outbox_lag_seconds") >= 600
        assert _metric(server.url, "followup_sends", channel="email", outcome="pending") == 2
        durable.dispatcher.dispatch()  # sends the emails
        assert _metric(server.url, "followup_sends", channel="email", outcome="delivered") == 2
        assert _metric(server.url, "followup_outbox_lag_seconds") == 0
        assert _metric(server.url, "followup_journeys_active", campaign="abandoned-cart") == 2
        (message,) = [
            found
            for found in map(_read, sorted((root / "outbox" / "email").glob("*.eml")))
            if found["To"] == f"Gus <{user}@example.com>"
        ]
        assert message["To"] == f"Gus <{user}@example.com>"
        header = re.fullmatch(r"<(.+)>", str(message["List-Unsubscribe"]))
        assert header is not None
        link = header.group(1)
        assert link.startswith(f"{server.url}/unsubscribe/")
        html = message.get_body(("html",))
        assert html is not None
        assert f'href="{link}"' in html.get_content()

        page = httpx.get(link)  # the link in the body: a confirmation page
        assert page.status_code == 200
        assert '<form method="post">' in page.text
        clock.now += timedelta(minutes=5)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        one_click = httpx.post(link, content=b"List-Unsubscribe=One-Click", headers=form)
        assert one_click.status_code == 200
        profile = engine.profile(user)
        assert profile is not None
        assert profile.state.consent.email is False

        clock.now = FIXED_NOW + timedelta(days=1, hours=2)
        durable.run_once()  # the ads step would be due now

        def sends(customer: str) -> list[tuple[str, str, str]]:
            query = (
                sa.select(outbox.c.channel, outbox.c.action, outbox.c.status)
                .where(outbox.c.customer_id == customer_id_for(f"user:{customer}"))
                .order_by(outbox.c.id)
            )
            with engine.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(query)]

        assert sends(user) == [("email", "send", "delivered")]  # the journey ended there
        assert sends(control) == [
            ("email", "send", "delivered"),
            ("ads", "audience_add", "delivered"),
        ]
        query = sa.select(decisions.c.action, decisions.c.reason).where(
            decisions.c.customer_id == customer_id_for(f"user:{user}")
        )
        with engine.engine.connect() as conn:
            assert list(conn.execute(query.order_by(decisions.c.id))) == [
                ("enter", None),
                ("send", None),
                ("exit", "exit_event"),
            ]
    finally:
        server.stop()
        engine.close()
        service_engine.close()
