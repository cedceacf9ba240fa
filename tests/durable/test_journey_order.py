"""A journey's messages arrive in the order its steps sent them: a later send waits while an
earlier send of the same journey is pending (retried) or being sent, and is skipped with the
reason ``earlier_failed`` when the earlier one failed for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.channels import Delivery, DeliveryOutcome, DeliveryStatus
from engine.drive.dispatcher import OutboxDispatcher
from engine.durable.project import DurableProject
from engine.durable.sql_outbox import SqlOutboxStore
from engine.storage.tables import outbox
from tests.durable.harness import (
    Clock,
    ingest_file,
    message,
    one_campaign_project,
    open_followup,
    write_messages,
)

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
TWO_EMAILS = """\
campaign: welcome
trigger: {event: Signed Up}
steps:
  - send: email
    template: hello.html
    subject: First
  - wait: 1h
  - send: email
    template: hello.html
    subject: Second
"""


class _FlakyFirst:
    """Email that fails the first attempt of the subject ``First``: for a while (retried at
    ``retry_at``) or for good (``retry_at`` None). Keeps the subjects it delivered, in order."""

    name = "flaky"
    idempotent = True

    def __init__(self, retry_at: datetime | None) -> None:
        self.retry_at = retry_at
        self.failed = False
        self.delivered: list[str] = []

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        subject = str(delivery.fields["subject"])
        if subject == "First" and not self.failed:
            self.failed = True
            return DeliveryOutcome(DeliveryStatus.FAILED, "421 try later", self.retry_at)
        self.delivered.append(subject)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, "ok")


def _run(
    tmp_path: Path, database_url: str, retry_at: datetime | None, hours: int
) -> tuple[_FlakyFirst, list[tuple[Any, ...]]]:
    one_campaign_project(tmp_path, TWO_EMAILS, {"hello.html": "<p>Hello</p>\n"})
    lines = [
        message("m1", "identify", T, email="ann@example.com", consent={"email": True}),
        message("m2", "Signed Up", T),
    ]
    events = write_messages(tmp_path / "events.jsonl", lines)
    clock = Clock(T)
    followup = open_followup(tmp_path, database_url, clock)
    provider = _FlakyFirst(retry_at)
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        dispatcher = OutboxDispatcher(
            SqlOutboxStore(followup.engine),
            {"email": provider},
            durable.runtime.policies,
            durable.book,
            "UTC",
            clock,
        )
        for hour in range(hours + 1):  # a pass every hour, as cron would run one
            clock.now = T + timedelta(hours=hour)
            durable.runtime.tick()
            dispatcher.dispatch()
        with followup.engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.step, outbox.c.status, outbox.c.detail).order_by(outbox.c.id)
            )
            return provider, [tuple(row) for row in rows]
    finally:
        followup.close()


def test_a_later_email_waits_for_the_retry_of_an_earlier_one(
    tmp_path: Path, database_url: str
) -> None:
    provider, rows = _run(tmp_path, database_url, T + timedelta(hours=2, minutes=30), hours=3)
    assert provider.delivered == ["First", "Second"]
    assert [(step, status) for step, status, _ in rows] == [
        ("0", "delivered"),
        ("2", "delivered"),
    ]


def test_a_later_email_is_skipped_when_an_earlier_one_failed_for_good(
    tmp_path: Path, database_url: str
) -> None:
    provider, rows = _run(tmp_path, database_url, None, hours=2)
    assert provider.delivered == []
    assert rows == [
        ("0", "failed", "421 try later"),
        ("2", "skipped", "earlier_failed: step 0 of this journey was not delivered"),
    ]


AD_THEN_EMAIL = """\
campaign: welcome
trigger: {event: Signed Up}
exit: [{event: Order Completed}]
steps:
  - send: ads
    audience: warm
  - send: email
    template: hello.html
    subject: First
  - wait: 5h
"""


class _Refuses:
    """Email that fails every delivery for good."""

    name = "refuses"
    idempotent = True

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        return DeliveryOutcome(DeliveryStatus.FAILED, "550 no such user")


class _Audiences:
    """Ads that take every audience change, keeping the actions in order."""

    name = "audiences"
    idempotent = True

    def __init__(self) -> None:
        self.actions: list[str] = []

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        self.actions.append(delivery.action.value)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, "ok")


def test_an_audience_removal_is_not_held_by_a_failed_email(
    tmp_path: Path, database_url: str
) -> None:
    """Found by review: the failed email of a journey made its audience removal a skip, and the
    customer stayed in the audience after the journey ended."""
    one_campaign_project(tmp_path, AD_THEN_EMAIL, {"hello.html": "<p>Hello</p>\n"})
    consent = {"email": True, "ads": True}
    lines = [
        message("m1", "identify", T, email="ann@example.com", consent=consent),
        message("m2", "Signed Up", T),
        message("m3", "Order Completed", T + timedelta(hours=1), revenue=10),
    ]
    events = write_messages(tmp_path / "events.jsonl", lines)
    clock = Clock(T)
    followup = open_followup(tmp_path, database_url, clock)
    ads = _Audiences()
    try:
        ingest_file(followup, events)
        durable = DurableProject(followup)
        providers = {"email": _Refuses(), "ads": ads}
        dispatcher = OutboxDispatcher(
            SqlOutboxStore(followup.engine),
            providers,
            durable.runtime.policies,
            durable.book,
            "UTC",
            clock,
        )
        for hour in range(3):
            clock.now = T + timedelta(hours=hour)
            durable.runtime.tick()
            dispatcher.dispatch()
    finally:
        followup.close()
    assert ads.actions == ["audience_add", "audience_remove"]
