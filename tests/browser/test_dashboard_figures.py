"""What the dashboard reads beside the report, without a browser: the period picked on the form,
entries per day and the outbox by status and reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from engine.api import Followup
from engine.durable.sql_service import SqlServiceReads
from engine.reports.journey_counts import Period
from engine.service.dashboard.figures import daily_entries, outbox_health, pick_period
from engine.storage.tables import decisions, outbox

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_the_period_picker() -> None:
    assert pick_period({}, NOW).period == Period(NOW - timedelta(days=30), None)
    assert pick_period({"range": "7d"}, NOW).period == Period(NOW - timedelta(days=7), None)
    assert pick_period({"range": "90d"}, NOW).period == Period(NOW - timedelta(days=90), None)
    assert pick_period({"range": "all"}, NOW).period == Period()
    custom = pick_period({"range": "custom", "since": "2024-05-01", "until": "2024-05-02"}, NOW)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    assert custom.period == Period(start, start + timedelta(days=2))
    assert "range=custom" in custom.query and "since=2024-05-01" in custom.query
    assert pick_period({"since": "2024-05-01"}, NOW).period == Period(start, None)
    for bad in ({"since": "May 1st"}, {"since": "2024-05-03", "until": "2024-05-01"}):
        refused = pick_period({"range": "custom", **bad}, NOW)
        assert refused.error is not None
        assert refused.period == Period(NOW - timedelta(days=30), None)
    assert pick_period({"range": "forever"}, NOW).range == "30d"


def _outbox_row(
    n: int, status: str, attempts: int = 0, detail: str | None = None
) -> dict[str, object]:
    return {
        "key": f"j{n}:1:send",
        "journey_id": f"j{n}",
        "step": "1",
        "campaign_id": "cart",
        "customer_id": f"c{n}",
        "channel": "email",
        "action": "send",
        "fields": {},
        "status": status,
        "detail": detail,
        "attempts": attempts,
        "decided_at": NOW,
        "next_attempt_at": NOW,
        "updated_at": NOW,
    }


def test_the_outbox_by_status_and_reason(followup: Followup) -> None:
    rows = [
        _outbox_row(1, "pending"),
        _outbox_row(2, "pending", 2, "smtp: 451 try later"),
        _outbox_row(3, "sending", 1),
        _outbox_row(4, "delivered", 1),
        _outbox_row(5, "failed", 3, "smtp: 550 no such user"),
        _outbox_row(6, "failed", 3, "smtp: 554 rejected"),
        _outbox_row(7, "failed", 1, "render_error: undefined name"),
        _outbox_row(8, "skipped", 0, "no_consent"),
        _outbox_row(9, "skipped", 0, "exited:Order Completed"),
        _outbox_row(10, "unknown", 1, "timeout: no answer"),
        _outbox_row(11, "failed", 1, None),
    ]
    with followup.engine.begin() as conn:
        conn.execute(outbox.insert(), rows)
    with followup.engine.connect() as conn:
        health = outbox_health(SqlServiceReads(conn))
    assert (health.pending, health.retrying, health.sending) == (2, 1, 1)
    assert (health.delivered, health.unknown) == (1, 1)
    assert dict(health.failed) == {"smtp": 2, "render_error": 1, "no detail": 1}
    assert dict(health.skipped) == {"no_consent": 1, "exited": 1}


def test_entries_per_day(followup: Followup) -> None:
    def enter(n: int, campaign: str, at: datetime) -> dict[str, object]:
        return {
            "at": at,
            "campaign_id": campaign,
            "journey_id": f"j{n}",
            "customer_id": f"c{n}",
            "action": "enter",
            "fields": {},
            "recorded_at": at,
        }

    day = datetime(2024, 5, 10, 23, 30, tzinfo=UTC)
    with followup.engine.begin() as conn:
        conn.execute(
            decisions.insert(),
            [
                enter(1, "cart", day),
                enter(2, "cart", day + timedelta(hours=1)),  # the next UTC day
                enter(3, "cart", day + timedelta(days=2)),
                enter(4, "promo", day),
            ],
        )
        conn.execute(sa.insert(decisions), [{**enter(5, "cart", day), "action": "exit"}])
    with followup.engine.connect() as conn:
        everything = daily_entries(SqlServiceReads(conn), Period(), NOW)
        since = Period(datetime(2024, 5, 11, tzinfo=UTC), None)
        last_days = daily_entries(SqlServiceReads(conn), since, day + timedelta(days=1))
    assert everything.days == ("2024-05-10", "2024-05-11", "2024-05-12")
    assert everything.of("cart") == (1, 1, 1)
    assert everything.of("promo") == (1, 0, 0)
    assert everything.of("none") == (0, 0, 0)
    assert last_days.days == ("2024-05-11", "2024-05-12")
    assert last_days.of("cart") == (1, 1)


def test_a_long_period_makes_a_short_trend_line(followup: Followup) -> None:
    """Found by review: a custom period from year 1 built a point per day (22 MB pages that
    starved ingest); the line starts at the first entry and sums days into 120 points at most."""
    first = datetime(1997, 1, 1, tzinfo=UTC)
    rows = [
        {
            "at": first + timedelta(days=n * 30),
            "campaign_id": "cart",
            "journey_id": f"j{n}",
            "customer_id": f"c{n}",
            "action": "enter",
            "fields": {},
            "recorded_at": first,
        }
        for n in range(250)  # about twenty years
    ]
    with followup.engine.begin() as conn:
        conn.execute(decisions.insert(), rows)
    with followup.engine.connect() as conn:
        since = Period(datetime(1900, 1, 1, tzinfo=UTC), None)
        found = daily_entries(SqlServiceReads(conn), since, NOW)
    assert found.days[0] == "1997-01-01"
    assert len(found.days) <= 120
    assert sum(found.of("cart")) == 250


def test_dates_out_of_range_are_form_errors() -> None:
    for bad in ({"since": "0001-01-01"}, {"until": "9999-12-31"}, {"since": "20240101"}):
        refused = pick_period({"range": "custom", **bad}, NOW)
        assert refused.error is not None, bad
