"""Faults of a real SMTP server (aiosmtpd): every send ends delivered once, failed with its
reason (retried when the reply was 4xx) or unknown, and none is lost or doubled; once through
the provider alone, once through the real outbox dispatcher over two passes."""

from __future__ import annotations

import ssl
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import trustme

from engine.channels import DeliveryStatus
from engine.drive.dispatcher import OutboxDispatcher
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.tables import outbox
from integrations.smtp import SmtpEmail, SmtpServer
from tests.durable.harness import STORIES, Clock, ingest_file, make_project, open_followup
from tests.smtp.conftest import an_email, build, parsed
from tests.smtp.server import PASSWORD, USERNAME, free_port, smtp_server

RETRY = DeliveryStatus.FAILED  # with retry_at
STALL_TIMEOUT = 0.5  # the client's timeout when the server stalls


@dataclass(frozen=True)
class Fault:
    where: str  # "rcpt" or "data"
    action: str
    status: DeliveryStatus
    retried: bool  # a FAILED outcome with retry_at
    arrived: int  # how many copies the server kept
    detail: str


FAULTS = {
    "busy": Fault("rcpt", "450 4.2.1 mailbox busy", RETRY, True, 0, "recipient refused: 450"),
    "no-user": Fault("rcpt", "550 5.1.1 no such user", RETRY, False, 0, "recipient refused: 550"),
    "slow-rcpt": Fault("rcpt", "stall", RETRY, True, 0, "lost at RCPT TO"),
    "later": Fault("data", "451 4.3.0 try again later", RETRY, True, 0, "message refused: 451"),
    "spam": Fault("data", "554 5.7.1 looks like spam", RETRY, False, 0, "message refused: 554"),
    "dropped": Fault("data", "drop", DeliveryStatus.UNKNOWN, False, 1, "may have been accepted"),
    "stalled": Fault("data", "stall", DeliveryStatus.UNKNOWN, False, 1, "timed out"),
}


def test_each_fault_ends_in_one_clear_outcome_and_the_next_send_still_works(
    tmp_path: Path, ca: trustme.CA
) -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    with smtp_server("starttls", ca=ca) as server:
        built = build(server, tmp_path, timeout=STALL_TIMEOUT)
        provider = SmtpEmail(built.server, built.sender, clock=lambda: now)
        try:
            outcomes = {}
            for name, fault in FAULTS.items():
                address = f"{name}@example.net"
                queue = (
                    server.handler.faults.rcpt
                    if fault.where == "rcpt"
                    else server.handler.faults.data
                )
                queue[address] = [fault.action]
                outcomes[name] = provider.deliver(an_email(address))
                after = provider.deliver(an_email(f"after-{name}@example.net"))
                assert after.status is DeliveryStatus.DELIVERED, (name, after.detail)
            # the retryable ones again, the server healthy now: each arrives once
            again = {
                name: provider.deliver(an_email(f"{name}@example.net"))
                for name, fault in FAULTS.items()
                if fault.retried
            }
        finally:
            provider.close()

    arrived = Counter(rcpt for m in server.handler.messages for rcpt in m.rcpt_tos)
    for name, fault in FAULTS.items():
        outcome = outcomes[name]
        assert outcome.status is fault.status, (name, outcome.detail)
        assert fault.detail in outcome.detail, (name, outcome.detail)
        assert (outcome.retry_at is not None) is fault.retried, name
        if fault.retried:
            assert outcome.retry_at == now + timedelta(minutes=5)
            assert again[name].status is DeliveryStatus.DELIVERED
        assert arrived[f"{name}@example.net"] == fault.arrived + (1 if fault.retried else 0), name
        assert arrived[f"after-{name}@example.net"] == 1
    assert PASSWORD not in " ".join(o.detail for o in outcomes.values())


def test_a_server_that_is_down_is_retried_not_lost(tmp_path: Path) -> None:
    server = SmtpServer("127.0.0.1", free_port(), "none", timeout=2)
    provider = SmtpEmail(server, "bounces@example.com")
    outcome = provider.deliver(an_email())
    check = provider.check()
    provider.close()
    assert outcome.status is DeliveryStatus.FAILED and outcome.retry_at is not None
    assert outcome.detail.startswith(f"cannot reach 127.0.0.1:{server.port}")
    assert not check.ok and "cannot reach" in check.detail


def test_the_outbox_dispatcher_retries_refusals_and_reports_the_unknown(
    tmp_path: Path, ca: trustme.CA
) -> None:
    """The story's emails through the real dispatcher and an SMTP server that answers one
    recipient's first RCPT with 451 and drops the connection after one message's DATA."""
    project = make_project(tmp_path / "project")
    clock = Clock(datetime(2024, 5, 20, tzinfo=UTC))
    followup = open_followup(project, f"sqlite:///{tmp_path / 'followup.db'}", clock)
    try:
        ingest_file(followup, STORIES / "events.jsonl")
        durable = DurableProject(followup)
        durable.runtime.tick()
        with followup.engine.connect() as conn:
            query = sa.select(outbox).where(outbox.c.channel == "email")
            rows = {row.key: row for row in conn.execute(query)}
        assert len(rows) >= 5
        with smtp_server("starttls", ca=ca) as server:
            tls = ssl.create_default_context()
            ca.configure_trust(tls)
            provider = SmtpEmail(
                SmtpServer(server.host, server.port, "starttls", 5, USERNAME, PASSWORD, tls),
                "bounces@example.com",
                clock=clock,
            )
            server.handler.faults.rcpt["ann@example.com"] = ["451 4.7.1 greylisted, try later"]
            server.handler.faults.data["cara@example.com"] = ["drop"]
            dispatcher = OutboxDispatcher(
                SqlOutboxStore(followup.engine),
                {"email": provider},
                durable.runtime.policies,
                durable.book,
                "UTC",
                clock,
            )
            try:
                first = dispatcher.dispatch()
                clock.now += timedelta(minutes=6)  # past the greylisting's retry_at
                second = dispatcher.dispatch()
                clock.now += timedelta(hours=1)
                third = dispatcher.dispatch()
            finally:
                provider.close()
        with followup.engine.connect() as conn:
            final = {row.key: row for row in conn.execute(query)}
    finally:
        followup.close()

    assert first["email:pending"] == 1 and first["email:unknown"] == 1
    # the greylisted journey's call waited for its email (a journey's sends go in order); it
    # then fails here, where only email has a provider
    assert second == Counter({"email:delivered": 1, "call:failed": 1})
    assert third == Counter()  # nothing left, the unknown one not resent
    statuses = Counter(row.status for row in final.values())
    skipped = statuses.pop("skipped", 0)
    assert statuses == Counter({"delivered": len(rows) - skipped - 1, "unknown": 1})
    [unknown] = [row for row in final.values() if row.status == "unknown"]
    assert "may have been accepted" in unknown.detail
    [greylisted] = [r for r in final.values() if r.status == "delivered" and r.attempts == 2]
    assert greylisted.customer_id == rows[greylisted.key].customer_id
    # every message that arrived is one row's, once; every delivered or unknown row's arrived
    keys = Counter(parsed(m.data)["X-Followup-Key"] for m in server.handler.messages)
    assert set(keys.values()) == {1}
    assert set(keys) == {key for key, row in final.items() if row.status != "skipped"}
    for message in server.handler.messages:
        row = final[parsed(message.data)["X-Followup-Key"]]
        assert parsed(message.data)["Message-ID"] == row.provider_id or row.status == "unknown"
