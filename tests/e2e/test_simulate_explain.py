"""``followup simulate --explain REF``: one customer's decisions in a simulation, as ``followup
explain`` words them, replaying only the events of the customer's identity group."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import orjson

from tests.durable.harness import write_messages
from tests.e2e.cli import run_followup
from tests.journeys.test_partitioned_simulate import signing_in_shoppers

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories" / "events.jsonl"


def _project(folder: Path, campaigns: tuple[str, ...] | None = None) -> Path:
    (folder / "campaigns").mkdir(parents=True)
    for file in sorted((ROOT / "campaigns").glob("*.yaml")):
        if campaigns is None or file.stem in campaigns:
            shutil.copy(file, folder / "campaigns")
    shutil.copytree(ROOT / "templates", folder / "templates")
    return folder


def test_the_stories_explained_by_email_user_id_and_anonymous_id(tmp_path: Path) -> None:
    project = _project(tmp_path)
    texts = []
    for reference in ("bob@example.com", "bob-1", "visitor-9"):
        done = run_followup(project, "simulate", "--events", str(STORIES), "--explain", reference)
        assert done.returncode == 0, done.stderr
        texts.append(done.stdout)
    assert texts[0] == texts[1] == texts[2]  # one customer, however named
    lines = texts[0].splitlines()
    assert lines[0] == "customer c_1b2426df275a1e58 (bob-1, bob@example.com)"
    assert lines[1] == "decisions, in time order:"
    assert (
        "  2024-05-06T09:40:00Z welcome-series j_6904766a6e2c0ce7 step 0: email decided "
        '(template welcome.html, subject "Welcome, Bob!") — simulated: nothing is sent'
    ) in lines
    assert (
        "  2024-05-07T18:00:00Z abandoned-cart j_54d66638e37e8e68 converted by Order Completed "
        "(value 24)"
    ) in lines
    assert "journeys:" in lines
    assert (
        "  post-purchase j_d0852a916e04cf38 entered 2024-05-07T18:00:00Z: active, version "
        "2c37a3911bae; next step due 2024-05-15T10:00:00Z"
    ) in lines


def test_a_customer_with_no_decision_gets_the_hints(tmp_path: Path) -> None:
    project = _project(tmp_path, ("abandoned_cart", "welcome_series"))
    (project / "campaigns" / "welcome_series.yaml").write_text(
        (ROOT / "campaigns" / "welcome_series.yaml")
        .read_text()
        .replace("status: active", "status: paused")
    )
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": "noa",
                "messageId": "n1",
                "timestamp": "2024-05-06T09:00:00Z",
                "properties": {"product_id": "p"},
            }
        ],
    )
    done = run_followup(project, "simulate", "--events", str(events), "--explain", "noa")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "no decisions made in the simulation for this customer. Why that may be:",
        "  - the customer's events: Product Viewed ×1",
        "  - abandoned-cart: no 'Product Added' event seen for this customer (the campaign's trigger)",
        "  - welcome-series is paused: simulate does not run it",
    ]


def test_unknown_customers_and_other_outputs_are_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, ("abandoned_cart",))
    unknown = run_followup(project, "simulate", "--events", str(STORIES), "--explain", "zed")
    assert unknown.returncode == 2
    assert "no customer is known as 'zed' in" in unknown.stderr
    both = run_followup(
        project, "simulate", "--events", str(STORIES), "--explain", "ann", "--summary"
    )
    assert both.returncode == 2
    assert "--explain prints one customer's decisions" in both.stderr


def test_the_explained_decisions_are_the_customers_lines_of_the_whole_plan(
    tmp_path: Path,
) -> None:
    """On 3,000 events of shoppers whose profiles merge, three customers' explanations (their
    group's events replayed alone) hold exactly their lines of the whole run's plan."""
    project = _project(tmp_path, ("abandoned_cart", "post_purchase", "welcome_series"))
    events = write_messages(tmp_path / "events.jsonl", signing_in_shoppers(3_000))
    whole = run_followup(project, "simulate", "--events", str(events))
    assert whole.returncode == 0, whole.stderr
    plan = [orjson.loads(line) for line in whole.stdout.splitlines()]
    for email in ("s3@example.com", "s40@example.com", "s601@example.com"):
        done = run_followup(project, "simulate", "--events", str(events), "--explain", email)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        customer = lines[0].split()[1]
        merged = []
        if lines[1].startswith("  with the profiles merged into it: "):
            merged = lines[1].split(": ", 1)[1].split(", ")
        ids = {customer, *merged}
        mine = Counter(
            (line["at"], line["campaign"], line["journey"])
            for line in plan
            if line["customer"]["id"] in ids
        )
        explained = Counter(
            tuple(line.split()[:3])
            for line in lines
            if line.startswith("  20") and " not entered: " not in line
        )
        assert mine and explained == mine, email


NUDGE = """\
campaign: nudge
status: draft
trigger: {event: Pricing}
steps:
  - send: email
    template: welcome.html
    subject: Hello
  - wait: 30d
  - send: email
    template: welcome.html
    subject: Again
"""


def test_a_drafts_journey_runs_and_a_page_of_the_trigger_name_does_not_enter(
    tmp_path: Path,
) -> None:
    """simulate runs drafts: their journeys are not held; a page named like a track trigger
    is seen, and the hint says why it started nothing."""
    project = _project(tmp_path, ())
    (project / "campaigns" / "nudge.yaml").write_text(NUDGE)
    consent = {"email": "ann@example.com", "consent": {"email": True}}
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            {"type": "identify", "userId": "ann", "messageId": "a0", "traits": consent,
             "timestamp": "2024-05-06T08:00:00Z"},
            {"type": "track", "event": "Pricing", "userId": "ann", "messageId": "a1",
             "timestamp": "2024-05-06T09:00:00Z"},
            {"type": "page", "name": "Pricing", "userId": "bob", "messageId": "b1",
             "timestamp": "2024-05-06T09:00:00Z"},
        ],
    )  # fmt: skip
    ann = run_followup(project, "simulate", "--events", str(events), "--explain", "ann")
    assert ann.returncode == 0, ann.stderr
    journey = ann.stdout.splitlines()[-1]
    assert ": active, version " in journey and "next step due 2024-06-05T09:00:00Z" in journey
    assert "held" not in journey
    bob = run_followup(project, "simulate", "--events", str(events), "--explain", "bob")
    assert bob.returncode == 0, bob.stderr
    assert bob.stdout.splitlines()[-1] == (
        "  - nudge: 1 'Pricing' event(s) seen, but none was a track event (pages and screens of "
        "that name do not trigger)"
    )


def test_the_json_document_is_explains_and_json_needs_explain(tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = run_followup(project, "simulate", "--events", str(STORIES), "--explain", "ann")
    done = run_followup(project, "simulate", "--events", str(STORIES), "--explain", "ann", "--json")
    assert done.returncode == 0, done.stderr
    document = orjson.loads(done.stdout)
    assert document["customer"] == {
        "id": "c_d89a04d4ec778ad7",
        "user_id": "ann",
        "email": "ann@example.com",
        "phone": "+14155550100",
        "merged_ids": [],
    }
    assert [d["text"] for d in document["decisions"]] == [
        line[2:] for line in text.stdout.splitlines()[2:] if line.startswith("  20")
    ]
    sends = [d for d in document["decisions"] if d["action"] == "send"]
    assert sends and all(d["outcome"] is None and d["status"] == "sent" for d in sends)
    assert {j["campaign"] for j in document["journeys"]} == {"abandoned-cart", "weekly-newsletter"}
    assert document["pending_events"] == 0 and document["hints"] == []
    alone = run_followup(project, "simulate", "--events", str(STORIES), "--json")
    assert alone.returncode == 2
    assert "--json goes with --explain" in alone.stderr
