"""Double opt-in with Mailchimp as the email provider: the confirmation goes out by
Transactional without making the signup a member of the audience (a member created by a send is
``subscribed``); the confirmation makes them one, as a consent change, and the welcome follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from integrations.mailchimp import subscriber_hash
from tests.durable.harness import Clock
from tests.e2e.test_double_opt_in_cli import project
from tests.mailchimp.conftest import make_provider
from tests.mailchimp.standin import StandIn

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def test_the_confirmation_subscribes_no_one_until_it_is_followed(
    tmp_path: Path, stand_in: StandIn
) -> None:
    clock = Clock(T0)
    root = project(tmp_path, "")
    config = ProjectConfig.model_validate(
        {"database_url": f"sqlite:///{tmp_path / 'f.db'}", "policies": {"double_opt_in": ["email"]}}
    )
    followup = Followup(Project(config, root), clock)
    try:
        durable = DurableProject(followup)
        provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock=clock)
        durable.dispatcher.providers = {**durable.dispatcher.providers, "email": provider}
        durable.runtime.consent_channels = frozenset({"email"})
        followup.identify(user_id="ann", traits={"email": "ann@example.com"}, timestamp=T0)
        followup.track("Subscribed", user_id="ann", properties={"list": "newsletter"}, timestamp=T0)
        clock.now = T0 + timedelta(minutes=1)
        durable.run_once()

        world = stand_in.world
        assert [m["subject"] for m in world.messages] == ["Please confirm your subscription"]
        assert "/confirm/" in world.messages[0]["html"]
        assert subscriber_hash("ann@example.com") not in world.members

        clock.now = T0 + timedelta(hours=1)
        followup.track("Subscription Confirmed", user_id="ann", timestamp=clock.now)
        durable.run_once()
        member = world.members[subscriber_hash("ann@example.com")]
        assert member["status"] == "subscribed"
        subjects = [m["subject"] for m in world.messages]
        assert subjects == ["Please confirm your subscription", "Welcome"]
    finally:
        followup.close()
