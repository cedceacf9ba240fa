"""A webhook campaign end to end: the story's orders decided by the durable runtime, rendered,
and carried by the real outbox dispatcher to a real receiver that checks every signature."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.channels import ProviderContext
from engine.drive.dispatcher import OutboxDispatcher
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.tables import outbox
from integrations.webhook import HttpWebhook, http_provider
from tests.durable.harness import STORIES, Clock, ingest_file, make_project, open_followup
from tests.webhook.server import SECRET, Reply, webhook_receiver

CAMPAIGN = """\
campaign: crm-sync
name: Orders to the CRM
status: active
trigger:
  event: Order Completed
steps:
  - send: webhook
    url: crm
    body: '{"customer": "{{ customer.id }}", "order": "{{ event.properties.order_id }}"}'
"""


def test_orders_reach_the_receiver_once_in_effect_through_faults(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", campaigns=[])
    (project / "campaigns" / "crm_sync.yaml").write_text(CAMPAIGN)
    # the wall clock: the receiver checks the signed timestamps against its own
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    followup = open_followup(project, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        durable.runtime.tick()
        query = sa.select(outbox).where(outbox.c.channel == "webhook")
        with webhook_receiver() as hook:
            built = http_provider(
                {"provider": "http", "urls": {"crm": f"{hook.url}/orders"}, "secret_env": "K"},
                ProviderContext("webhook", project, {"K": SECRET}),
            )
            assert isinstance(built, HttpWebhook)
            provider = HttpWebhook(built.target, clock=clock)
            # the first order is refused once (503), the second is read and its answer lost
            hook.receiver.replies += [Reply(503, {"Retry-After": "60"}), Reply(action="reset")]
            dispatcher = OutboxDispatcher(
                SqlOutboxStore(followup.engine),
                {"webhook": provider},
                durable.runtime.policies,
                durable.book,
                "UTC",
                clock,
            )
            first = dispatcher.dispatch()
            clock.now += timedelta(seconds=61)
            second = dispatcher.dispatch()
            third = dispatcher.dispatch()
        with followup.engine.connect() as conn:
            rows = {row.key: row for row in conn.execute(query)}
    finally:
        followup.close()

    assert first == Counter({"webhook:pending": 1, "webhook:unknown": 1})
    assert second == Counter({"webhook:delivered": 1})
    assert third == Counter()
    assert Counter(row.status for row in rows.values()) == Counter(delivered=1, unknown=1)
    [unknown] = [row for row in rows.values() if row.status == "unknown"]
    assert "the receiver may have acted, so it is not resent" in unknown.detail
    requests = hook.receiver.requests
    assert all(r.verified and r.path == "/orders" for r in requests)
    sent = Counter(r.headers["Idempotency-Key"] for r in requests)
    for key, row in rows.items():
        # the delivered one went twice (refused with 503, then taken), the unknown one once
        assert sent[key] == (2 if row.status == "delivered" else 1)
    orders = sorted(json.loads(r.body)["order"] for r in requests)
    assert orders == ["R-1", "W-7", "W-7"] or orders == ["R-1", "R-1", "W-7"]
