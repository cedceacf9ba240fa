"""The provider under the real engine: the example abandoned-cart campaign decides Bob's
audience add and, after his order, his removal; ``OutboxDispatcher`` hands both to
``deliver_batch`` in one call per pass, the provider carries them to the Meta stand-in through
the SDK in order, retrying a rate limit, and each row is recorded delivered once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.channels import ProviderContext
from engine.drive.dispatcher import OutboxDispatcher
from engine.durable.book import CampaignBook
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.tables import outbox
from integrations.facebook.registry import facebook_provider
from integrations.outbox import build_file_providers
from tests.durable.harness import STORIES, Clock, ingest_file, make_project, open_followup
from tests.facebook.graph import ACCOUNT, SCHEMA, SECRET, TOKEN, MetaStandIn, graph_error, sha

NOW = datetime(2024, 5, 20, tzinfo=UTC)


def test_the_engine_s_audience_changes_reach_meta_once_each(
    graph: MetaStandIn, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", ["abandoned_cart"])
    clock = Clock(NOW)
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        durable.runtime.tick()
        environ = {"FACEBOOK_ACCESS_TOKEN": TOKEN, "FACEBOOK_APP_SECRET": SECRET}
        settings = {
            "provider": "facebook",
            "ad_account_id": ACCOUNT,
            "app_secret_env": "FACEBOOK_APP_SECRET",
        }
        ads = facebook_provider(settings, ProviderContext("ads", project, environ))
        ads._clock = clock  # type: ignore[attr-defined]
        batches: list[list[str]] = []
        deliver_batch = ads.deliver_batch

        def spy(deliveries: Any) -> Any:  # records what the dispatcher hands over, then delivers
            batches.append([d.key for d in deliveries])
            return deliver_batch(deliveries)

        ads.deliver_batch = spy  # type: ignore[method-assign]
        providers = {**build_file_providers(project, {}), "ads": ads}
        book = CampaignBook(load_campaigns([project / "campaigns"]).require().values())
        dispatcher = OutboxDispatcher(
            SqlOutboxStore(followup.engine), providers, durable.runtime.policies, book, "UTC", clock
        )
        with followup.engine.connect() as conn:
            rows = list(conn.execute(sa.select(outbox).where(outbox.c.channel == "ads")))
        assert [(r.action, r.fields["audience"]) for r in rows] == [
            ("audience_add", "cart-abandoners"),
            ("audience_remove", "cart-abandoners"),
        ]
        bob = rows[0].customer_id
        bob_row = [sha("bob@example.com"), "", sha("bob"), "", "", "", "", "", bob]

        graph.fail("GET", f"/{ACCOUNT}/customaudiences", lambda: _throttled())
        first = dispatcher.dispatch()
        clock.now = NOW + timedelta(minutes=1)
        second = dispatcher.dispatch()

        assert first["ads:pending"] == 2  # the listing was throttled: both wait, nothing sent
        assert second["ads:delivered"] == 2
        assert batches == [[r.key for r in rows]] * 2  # one call per pass, add before removal
        audience_id = graph.id_of("cart-abandoners")
        assert [(c.method, c.path) for c in graph.calls] == [
            ("GET", f"/{ACCOUNT}/customaudiences"),
            ("GET", f"/{ACCOUNT}/customaudiences"),
            ("POST", f"/{ACCOUNT}/customaudiences"),
            ("POST", f"/{audience_id}/users"),
            ("DELETE", f"/{audience_id}/users"),
        ]
        add, remove = graph.users_calls()
        for call in (add, remove):
            assert call.payload() == {"schema": SCHEMA, "is_raw": True, "data": [bob_row]}
            assert call.session()["batch_seq"] == 1 and call.session()["last_batch_flag"]
        assert graph.members[audience_id] == set()
        with followup.engine.connect() as conn:
            done = list(conn.execute(sa.select(outbox).where(outbox.c.channel == "ads")))
        assert [(r.status, r.attempts, r.provider_id) for r in done] == [
            ("delivered", 2, audience_id),
            ("delivered", 2, audience_id),
        ]
        assert dispatcher.dispatch()["ads:delivered"] == 0  # nothing twice
        assert len(graph.users_calls()) == 2
    finally:
        followup.close()


def _throttled() -> tuple[int, dict[str, str], str]:
    return 400, {}, graph_error(17, "User request limit reached", 2446079)
