"""``followup status`` and ``followup explain`` after the real flow: ingest the customer stories,
``followup tick``, then ask what happened and why, as an operator would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.drive.outbox_status import UNKNOWN_DETAIL
from engine.storage.tables import outbox
from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories" / "events.jsonl"
OLD_SUBJECT = "How do you like your order, {{ customer.first_name or 'friend' }}?"
NEW_SUBJECT = "Your order, {{ customer.first_name or 'friend' }}: a quick review?"


def followup(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``followup ARGS`` in ``cwd``."""
    return run_followup(cwd, *args)


def ok(cwd: Path, *args: str) -> str:
    result = followup(cwd, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def write_jsonl(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project folder with the example campaigns and templates, the stories ingested and
    one ``followup tick`` run at 2024-05-20, when every story's journey has finished."""
    project = tmp_path / "shop"
    project.mkdir()
    shutil.copytree(ROOT / "campaigns", project / "campaigns")
    shutil.copytree(ROOT / "templates", project / "templates")
    ok(project, "ingest", str(STORIES))
    ok(project, "tick", "--now", "2024-05-20T00:00:00Z")
    return project


def versions(project: Path) -> dict[str, str]:
    loaded = load_campaigns([project / "campaigns"])
    assert not loaded.problems
    return {cid: found.version for cid, found in loaded.campaigns.items()}


def status_of(project: Path) -> dict[str, dict[str, Any]]:
    report = orjson.loads(ok(project, "status", "--json"))
    return {c["campaign"]: c for c in report["campaigns"]}


def test_status_after_the_stories(shop: Path) -> None:
    report = orjson.loads(ok(shop, "status", "--json"))
    by_id = {c["campaign"]: c for c in report["campaigns"]}
    assert {cid: c["version"] for cid, c in by_id.items()} == versions(shop)
    assert {c["status"] for c in by_id.values()} == {"active"}
    journeys = {cid: c["journeys"] for cid, c in by_id.items()}
    assert journeys["abandoned-cart"] == {
        "active": 0,
        "active_on_older_versions": 0,
        "completed": 1,  # Ann's
        "exited": 1,  # Bob ordered
    }
    assert journeys["post-purchase"]["completed"] == 2
    assert journeys["call-center-follow-up"]["completed"] == 1
    # win-back has booked a look for the customers who ordered, when their 90 days are over
    then = orjson.loads(ok(shop, "status", "--json", "--now", "2024-05-20T00:00:00Z"))
    assert then["segment_looks"]["due"] == 0
    assert then["segment_looks"]["next_at"] > "2024-05-20T00:00:00Z"
    assert then["next_segment_sweep_at"] == "2024-05-20T01:00:00Z"
    assert report["segment_looks"]["due"] > 0  # today, years later, they are all due
    assert journeys["welcome-series"]["completed"] == 1
    assert by_id["abandoned-cart"]["outbox"] == {
        "pending": 0,
        "sending": 0,
        "delivered": 5,  # 2 emails, Ann's call, Bob's ad audience add and removal
        "skipped": 0,
        "failed": 0,
        "unknown": 0,
    }
    assert by_id["post-purchase"]["outbox"]["delivered"] == 4
    assert by_id["call-center-follow-up"]["outbox"]["delivered"] == 0  # Dan: no consent
    assert by_id["weekly-newsletter"]["next_tick_at"] == "2024-05-20T07:00:00Z"
    assert report["outbox"]["delivered"] == 10
    assert report["inbox"] == {"backlog": 0, "oldest_event_at": None}
    assert report["needs_check"] == [] and report["failed"]["total"] == 0

    replayed = orjson.loads(ok(shop, "status", "--json", "--now", "2024-05-20T00:00:00Z"))
    assert replayed["at"] == "2024-05-20T00:00:00Z"
    assert [c["timers"]["overdue"] for c in replayed["campaigns"]] == [0] * len(by_id)
    bad = followup(shop, "status", "--now", "yesterday")
    assert bad.returncode == 2 and "--now" in bad.stderr

    table = ok(shop, "status")
    assert "abandoned-cart" in table and "call-center-follow-up" in table
    assert "inbox: empty" in table
    assert "outbox: 10 delivered" in table
    assert "NEEDS A HUMAN CHECK" not in table


def test_explain_says_why_each_message_went_or_not(shop: Path) -> None:
    dan = ok(shop, "explain", "--customer", "dan")
    assert (
        "2024-05-07T14:00:00Z call-center-follow-up j_d965ff93a82ecf8c step 0: email skipped: "
        'no_consent (no email consent); template call_follow_up.html, subject "Thanks for your '
        'call, Dan"'
    ) in dan
    assert "2024-05-07T14:00:00Z call-center-follow-up j_d965ff93a82ecf8c entered" in dan

    ann = ok(shop, "explain", "--customer", "ann@example.com", "--campaign", "abandoned-cart")
    lines = [line.strip() for line in ann.splitlines()]
    assert lines[0] == "customer c_d89a04d4ec778ad7 (ann, ann@example.com, +14155550100)"
    assert lines[1:5] == [
        "decisions in abandoned-cart, in time order:",
        "2024-05-06T09:00:00Z abandoned-cart j_c463e1e9dd4d6e5c entered",
        (
            "2024-05-06T10:00:00Z abandoned-cart j_c463e1e9dd4d6e5c step 1: email sent "
            '(template abandoned_cart.html, subject "Ann, you left 1 item behind") '
            "— delivered 2024-05-20T00:00:00Z"
        ),
        (
            "2024-05-07T12:00:00Z abandoned-cart j_c463e1e9dd4d6e5c step 3.then.0: call sent "
            "(list high-value-carts, priority high) — delivered 2024-05-20T00:00:00Z"
        ),
    ]
    assert "weekly-newsletter" not in ann  # --campaign keeps to one campaign

    bob = orjson.loads(ok(shop, "explain", "--customer", "visitor-9", "--json"))
    assert bob["customer"]["email"] == "bob@example.com"
    texts = [d["text"] for d in bob["decisions"]]
    assert "2024-05-07T18:00:00Z abandoned-cart j_54d66638e37e8e68 exited on Order Completed" in (
        texts
    )
    removal = next(d for d in bob["decisions"] if d["action"] == "audience_remove")
    assert removal["outcome"]["key"] == "j_54d66638e37e8e68:3.else.0:remove"
    assert removal["outcome"]["status"] == "delivered"
    welcome = next(d for d in bob["decisions"] if d["campaign"] == "welcome-series")
    assert welcome["action"] == "enter"
    converted = [d for d in bob["decisions"] if d["action"] == "convert"]
    assert [(d["campaign"], d["fields"]["value"]) for d in converted] == [
        ("abandoned-cart", 24),
        ("welcome-series", 24),
    ]

    nothing = ok(shop, "explain", "--customer", "ann", "--campaign", "win-back")
    assert "no decisions recorded for this customer in win-back" in nothing
    assert "win-back: enters when `customer.orders.last_at" in nothing

    unknown = followup(shop, "explain", "--customer", "nobody@example.com")
    assert unknown.returncode == 2
    assert "no customer is known as 'nobody@example.com'" in unknown.stderr
    bogus = followup(shop, "explain", "--customer", "ann", "--campaign", "no-such-campaign")
    assert bogus.returncode == 2 and "no campaign 'no-such-campaign'" in bogus.stderr


def test_explain_a_customer_no_campaign_took(shop: Path) -> None:
    events = write_jsonl(
        shop / "eve.jsonl",
        [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": "eve",
                "messageId": "eve-1",
                "timestamp": "2024-05-20T00:00:00Z",
                "properties": {"product_id": "hat"},
            }
        ],
    )
    ok(shop, "ingest", str(events))
    before = ok(shop, "explain", "--customer", "eve")
    assert "no decisions recorded for this customer" in before
    assert "1 of the customer's events wait for the journey engine" in before
    assert "abandoned-cart: no 'Product Added' event seen for this customer" in before
    status = orjson.loads(ok(shop, "status", "--json"))
    assert status["inbox"] == {"backlog": 1, "oldest_event_at": "2024-05-20T00:00:00Z"}

    ok(shop, "tick", "--now", "2024-05-20T00:01:00Z")
    after = ok(shop, "explain", "--customer", "eve")
    assert "wait for the journey engine" not in after
    assert "the customer's events: Product Viewed ×1" in after


def test_status_shows_journeys_still_on_an_older_version(shop: Path) -> None:
    # Cara orders again: her post-purchase journey waits 3 days, on the version of today
    cara = write_jsonl(
        shop / "cara.jsonl",
        [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "cara",
                "messageId": "cara-2",
                "timestamp": "2024-05-21T09:00:00Z",
                "properties": {"order_id": "R-2", "total": 30},
            }
        ],
    )
    ok(shop, "ingest", str(cara))
    ok(shop, "tick", "--now", "2024-05-21T10:00:00Z")
    first = versions(shop)["post-purchase"]
    running = status_of(shop)["post-purchase"]
    assert (
        running["journeys"]["active"] == 1 and running["journeys"]["active_on_older_versions"] == 0
    )

    # the marketer edits the subject: a new version, for new entries only
    file = shop / "campaigns" / "post_purchase.yaml"
    assert OLD_SUBJECT in file.read_text()
    file.write_text(file.read_text().replace(OLD_SUBJECT, NEW_SUBJECT))
    ok(shop, "tick", "--now", "2024-05-21T11:00:00Z")
    second = versions(shop)["post-purchase"]
    assert second != first

    edited = status_of(shop)["post-purchase"]
    assert edited["version"] == second
    assert edited["journeys"]["active"] == 1
    assert edited["journeys"]["active_on_older_versions"] == 1
    assert [(v["version"], v["current"], v["active"]) for v in edited["versions"]] == [
        (second, True, 0),
        (first, False, 1),
    ]
    table = ok(shop, "status")
    assert f"post-purchase: 1 journey(s) still run older version {first}" in table
    assert f"the file is now {second}" in table

    # Ann orders after the edit: she runs the new version, Cara still the old one
    ann = write_jsonl(
        shop / "ann.jsonl",
        [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "ann",
                "messageId": "ann-2",
                "timestamp": "2024-05-21T12:00:00Z",
                "properties": {"order_id": "W-9", "revenue": 50},
            }
        ],
    )
    ok(shop, "ingest", str(ann))
    ok(shop, "tick", "--now", "2024-05-21T12:00:00Z")
    both = status_of(shop)["post-purchase"]
    assert [(v["version"], v["active"]) for v in both["versions"]] == [(second, 1), (first, 1)]
    assert both["journeys"]["active_on_older_versions"] == 1
    journeys = orjson.loads(ok(shop, "explain", "--customer", "cara", "--json"))["journeys"]
    assert [(j["version"], j["status"], j["current_version"]) for j in journeys][-1] == (
        first,
        "active",
        False,
    )

    # both finish, each with the subject of the version it entered with
    ok(shop, "tick", "--now", "2024-06-10T00:00:00Z")
    done = status_of(shop)["post-purchase"]
    assert done["journeys"]["active"] == 0
    assert [(v["version"], v["completed"]) for v in done["versions"]] == [(second, 1), (first, 3)]

    def review_subjects(customer: str) -> list[str]:
        document = orjson.loads(
            ok(shop, "explain", "--customer", customer, "--campaign", "post-purchase", "--json")
        )
        return [
            d["fields"]["subject"]
            for d in document["decisions"]
            if d["fields"].get("template") == "review_request.html" and d["at"] > "2024-05-21"
        ]

    assert review_subjects("cara") == ["How do you like your order, Cara?"]
    assert review_subjects("ann") == ["Your order, Ann: a quick review?"]


def test_status_says_unknown_outcomes_loudly_and_still_exits_0(shop: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{shop / 'followup.db'}")
    with engine.begin() as conn:  # as the dispatcher leaves a row whose call was cut short
        conn.execute(
            outbox.update()
            .where(outbox.c.key == "j_c463e1e9dd4d6e5c:1")
            .values(status="unknown", detail=UNKNOWN_DETAIL)
        )
    engine.dispose()
    file = shop / "campaigns" / "welcome_series.yaml"
    file.write_text(file.read_text().replace("status: active", "status: paused"))

    table = ok(shop, "status")
    assert "NEEDS A HUMAN CHECK: 1 outbox row(s) have an UNKNOWN outcome" in table
    assert "j_c463e1e9dd4d6e5c:1  abandoned-cart  email send  customer c_d89a04d4ec778ad7" in (
        table
    )
    assert UNKNOWN_DETAIL in table
    report = orjson.loads(ok(shop, "status", "--json"))
    assert [(r["key"], r["detail"]) for r in report["needs_check"]] == [
        ("j_c463e1e9dd4d6e5c:1", UNKNOWN_DETAIL)
    ]
    by_id = {c["campaign"]: c for c in report["campaigns"]}
    assert by_id["abandoned-cart"]["outbox"]["unknown"] == 1
    assert by_id["welcome-series"]["status"] == "paused"

    ann = ok(shop, "explain", "--customer", "ann", "--campaign", "abandoned-cart")
    assert "— UNKNOWN outcome: " + UNKNOWN_DETAIL in ann
