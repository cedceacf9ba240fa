"""A body that cannot render for a customer is a ``render_error`` skip decided with the send,
in simulate and in the durable engine alike (as a subject that cannot render already was),
not a send that fails only at the provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jinja2 import Template

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import outbox
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    message,
    one_campaign_project,
    open_followup,
    plan_lines,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CAMPAIGN = """\
campaign: visits
trigger: {event: Product Added}
steps:
  - send: email
    template: per_visit.html
    subject: Your cart
"""
TEMPLATE = "<p>Hello</p>\n<p>{{ customer.cart.value / customer.traits.visits }} per visit</p>\n"


def _project(folder: Path) -> Path:
    return one_campaign_project(folder, CAMPAIGN, {"per_visit.html": TEMPLATE})


def _events(folder: Path) -> Path:
    lines = [
        message("m1", "identify", T, email="ann@example.com", consent={"email": True}, visits=0),
        message("m2", "Product Added", T + timedelta(minutes=1), product_id="p", price=30),
    ]
    return write_messages(folder / "events.jsonl", lines)


def test_simulate_skips_a_send_whose_body_cannot_render(tmp_path: Path) -> None:
    project = _project(tmp_path)
    events = [e for r in read_jsonl(_events(tmp_path)) for e in getattr(r, "events", [])]
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    plan = simulate(campaigns, events, ProjectConfig(), templates=project / "templates")
    (send,) = [line for line in plan if line.action.value == "send"]
    assert (send.status, send.reason) == ("skipped", "render_error")


def test_the_durable_engine_decides_the_same_skip(database_url: str, tmp_path: Path) -> None:
    project = _project(tmp_path)
    path = _events(tmp_path)
    clock = Clock(T + timedelta(hours=1))
    followup = open_followup(project, database_url, clock)
    try:
        ingest_file(followup, path)
        DurableProject(followup).run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        events = [e for r in read_jsonl(path) for e in getattr(r, "events", [])]
        templates = project / "templates"
        expected = plan_lines(
            plan_text(simulate(campaigns, events, ProjectConfig(), templates=templates))
        )
        assert any(line.endswith(" send skipped render_error") for line in expected)
        assert decision_lines(followup.engine) == expected
        with followup.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0
    finally:
        followup.close()


def test_the_body_sent_is_rendered_from_the_state_the_send_was_decided_on(
    database_url: str, tmp_path: Path
) -> None:
    """Found by review: the outbox rendered the body from the state at the end of the batch,
    so a trait changed after the decision, in the same batch, failed a send decided ``sent``."""
    project = _project(tmp_path)
    lines = [
        message("m1", "identify", T, email="ann@example.com", consent={"email": True}, visits=4),
        message("m2", "Product Added", T + timedelta(minutes=1), product_id="p", price=30),
        message("m3", "identify", T + timedelta(minutes=2), visits=0),
    ]
    path = write_messages(tmp_path / "events.jsonl", lines)
    followup = open_followup(project, database_url, Clock(T + timedelta(hours=1)))
    try:
        ingest_file(followup, path)
        DurableProject(followup).run_once()
        with followup.engine.connect() as conn:
            status, fields = conn.execute(sa.select(outbox.c.status, outbox.c.fields)).one()
    finally:
        followup.close()
    assert status == "delivered"
    assert "7.5 per visit" in fields["html"]


def test_a_body_may_read_its_unsubscribe_link(tmp_path: Path) -> None:
    project = one_campaign_project(
        tmp_path,
        CAMPAIGN,
        {"per_visit.html": "<a href=\"{{ unsubscribe_url.split('?')[0] }}\">x</a>"},
    )
    events = [e for r in read_jsonl(_events(tmp_path)) for e in getattr(r, "events", [])]
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    plan = simulate(campaigns, events, ProjectConfig(), templates=project / "templates")
    (send,) = [line for line in plan if line.action.value == "send"]
    assert (send.status, send.reason) == ("sent", None)


def test_each_body_is_rendered_once_and_written_as_rendered(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check renders the body as the send is decided; the content written with the send
    is that body, not a second rendering. A template that reads ``confirm_url`` (which the
    check fills with a placeholder) is rendered again for the content."""
    templates = {
        "per_visit.html": "<p>{{ customer.cart.value / customer.traits.visits }} per visit</p>"
        '<a href="{{ unsubscribe_url }}">stop</a>',
        "confirm.html": "<p>{{ confirm_url or 'none' }}</p>",
    }
    campaign = CAMPAIGN + "  - send: email\n    template: confirm.html\n    subject: Again\n"
    project = one_campaign_project(tmp_path, campaign, templates)
    lines = [
        message("m1", "identify", T, email="ann@example.com", consent={"email": True}, visits=4),
        message("m2", "Product Added", T + timedelta(minutes=1), product_id="p", price=30),
    ]
    path = write_messages(tmp_path / "events.jsonl", lines)
    followup = open_followup(project, database_url, Clock(T + timedelta(days=2)))
    rendered: list[str] = []
    original = Template.render

    def counting(self: Template, *args: Any, **kwargs: Any) -> str:
        rendered.append(str(self.name))
        return original(self, *args, **kwargs)

    try:
        ingest_file(followup, path)
        durable = DurableProject(followup)
        monkeypatch.setattr(Template, "render", counting)
        durable.run_once()
        with followup.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.step, outbox.c.fields).order_by("step")).all()
    finally:
        followup.close()
    assert sorted(rendered) == ["confirm.html", "confirm.html", "per_visit.html"]
    (_, first), (_, second) = rows
    assert "7.5 per visit" in first["html"] and first["unsubscribe_url"] in first["html"]
    assert first["text"].startswith("7.5 per visit")
    assert second["html"] == "<p>none</p>"  # rendered again: not the check's placeholder
