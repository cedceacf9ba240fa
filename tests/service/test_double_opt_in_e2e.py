"""Double opt-in end to end on the durable engine: a signup posted to the service sends the
confirmation email (to the file outbox, past the caps, with no unsubscribe header), its link
asks before it confirms, the confirmation is recorded with the proof of consent, the welcome
series triggered on it goes out, and the decisions are simulate's for the same events. A link
past its 7 days, or a forged one, confirms nothing."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.service.app import create_app
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.storage.tables import events, outbox
from tests.conftest import FIXED_NOW
from tests.durable.harness import Clock, decision_lines, plan_lines, write_messages
from tests.e2e.test_double_opt_in_cli import project

POLICIES = {
    "double_opt_in": ["email"],
    "frequency_caps": {"email": [{"max": 1, "per": "1d"}]},
}
AGENT = "Mozilla/5.0 (X11; Linux x86_64) confirm-test"


def _signup(user: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"{user}-1",
            "timestamp": (FIXED_NOW - timedelta(minutes=5)).isoformat(),
            "traits": {"email": f"{user}@example.com", "firstName": user.title()},
        },
        {
            "type": "track",
            "event": "Subscribed",
            "userId": user,
            "messageId": f"{user}-2",
            "timestamp": FIXED_NOW.isoformat(),
            "properties": {"list": "newsletter"},
        },
    ]


def _read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _link(root: Path, user: str) -> tuple[EmailMessage, str]:
    (message,) = [
        found
        for found in map(_read, sorted((root / "outbox" / "email").glob("*.eml")))
        if f"<{user}@example.com>" in str(found["To"]) and "confirm" in str(found["Subject"])
    ]
    html = message.get_body(("html",))
    assert html is not None
    found = re.search(r'href="([^"]+/confirm/[^"]+)"', html.get_content())
    assert found is not None
    return message, found.group(1)


def test_a_signup_is_confirmed_by_its_link_and_starts_the_welcome(
    database_url: str, tmp_path: Path
) -> None:
    root = project(tmp_path, "")
    clock = Clock(FIXED_NOW)
    config = ProjectConfig.model_validate({"database_url": database_url, "policies": POLICIES})
    service_engine = Followup(Project(config, root), clock)
    _, key = KeyStore(service_engine.engine).create("shop", None, clock())
    server = BackgroundServer(create_app(service_engine, environ={})).start()
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"public_url": server.url})}
    )
    engine = Followup(Project(config, root), clock)
    try:
        durable = DurableProject(engine)
        with httpx.Client(base_url=server.url, auth=(key, "")) as client:
            answer = client.post("/v1/batch", json={"batch": _signup("ann") + _signup("bo")})
        assert answer.json() == {"success": True, "accepted": 4, "duplicates": 0}
        clock.now = FIXED_NOW + timedelta(minutes=1)
        durable.run_once()

        message, link = _link(root, "ann")
        assert link.startswith(f"{server.url}/confirm/")
        assert message["List-Unsubscribe"] is None  # nothing to unsubscribe from yet
        assert message["Subject"] == "Please confirm your subscription"
        assert engine.profile("ann").state.consent.email is False  # type: ignore[union-attr]

        page = httpx.get(link, headers={"User-Agent": "SafeLinks scanner"})
        assert page.status_code == 200
        assert '<form method="post">' in page.text and "newsletter" in page.text
        assert engine.profile("ann").state.consent.email is False  # type: ignore[union-attr]

        clock.now = FIXED_NOW + timedelta(hours=2)
        done = httpx.post(link, headers={"User-Agent": AGENT})
        assert done.status_code == 200 and "Subscription confirmed" in done.text
        assert httpx.post(link).status_code == 200  # a second click is a duplicate
        assert engine.profile("ann").state.consent.email is True  # type: ignore[union-attr]
        with engine.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    events.c.message_id,
                    events.c.user_id,
                    events.c.timestamp,
                    events.c.payload,
                    events.c.source,
                ).where(events.c.name == "Subscription Confirmed")
            ).all()
        ((message_id, user_id, at, payload, source),) = rows
        assert (user_id, source) == ("ann", "confirm")
        assert at.replace(tzinfo=clock.now.tzinfo) == clock.now
        assert payload["properties"] == {
            "channel": "email",
            "list": "newsletter",
            "source": "confirmation_link",
            "signed_up_at": "2024-06-01T12:00:00Z",
        }
        assert payload["context"] == {"ip": "127.0.0.1", "userAgent": AGENT}

        clock.now = FIXED_NOW + timedelta(hours=3)
        durable.run_once()
        welcomes = [
            found
            for found in map(_read, sorted((root / "outbox" / "email").glob("*.eml")))
            if found["Subject"] == "Welcome"
        ]
        assert [str(found["To"]) for found in welcomes] == ["Ann <ann@example.com>"]
        assert welcomes[0]["List-Unsubscribe"] is not None

        # the same decisions as simulate makes for the same events
        confirmed = {
            "type": "track",
            "event": "Subscription Confirmed",
            "userId": user_id,
            "messageId": message_id,
            "timestamp": (FIXED_NOW + timedelta(hours=2)).isoformat(),
            **payload,
        }
        messages = _signup("ann") + _signup("bo") + [confirmed]
        path = write_messages(tmp_path / "events.jsonl", messages)
        parsed = [e for r in read_jsonl(path) for e in getattr(r, "events", [])]
        campaigns = load_campaigns([root / "campaigns"]).require().values()
        expected = plan_text(simulate(campaigns, parsed, config, until=clock.now))
        assert decision_lines(engine.engine) == plan_lines(expected)

        # bo's link, past its 7 days, confirms nothing
        _, late = _link(root, "bo")
        clock.now = FIXED_NOW + timedelta(days=7)
        expired = httpx.post(late)
        assert expired.status_code == 400 and "expired" in expired.text
        forged = httpx.post(late[:-3] + ("AAA" if not late.endswith("AAA") else "BBB"))
        assert forged.status_code == 400
        assert engine.profile("bo").state.consent.email is False  # type: ignore[union-attr]
    finally:
        server.stop()
        engine.close()
        service_engine.close()


def _track(user: str, n: int, at: datetime, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": at.isoformat(),
        "properties": properties,
    }


def test_a_stale_confirmation_is_not_sent_and_an_old_link_subscribes_no_one(
    tmp_path: Path,
) -> None:
    """Found by review: a confirmation decided at the signup but delivered later went out to
    a customer who had unsubscribed or confirmed meanwhile, or with a link already expired;
    and the old link of an unsubscribed customer subscribed them again."""
    root = project(tmp_path, "")
    clock = Clock(FIXED_NOW)
    url = f"sqlite:///{tmp_path / 'f.db'}"
    config = ProjectConfig.model_validate({"database_url": url, "policies": POLICIES})
    engine = Followup(Project(config, root), clock)
    server = BackgroundServer(create_app(engine, environ={})).start()
    try:
        config = config.model_copy(
            update={"server": config.server.model_copy(update={"public_url": server.url})}
        )
        live = Followup(Project(config, root), clock)
        t = FIXED_NOW
        messages = [
            *_signup("kim"),  # unsubscribes a minute after signing up
            _track("kim", 3, t + timedelta(minutes=1), "Unsubscribed"),
            *_signup("lu"),  # confirms (elsewhere) before the pass
            _track("lu", 3, t + timedelta(minutes=2), "Subscription Confirmed"),
            *_signup("old"),
            *_signup("ann"),
        ]
        for n, days in (("old-1", 9), ("old-2", 8)):  # a backfilled signup
            late = next(m for m in messages if m["messageId"] == n)
            late["timestamp"] = (t - timedelta(days=days)).isoformat()
        path = write_messages(tmp_path / "events.jsonl", messages)
        live.ingestor.ingest(list(read_jsonl(path)))
        clock.now = t + timedelta(minutes=5)
        DurableProject(live).run_once()
        with live.engine.connect() as conn:
            rows = {
                row.customer_id: (row.status, (row.detail or "").split(":")[0])
                for row in conn.execute(
                    sa.select(outbox).where(outbox.c.campaign_id == "double-opt-in")
                )
            }
        by_user = {live.customer_id(user): user for user in ("kim", "lu", "old", "ann")}
        found = {by_user[customer]: outcome for customer, outcome in rows.items()}
        assert found["kim"] == ("skipped", "unsubscribed")
        assert found["lu"] == ("skipped", "already_consented")
        assert found["old"] == ("skipped", "expired")
        assert found["ann"][0] == "delivered"

        # ann's link, after she unsubscribed, subscribes no one
        _, link = _link(root, "ann")
        unsubscribe = _track("ann", 9, clock.now + timedelta(minutes=1), "Unsubscribed")
        live.ingest_messages([unsubscribe])
        clock.now += timedelta(minutes=2)
        refused = httpx.post(link)
        assert refused.status_code == 400 and "unsubscribed after signing up" in refused.text
        assert live.profile("ann").state.consent.email is False  # type: ignore[union-attr]
        live.close()
    finally:
        server.stop()
        engine.close()


def test_a_confirmation_is_no_touch_of_the_reports(tmp_path: Path) -> None:
    """Found by review: the confirmation email took the credit of orders (first touch gave it
    all). It is transactional: its confirmations count, not its sends."""
    root = project(tmp_path, "")
    messages = [
        *_signup("cat"),
        _track("cat", 3, FIXED_NOW + timedelta(hours=5), "Order Completed", revenue=50),
    ]
    write_messages(root / "events.jsonl", messages)
    (root / "followup.yaml").write_text("policies:\n  double_opt_in: [email]\n")
    from tests.e2e.cli import run_followup

    result = run_followup(root, "simulate", "--events", "events.jsonl", "--report", "r.json")
    assert result.returncode == 0, result.stderr
    report = orjson.loads((root / "r.json").read_bytes())
    (opt_in,) = [c for c in report["campaigns"] if c["campaign"] == "double-opt-in"]
    assert opt_in["touches"] == {} and opt_in["attributed_revenue"] == 0.0
    assert opt_in["steps"][0]["sent"] == 1
    assert report["orders"]["attributed_count"] == 0.0
