"""A ``followup tick`` killed after N real webhook calls, then run again at once: the one call in
flight is ``unknown`` (the receiver may have acted on it; never resent) and every other order
reaches the receiver exactly once, without waiting for the 5-minute lease.

The outbox used to claim up to 200 rows before its first call: a kill after 5 requests left
every row it had claimed ``sending``, and after the lease 35 of them, never attempted, became
``unknown`` too, and were never sent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.api import Followup
from engine.config import load_project
from engine.storage.tables import outbox
from tests.durable.harness import make_project
from tests.e2e.cli import FOLLOWUP
from tests.webhook.server import SECRET, Reply, webhook_receiver

ORDERS = 24
KILL_AT = 5  # the request in flight when the process dies
CAMPAIGN = """\
campaign: crm-sync
trigger: {event: Order Completed}
steps:
  - send: webhook
    url: crm
    body: '{"customer": "{{ customer.id }}", "order": "{{ event.properties.order_id }}"}'
"""


def _tick(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    env["FOLLOWUP_WEBHOOK_SECRET"] = SECRET
    return subprocess.Popen([FOLLOWUP, "--config", str(config), "tick"], cwd=config.parent, env=env)


def test_a_killed_tick_leaves_one_call_unknown_and_the_rest_sent_once(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "crm_sync.yaml").write_text(CAMPAIGN)
    with webhook_receiver() as hook:
        config = project / "followup.yaml"
        config.write_text(
            f"database_url: {database_url}\n"
            "providers:\n"
            f"  webhook: {{provider: http, urls: {{crm: '{hook.url}/orders'}},"
            " secret_env: FOLLOWUP_WEBHOOK_SECRET}\n"
        )
        followup = Followup(load_project(config))
        at = datetime.now(UTC) - timedelta(minutes=5)
        for number in range(ORDERS):
            followup.track(
                "Order Completed",
                user_id=f"u{number}",
                properties={"order_id": f"o{number}"},
                timestamp=at + timedelta(seconds=number),
            )
        hook.receiver.replies += [Reply()] * (KILL_AT - 1) + [Reply(action="stall")]
        first = _tick(config)
        deadline = time.monotonic() + 60
        while len(hook.receiver.requests) < KILL_AT:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)  # the 5th request is in, its answer not yet out
        assert first.wait() == -signal.SIGKILL
        in_flight = hook.receiver.requests[KILL_AT - 1].headers["Idempotency-Key"]
        hook.receiver.released.set()  # let the stalled answer go (to no one)

        again = _tick(config)  # at once: well within the 5-minute lease
        assert again.wait(timeout=120) == 0
        with followup.engine.connect() as conn:
            rows = {r.key: r.status for r in conn.execute(sa.select(outbox.c.key, outbox.c.status))}
        followup.close()
        sent = Counter(r.headers["Idempotency-Key"] for r in hook.receiver.requests)

    assert len(rows) == ORDERS
    assert Counter(rows.values()) == Counter(delivered=ORDERS - 1, unknown=1)
    assert rows[in_flight] == "unknown"
    assert sent == Counter(dict.fromkeys(rows, 1))  # every order once, the unknown one too
