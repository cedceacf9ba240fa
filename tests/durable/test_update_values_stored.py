"""An ``update`` step writes what the database keeps: a filter's iterator as a list, a time as
RFC 3339 text. ``simulate`` sees the trait as the durable engine reads it back, so a later
condition on it decides the same in both; before, the iterator stopped every durable pass
(not JSON serializable) while simulate went on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from tests.durable.harness import (
    Clock,
    accepted_events,
    decision_lines,
    make_project,
    plan_lines,
    replay_when_due,
    write_messages,
)

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
NOTE = """\
campaign: note
trigger: {event: Signed Up}
steps:
  - update:
      traits:
        recent: 'customer.traits.history|reverse'
        noted_at: now
        tags: '["b", "a"]|unique'
"""
PRO = """\
campaign: pro
trigger:
  segment: '(customer.traits.recent|first) == "pro" and customer.traits.noted_at is string'
steps:
  - send: email
    template: newsletter.html
    subject: Hi
"""


def test_traits_an_update_wrote_read_the_same_in_simulate_and_live(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "note.yaml").write_text(NOTE)
    (project / "campaigns" / "pro.yaml").write_text(PRO)
    traits = {"email": "ann@example.com", "consent": {"email": True}, "history": ["free", "pro"]}
    events = write_messages(
        tmp_path / "events.jsonl",
        [
            {"type": "identify", "userId": "ann", "messageId": "m0", "traits": traits,
             "timestamp": T0.isoformat()},
            {"type": "track", "event": "Signed Up", "userId": "ann", "messageId": "m1",
             "timestamp": (T0 + timedelta(minutes=5)).isoformat()},
            {"type": "page", "name": "Home", "userId": "ann", "messageId": "m2",
             "timestamp": (T0 + timedelta(hours=3)).isoformat()},
        ],
    )  # fmt: skip
    end = T0 + timedelta(days=2)
    campaigns = list(load_campaigns([project / "campaigns"]).require().values())
    planned = plan_lines(
        plan_text(simulate(campaigns, accepted_events(events), ProjectConfig(), end))
    )
    assert any(" pro " in line and " send " in line for line in planned)
    clock = Clock(T0)
    config = ProjectConfig(database_url=f"sqlite:///{tmp_path / 'followup.db'}")
    followup = Followup(Project(config, project), clock)
    try:
        replay_when_due(DurableProject(followup), clock, events, end)
        assert decision_lines(followup.engine) == planned
        state = followup.profile("ann", recent=0)
        assert state is not None
        assert state.state.traits["recent"] == ["pro", "free"]
        assert state.state.traits["tags"] == ["b", "a"]
        assert state.state.traits["noted_at"] == (T0 + timedelta(minutes=5)).isoformat()
    finally:
        followup.close()
