"""Edge cases of ``followup simulate`` that a user's own event files and campaigns hit, on a real
process and real files: a byte order mark at the head of the events, a subject that lists the
channels a customer was seen on (the same in every run), and the ad audience a split variant adds
then removes (both lines name the variant).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.cli import run_followup

IDENTIFY = {
    "type": "identify",
    "userId": "ann",
    "messageId": "e1",
    "timestamp": "2024-05-06T09:00:00Z",
    "traits": {"email": "ann@example.com", "consent": {"email": True, "ads": True}},
}
CART = {
    "type": "track",
    "event": "Product Added",
    "userId": "ann",
    "messageId": "e2",
    "timestamp": "2024-05-06T09:30:00Z",
    "channel": "pos",
    "properties": {"product_id": "boots", "price": 240},
}
ORDER = {
    "type": "track",
    "event": "Order Completed",
    "userId": "ann",
    "messageId": "e3",
    "timestamp": "2024-05-06T12:00:00Z",
    "properties": {"revenue": 240},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "followup.yaml").write_text("timezone: UTC\n")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "cart.html").write_text("<p>Your cart</p>\n")
    return tmp_path


def campaign(project: Path, text: str) -> None:
    (project / "campaigns" / "cart.yaml").write_text(text)


def events(project: Path, *messages: dict[str, Any], head: bytes = b"") -> None:
    lines = b"".join(orjson.dumps(message) + b"\n" for message in messages)
    (project / "events.jsonl").write_bytes(head + lines)


def simulate(project: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_followup(project, "simulate", "--events", "events.jsonl", env=env)


def plan(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


EMAIL_CAMPAIGN = """\
campaign: cart
trigger: {event: Product Added}
steps:
  - send: email
    template: cart.html
    subject: "Seen on {{ customer.channels | join(', ') }}"
"""


def test_a_byte_order_mark_at_the_head_of_the_events_is_not_data(project: Path) -> None:
    campaign(project, EMAIL_CAMPAIGN)
    events(project, IDENTIFY, CART, head=b"\xef\xbb\xbf")
    sends = [line for line in plan(simulate(project)) if line["action"] == "send"]
    assert [(line["status"], line["customer"]["email"]) for line in sends] == [
        ("sent", "ann@example.com")
    ]


def test_the_channels_a_subject_lists_read_the_same_in_every_run(project: Path) -> None:
    campaign(project, EMAIL_CAMPAIGN)
    events(project, IDENTIFY, CART)
    runs = {simulate(project, env={"PYTHONHASHSEED": str(seed)}).stdout for seed in range(4)}
    assert len(runs) == 1
    (subject,) = [line["subject"] for line in plan(simulate(project)) if "subject" in line]
    assert subject == "Seen on pos, web"


def test_the_audience_a_variant_added_is_removed_on_a_line_of_that_variant(project: Path) -> None:
    campaign(
        project,
        """\
campaign: cart
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - wait: 1h
  - split:
      - {name: A, weight: 100%, steps: [{send: ads, audience: cart-abandoners}]}
      - {name: B, weight: 0%}
""",
    )
    events(project, IDENTIFY, CART, ORDER)
    ads = [line for line in plan(simulate(project)) if line["channel"] == "ads"]
    assert [(line["action"], line["step"], line.get("variant")) for line in ads] == [
        ("audience_add", "1.A.0", "A"),
        ("audience_remove", "1.A.0", "A"),
    ]


def test_a_trait_reads_by_the_key_the_events_sent_or_the_key_the_profile_keeps(
    project: Path,
) -> None:
    """The profile keeps ``loyaltyTier`` as ``loyalty_tier`` (Segment's camelCase reserved
    traits, ``firstName``, are read as ``first_name``); a campaign may write either."""
    campaign(
        project,
        """\
campaign: cart
trigger: {event: Product Added}
audience: customer.traits.loyaltyTier == 'gold' and customer.traits['loyalty_tier'] == 'gold'
steps:
  - send: email
    template: cart.html
    subject: "{{ customer.traits.firstName }} {{ customer.first_name }}, {{ customer.traits.loyaltyTier }}"
""",
    )
    traits = {"email": "ann@example.com", "consent": {"email": True}}
    identify = {**IDENTIFY, "traits": {**traits, "firstName": "Ann", "loyaltyTier": "gold"}}
    events(project, identify, CART)
    sends = [line for line in plan(simulate(project)) if line["action"] == "send"]
    assert [line["subject"] for line in sends] == ["Ann Ann, gold"]
    checked = run_followup(project, "validate", "--events", "events.jsonl")
    assert checked.returncode == 0 and "loyaltyTier" not in checked.stdout + checked.stderr


TIE_CAMPAIGN = """\
campaign: cart
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - wait: {for: Checkout Started, timeout: 1h}
    then:
      - send: email
        template: cart.html
        subject: checkout
    else:
      - send: email
        template: cart.html
        subject: reminder
"""


def _at(message: dict[str, Any], time: str, **fields: Any) -> dict[str, Any]:
    return {**message, "timestamp": time, **fields}


def test_an_event_comes_before_the_timers_due_at_its_instant(project: Path) -> None:
    """Ties between an event and a timer go to the event: the event waited for at the
    timeout's very instant is in time, an exit at the instant a send falls due ends the journey
    first, an unsubscribe at that instant stops the send."""
    campaign(project, TIE_CAMPAIGN)
    checkout = _at(CART, "2024-05-06T10:30:00Z", event="Checkout Started", messageId="e3")
    events(project, IDENTIFY, CART, checkout)
    sends = [line for line in plan(simulate(project)) if line["action"] == "send"]
    assert [(line["subject"], line["at"]) for line in sends] == [
        ("checkout", "2024-05-06T10:30:00Z")
    ]

    order = _at(ORDER, "2024-05-06T10:30:00Z")
    events(project, IDENTIFY, CART, order)
    lines = plan(simulate(project))
    assert [line["action"] for line in lines] == ["enter", "exit"]
    assert lines[1]["reason"] == "exit_event"

    unsubscribe = _at(ORDER, "2024-05-06T10:30:00Z", event="Unsubscribed", properties={})
    events(project, IDENTIFY, CART, unsubscribe)
    sends = [line for line in plan(simulate(project)) if line["action"] == "send"]
    assert [(line["status"], line.get("reason")) for line in sends] == [("skipped", "no_consent")]


def test_a_missing_template_is_a_warning_at_the_step_that_names_it(project: Path) -> None:
    """As validate says it: the campaign file, line and column of the step's ``template``,
    with the closest name in the folder; the plan still runs, each send a render_error skip,
    and the template is not named a second time after the run."""
    campaign(project, EMAIL_CAMPAIGN.replace("template: cart.html", "template: cart.htm"))
    events(project, IDENTIFY, CART)
    result = simulate(project)
    sends = [line for line in plan(result) if line["action"] == "send"]
    assert [(line["status"], line["reason"]) for line in sends] == [("skipped", "render_error")]
    line = next(
        number
        for number, text in enumerate(
            (project / "campaigns" / "cart.yaml").read_text().split("\n"), 1
        )
        if "cart.htm" in text
    )
    assert result.stderr.startswith(
        f"campaigns/cart.yaml:{line}:15: warning: template 'cart.htm' not found in templates/;"
        " did you mean cart.html?\n    its sends are skipped (render_error)\n"
    ), result.stderr
    assert result.stderr.count("cart.htm'") == 1


def test_a_body_that_cannot_render_is_a_render_error_skip_with_a_warning(project: Path) -> None:
    """Simulate renders each email's body as the send is decided: one that fails for this
    customer is skipped (``render_error``) and stderr names the template line, once."""
    (project / "templates" / "cart.html").write_text(
        "<p>Hello</p>\n<p>{{ customer.cart.value / customer.traits.visits }} per visit</p>\n"
    )
    campaign(project, EMAIL_CAMPAIGN)
    identify = {**IDENTIFY, "traits": {**IDENTIFY["traits"], "visits": 0}}
    events(project, identify, CART)
    result = simulate(project)
    sends = [line for line in plan(result) if line["action"] == "send"]
    assert [(line["status"], line["reason"]) for line in sends] == [("skipped", "render_error")]
    assert (
        "warning: templates/cart.html:2: ZeroDivisionError: float division by zero" in result.stderr
    )
    assert "{{ customer.cart.value / customer.traits.visits }}" in result.stderr
    assert "Traceback" not in result.stderr

    checked = run_followup(project, "validate", "--events", "events.jsonl")
    assert checked.returncode == 0, checked.stderr
    shown = checked.stdout + checked.stderr
    assert "templates/cart.html:2:1: warning: fails to render for customer" in shown
    assert "(campaign cart)" in shown and "ZeroDivisionError" in shown


def test_validate_renders_a_body_with_its_unsubscribe_link_as_the_run_does(project: Path) -> None:
    """The run gives a body ``unsubscribe_url``; validate's sample rendering does too, so a
    template that reads it is not reported as failing."""
    (project / "templates" / "cart.html").write_text(
        "<a href=\"{{ unsubscribe_url.split('?')[0] }}\">unsubscribe</a>\n"
    )
    campaign(project, EMAIL_CAMPAIGN)
    events(project, IDENTIFY, CART)
    checked = run_followup(project, "validate", "--events", "events.jsonl")
    assert checked.returncode == 0, checked.stderr
    assert "fails to render" not in checked.stdout + checked.stderr


WEBHOOK = """
campaign: cart
trigger: {event: Product Added}
steps:
  - send: webhook
    url: crn
    body: "{{ customer.id }}"
"""


def test_a_config_or_campaign_validate_refuses_gives_no_plan(project: Path) -> None:
    """docs/simulate.md: exit 1 when a campaign or the config is invalid, the problems on
    standard error and no plan; the config's provider settings and a webhook's url name are
    checked as ``followup validate`` checks them (no provider needs to be configured)."""
    events(project, IDENTIFY, CART)
    campaign(project, WEBHOOK)
    unchecked = simulate(project)  # no urls configured: nothing to check the name against
    assert unchecked.returncode == 0, unchecked.stderr
    (project / "followup.yaml").write_text(
        "providers:\n  webhook: {provider: http, urls: {crm: https://crm.example.com/h}}\n"
    )
    refused = simulate(project)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "cart.yaml:6:10: no url named 'crn'" in refused.stderr
    assert "did you mean crm?" in refused.stderr
    (project / "followup.yaml").write_text(
        "providers:\n  email:\n    provider: smtp\n    hots: relay.example.com\n"
        "  webhook: {provider: http, urls: {crn: https://crm.example.com/h}}\n"
    )
    refused = simulate(project)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "unknown setting 'hots'; did you mean 'host'?" in refused.stderr
