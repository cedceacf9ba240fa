"""Outcomes on SQLite and PostgreSQL: recorded on the entry and logged once as a
``Call Completed`` event through ingest (for the journey engine), however often reported;
``do_not_call`` puts the phone on the do-not-call list; the dialer's results file is read
strictly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.channels import DeliveryStatus
from engine.errors import InputError
from engine.storage.tables import customers, events, journey_inbox
from integrations.calls import (
    CallListProvider,
    CallOutcome,
    OutcomeRejected,
    OutcomeReport,
    entry_id,
    export_list,
    read_outcomes,
    record_outcome,
)
from integrations.calls.outcomes import _claim
from integrations.calls.tables import call_dnc
from tests.calls.conftest import call, entries, recipient
from tests.conftest import FIXED_NOW

CALLED = datetime(2024, 6, 3, 15, 12, tzinfo=UTC)
ENTRY = entry_id("j_0001:3.then.0")


def _events(followup: Followup) -> list[dict[str, Any]]:
    query = sa.select(events).where(events.c.name == "Call Completed")
    with followup.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _exported(provider: CallListProvider, followup: Followup, who: str, tmp_path: Path) -> None:
    assert provider.deliver(call(recipient(who))).status is DeliveryStatus.DELIVERED
    now = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)
    assert export_list(followup.engine, "high-value-carts", tmp_path / "x.csv", now).exported == 1


def test_an_outcome_is_recorded_and_logged_once(
    provider: CallListProvider, followup: Followup, jane: str, tmp_path: Path
) -> None:
    _exported(provider, followup, jane, tmp_path)
    report = OutcomeReport(ENTRY, CallOutcome.INTERESTED, CALLED, "agent-7", "wants boots")
    assert record_outcome(followup, report) is True
    assert record_outcome(followup, report) is False  # the dialer sent the file twice

    [entry] = entries(followup.engine)
    assert {k: entry[k] for k in ("status", "outcome", "called_at", "agent", "note")} == {
        "status": "called",
        "outcome": "interested",
        "called_at": CALLED,
        "agent": "agent-7",
        "note": "wants boots",
    }
    [event] = _events(followup)
    assert {k: event[k] for k in ("message_id", "type", "timestamp", "customer_id")} == {
        "message_id": f"call-outcome:{ENTRY}",
        "type": "track",
        "timestamp": CALLED,
        "customer_id": jane,
    }
    assert (event["user_id"], event["anonymous_id"], event["channel"]) == ("u_jane", None, "call")
    assert event["payload"] == {
        "properties": {
            "outcome": "interested",
            "list": "high-value-carts",
            "campaign": "abandoned-cart",
            "entry_id": ENTRY,
            "agent": "agent-7",
            "note": "wants boots",
        }
    }
    with followup.engine.connect() as conn:  # the journey engine will see it once
        inbox = conn.scalars(sa.select(journey_inbox.c.message_id)).all()
    assert inbox.count(f"call-outcome:{ENTRY}") == 1


def test_a_different_second_outcome_is_refused_and_changes_nothing(
    provider: CallListProvider, followup: Followup, jane: str, tmp_path: Path
) -> None:
    _exported(provider, followup, jane, tmp_path)
    record_outcome(followup, OutcomeReport(ENTRY, CallOutcome.NO_ANSWER, CALLED))
    later = OutcomeReport(ENTRY, CallOutcome.ANSWERED, CALLED.replace(hour=16), "agent-2")
    with pytest.raises(OutcomeRejected) as refused:
        record_outcome(followup, later)
    assert str(refused.value) == (
        f"{ENTRY}: the outcome no_answer is already recorded (called 2024-06-03T15:12:00+00:00); "
        "not changed to answered"
    )
    assert entries(followup.engine)[0]["outcome"] == "no_answer"
    [event] = _events(followup)
    assert event["payload"]["properties"]["outcome"] == "no_answer"


def test_a_repeat_after_a_crash_before_the_event_logs_it_once(
    provider: CallListProvider, followup: Followup, jane: str, tmp_path: Path
) -> None:
    _exported(provider, followup, jane, tmp_path)
    report = OutcomeReport(ENTRY, CallOutcome.VOICEMAIL, CALLED)
    _claim(followup, report)  # the process stopped here: outcome on the entry, no event
    assert _events(followup) == []
    assert record_outcome(followup, report) is False
    assert [e["payload"]["properties"]["outcome"] for e in _events(followup)] == ["voicemail"]


def test_do_not_call_puts_the_phone_on_the_list(
    provider: CallListProvider, followup: Followup, jane: str, tmp_path: Path
) -> None:
    _exported(provider, followup, jane, tmp_path)
    record_outcome(followup, OutcomeReport(ENTRY, CallOutcome.DO_NOT_CALL, CALLED))
    with followup.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(sa.select(call_dnc))]
    assert rows == [("+14155550100", f"outcome of {ENTRY}", FIXED_NOW)]
    again = provider.deliver(call(recipient(jane), journey="j_0002"))
    assert (again.status, again.retry_at) == (DeliveryStatus.SKIPPED, None)
    assert again.detail.startswith("suppressed: do-not-call")


def test_a_customer_without_a_user_id_is_named_by_an_identity_it_has(
    provider: CallListProvider, followup: Followup, tmp_path: Path
) -> None:
    followup.identify(
        anonymous_id="anon-9", traits={"phone": "+14155550100"}, message_id="anon-identify"
    )
    who = followup.customer_id("anon-9")
    assert who is not None
    _exported(provider, followup, who, tmp_path)
    record_outcome(followup, OutcomeReport(ENTRY, CallOutcome.BUSY, CALLED))
    [event] = _events(followup)
    assert (event["customer_id"], event["user_id"], event["anonymous_id"]) == (
        who,
        None,
        "anon-9",
    )
    with followup.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(customers)) == 1


def test_an_unknown_entry_is_refused(followup: Followup) -> None:
    with pytest.raises(OutcomeRejected, match="call_nope: no such call entry"):
        record_outcome(followup, OutcomeReport("call_nope", CallOutcome.ANSWERED, CALLED))
    assert _events(followup) == []


def test_the_dialers_results_file_is_read_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(
        "\ufeffentry_id,outcome,called_at,agent,note,extra\n"
        "call_1,No Answer,2024-06-03T15:12:00Z,agent-7,,x\n"
        "\n"
        'call_2,do-not-call,,agent-8,"said: never again",\n'
        "call_3,hung up,2024-06-03T15:12:00Z,,,\n"
        ",answered,,,,\n"
        "call_4,answered,yesterday,,,\n".encode()
    )
    rows = list(read_outcomes(path, FIXED_NOW))
    assert rows == [
        (2, OutcomeReport("call_1", CallOutcome.NO_ANSWER, CALLED, "agent-7", None)),
        (
            4,
            OutcomeReport(
                "call_2", CallOutcome.DO_NOT_CALL, FIXED_NOW, "agent-8", "said: never again"
            ),
        ),
        (
            5,
            (
                "outcome: outcome 'hung up' is not one of answered, interested, not_interested, "
                "no_answer, voicemail, busy, wrong_number, do_not_call"
            ),
        ),
        (6, "entry_id: missing"),
        (7, "called_at: 'yesterday' is not an ISO 8601 time; write e.g. 2024-05-01T12:00:00Z"),
    ]


def test_a_results_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("id,result\ncall_1,answered\n")
    with pytest.raises(InputError) as refused:
        list(read_outcomes(path, FIXED_NOW))
    assert str(refused.value) == (
        f"{path}:1: the header lacks entry_id, outcome; expected "
        "entry_id,outcome,called_at,agent,note"
    )
