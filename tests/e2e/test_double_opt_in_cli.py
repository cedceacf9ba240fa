"""Double opt-in through the CLI: ``simulate`` plans the confirmation emails (past caps and
quiet hours, not past suppression), grants consent only with the ``Subscription Confirmed`` in
the file, and a welcome series triggered on it runs; ``validate`` checks the policy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from tests.durable.harness import write_messages
from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
policies:
  double_opt_in: [email]
  frequency_caps:
    email: [{max: 1, per: 1d}]
  quiet_hours:
    email: "21:00-08:00"
  suppression: [blocked@example.com]
"""
WELCOME = """\
campaign: welcome
trigger: {event: Subscription Confirmed}
steps:
  - send: email
    template: welcome.html
    subject: Welcome
"""


def project(folder: Path, config: str = CONFIG) -> Path:
    """A project with the welcome campaign, the example templates and ``config``."""
    (folder / "campaigns").mkdir()
    (folder / "campaigns" / "welcome.yaml").write_text(WELCOME)
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "followup.yaml").write_text(config)
    return folder


def msg(user: str, n: int, at: str, kind: str, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"userId": user, "messageId": f"{user}-{n}", "timestamp": at}
    if kind == "identify":
        found.update(type="identify", traits=fields)
    else:
        found.update(type="track", event=kind, properties=fields)
    return found


EVENTS = [
    # ann signs up at 22:30 (quiet hours) and confirms the next morning
    msg("ann", 1, "2024-05-06T22:00:00Z", "identify", email="ann@example.com"),
    msg("ann", 2, "2024-05-06T22:30:00Z", "Subscribed", list="newsletter"),
    msg("ann", 3, "2024-05-07T09:15:00Z", "Subscription Confirmed", list="newsletter"),
    # bo signs up and never confirms
    msg("bo", 1, "2024-05-06T10:00:00Z", "identify", email="bo@example.com"),
    msg("bo", 2, "2024-05-06T10:01:00Z", "Subscribed", list="newsletter"),
    # a suppressed address gets no confirmation
    msg("cy", 1, "2024-05-06T10:00:00Z", "identify", email="blocked@example.com"),
    msg("cy", 2, "2024-05-06T10:01:00Z", "Subscribed", list="newsletter"),
    # dee already consents: nothing to confirm
    msg(
        "dee", 1, "2024-05-06T10:00:00Z", "identify", email="d@example.com", consent={"email": True}
    ),
    msg("dee", 2, "2024-05-06T10:01:00Z", "Subscribed", list="newsletter"),
    # eve signs up twice within ten minutes: one confirmation
    msg("eve", 1, "2024-05-06T11:00:00Z", "identify", email="eve@example.com"),
    msg("eve", 2, "2024-05-06T11:00:00Z", "Subscribed", list="newsletter"),
    msg("eve", 3, "2024-05-06T11:05:00Z", "Subscribed", list="newsletter"),
]


def simulate(folder: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    path = write_messages(folder / "events.jsonl", events)
    result = run_followup(folder, "simulate", "--events", str(path))
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def sends(plan: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str | None]]:
    return [
        (
            line["at"],
            line["customer"]["user_id"],
            line["campaign"],
            line["status"],
            line.get("reason"),
        )
        for line in plan
        if line["action"] == "send"
    ]


def test_simulate_confirms_signups_and_grants_consent_on_the_confirmation(tmp_path: Path) -> None:
    plan = simulate(project(tmp_path), EVENTS)
    assert sorted(sends(plan)) == sorted(
        [
            ("2024-05-06T22:30:00Z", "ann", "double-opt-in", "sent", None),  # quiet hours: now
            # the confirmation counted for no cap: the welcome goes the same day
            ("2024-05-07T09:15:00Z", "ann", "welcome", "sent", None),
            ("2024-05-06T10:01:00Z", "bo", "double-opt-in", "sent", None),
            ("2024-05-06T10:01:00Z", "cy", "double-opt-in", "skipped", "suppressed"),
            ("2024-05-06T11:00:00Z", "eve", "double-opt-in", "sent", None),
        ]
    )
    confirmation = next(line for line in plan if line["action"] == "send")
    assert confirmation["template"] == "confirm_subscription.html"
    assert confirmation["subject"] == "Please confirm your subscription"
    converted = [
        (line["customer"]["user_id"], line["campaign"])
        for line in plan
        if line["action"] == "convert"
    ]
    assert converted == [("ann", "double-opt-in")]


def test_without_a_confirmation_a_welcome_on_subscribed_is_refused_consent(tmp_path: Path) -> None:
    """The old welcome trigger (``Subscribed``) under double opt-in: no consent yet, so its
    send is skipped, and validate says what to trigger on instead."""
    folder = project(tmp_path)
    (folder / "campaigns" / "welcome.yaml").write_text(
        WELCOME.replace("Subscription Confirmed", "Subscribed")
    )
    plan = simulate(folder, EVENTS[:2])
    assert ("2024-05-06T22:30:00Z", "ann", "welcome", "skipped", "no_consent") in sends(plan)
    checked = run_followup(folder, "validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "campaigns/welcome.yaml:2:" in checked.stdout
    assert "trigger on Subscription Confirmed" in checked.stdout


def test_validate_names_a_missing_confirmation_template(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "templates" / "confirm_subscription.html").unlink()
    checked = run_followup(folder, "validate")
    assert checked.returncode == 1
    assert "followup.yaml:2:" in checked.stdout
    assert "confirm_subscription.html" in checked.stdout


def test_validate_refuses_a_campaign_with_the_reserved_id(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "campaigns" / "mine.yaml").write_text(WELCOME.replace("welcome", "double-opt-in", 1))
    checked = run_followup(folder, "validate")
    assert checked.returncode == 1
    assert "campaigns/mine.yaml:1:" in checked.stdout
    assert "double opt-in" in checked.stdout
    events = write_messages(folder / "events.jsonl", EVENTS)
    simulated = run_followup(folder, "simulate", "--events", str(events))
    assert simulated.returncode == 1
    assert "campaigns/mine.yaml:1:" in simulated.stderr
    assert "Traceback" not in simulated.stderr


def test_validate_explains_a_bad_policy_at_its_line(tmp_path: Path) -> None:
    folder = project(tmp_path, CONFIG.replace("[email]", "[sms]"))
    checked = run_followup(folder, "validate")
    assert checked.returncode == 1
    assert "followup.yaml:2:" in checked.stdout


def test_validate_warns_a_confirmation_template_without_its_link(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "templates" / "confirm_subscription.html").write_text("<p>Hello</p>\n")
    checked = run_followup(folder, "validate")
    assert checked.returncode == 0  # a warning: the file may be work in progress
    assert "followup.yaml:2:" in checked.stdout and "has no {{ confirm_url }}" in checked.stdout
