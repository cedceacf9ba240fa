"""``export_list`` on SQLite and PostgreSQL: the dialer CSV byte for byte, only entries whose
local calling window is open or still to come today, do-not-call scrubbed at export, and an
export that fails anywhere leaves every entry pending and no file."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from engine.api import Followup
from engine.errors import InputError
from integrations.calls import CallListProvider, entry_id, export_list
from integrations.calls.entries import dnc_add
from integrations.calls.export import CallSlot, calling_slot
from tests.calls.conftest import DUE, call, entries, recipient

NOW = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)  # Monday: 09:00 Chicago, 07:00 LA, 23:00 Tokyo
LIST = "high-value-carts"


def _fill(provider: CallListProvider, followup: Followup) -> None:
    """Entries in several zones and states, as the dispatcher would have delivered them."""
    deliveries = [
        call(recipient("c_jane"), journey="j_jane"),
        call(
            recipient(
                "c_bob",
                phone="(213) 555-0101",
                first_name="@bob",
                last_name="=1+1",
                timezone="America/Los_Angeles",
            ),
            journey="j_bob",
            priority="normal",
            reason="vip",
            cart_value=None,
        ),
        replace(
            call(
                recipient("c_nora", phone="+44 20 7946 0958", first_name="Nora", timezone="UTC"),
                journey="j_nora",
                priority="normal",
                window_start="20:00",
                window_end="02:00",
            ),
            due_at=DUE - timedelta(hours=1),
        ),
        call(
            recipient(
                "c_lee", phone="+33 1 23 45 67 89", first_name="Lee", timezone="Europe/Paris"
            ),
            journey="j_lee",
            priority="low",
            window_end="20:00",
            script="Ask about the order, politely",
        ),
        call(recipient("c_kim", phone="+81 3 1234 5678", timezone="Asia/Tokyo"), journey="j_kim"),
        replace(call(recipient("c_later"), journey="j_later"), due_at=NOW + timedelta(hours=1)),
        call(recipient("c_dan", phone="+14155550199"), journey="j_dan"),
        call(recipient("c_other"), journey="j_other", list="other-list"),
    ]
    for delivery in deliveries:
        assert provider.deliver(delivery).detail.startswith("added")
    with followup.engine.begin() as conn:
        dnc_add(conn, ["+14155550199"], "test", NOW)  # after the call was listed


HEADER = (
    "entry_id,contact_id,phone_e164,first_name,last_name,timezone,call_window_start_local,"
    "call_window_end_local,not_before_utc,not_after_utc,priority,reason,campaign,cart_value,"
    "script,dnc_checked_at\n"
)


def _id(journey: str) -> str:
    return entry_id(f"{journey}:3.then.0")


def test_the_export_lists_who_may_be_called_today_exactly(
    provider: CallListProvider, followup: Followup, tmp_path: Path
) -> None:
    _fill(provider, followup)
    out = tmp_path / "dialer" / "carts.csv"
    summary = export_list(followup.engine, LIST, out, NOW)

    assert (summary.path, summary.exported, summary.suppressed, summary.waiting) == (out, 4, 1, 2)
    assert out.read_text(encoding="utf-8") == HEADER + (
        f"{_id('j_jane')},c_jane,+14155550100,Jane,Doe,America/Chicago,08:00,21:00,"
        "2024-06-03T14:00:00Z,2024-06-04T02:00:00Z,high,abandoned-cart,abandoned-cart,249.50,,"
        "2024-06-03T14:00:00Z\n"
        f"{_id('j_nora')},c_nora,+442079460958,Nora,Doe,UTC,20:00,02:00,"
        "2024-06-03T20:00:00Z,2024-06-04T02:00:00Z,normal,abandoned-cart,abandoned-cart,249.50,,"
        "2024-06-03T14:00:00Z\n"
        f"{_id('j_bob')},c_bob,+12135550101,'@bob,'=1+1,America/Los_Angeles,08:00,21:00,"
        "2024-06-03T15:00:00Z,2024-06-04T04:00:00Z,normal,vip,abandoned-cart,,,"
        "2024-06-03T14:00:00Z\n"
        f"{_id('j_lee')},c_lee,+33123456789,Lee,Doe,Europe/Paris,08:00,20:00,"
        "2024-06-03T14:00:00Z,2024-06-03T18:00:00Z,low,abandoned-cart,abandoned-cart,249.50,"
        '"Ask about the order, politely",2024-06-03T14:00:00Z\n'
    )
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left

    by_journey = {row["journey_id"]: row for row in entries(followup.engine)}
    status = {journey: row["status"] for journey, row in by_journey.items()}
    assert status == {
        "j_jane": "exported",
        "j_nora": "exported",
        "j_bob": "exported",
        "j_lee": "exported",
        "j_kim": "pending",  # 23:00 in Tokyo: today's window is over
        "j_later": "pending",  # not due yet
        "j_dan": "suppressed",  # joined the do-not-call list
        "j_other": "pending",  # another list
    }
    assert by_journey["j_jane"]["exported_at"] == NOW
    assert by_journey["j_dan"]["detail"] == "suppressed: do-not-call"
    assert by_journey["j_kim"]["exported_at"] is None

    again = export_list(followup.engine, LIST, tmp_path / "again.csv", NOW)
    assert (again.exported, again.suppressed, again.waiting) == (0, 0, 2)
    assert (tmp_path / "again.csv").read_text() == HEADER

    tokyo_morning = export_list(
        followup.engine, LIST, tmp_path / "next.csv", NOW + timedelta(hours=10)
    )
    assert (tokyo_morning.exported, tokyo_morning.waiting) == (2, 0)  # Kim at 09:00, and later


def _statuses(followup: Followup) -> set[str]:
    return {row["status"] for row in entries(followup.engine) if row["list_name"] == LIST}


def test_an_existing_file_is_never_overwritten_and_nothing_changes(
    provider: CallListProvider, followup: Followup, tmp_path: Path
) -> None:
    _fill(provider, followup)
    out = tmp_path / "carts.csv"
    out.write_text("yesterday's export, not yet imported\n")
    with pytest.raises(InputError, match="already exists; an export never overwrites one"):
        export_list(followup.engine, LIST, out, NOW)
    assert out.read_text() == "yesterday's export, not yet imported\n"
    assert _statuses(followup) == {"pending"}


@pytest.mark.parametrize("point", ["export_written", "export_linked"])
def test_an_export_that_fails_midway_leaves_the_entries_pending(
    provider: CallListProvider, followup: Followup, tmp_path: Path, point: str
) -> None:
    _fill(provider, followup)
    out = tmp_path / "dialer" / "carts.csv"

    def fail_at(reached: str) -> None:
        if reached == point:
            raise OSError(28, "No space left on device")

    with pytest.raises((InputError, OSError)):
        export_list(followup.engine, LIST, out, NOW, crash=fail_at)
    assert _statuses(followup) == {"pending"}
    assert list(out.parent.iterdir()) == []  # neither the file nor its temporary copy
    assert export_list(followup.engine, LIST, out, NOW).exported == 4  # a retry lists them all


def test_a_folder_that_cannot_be_made_fails_before_anything_changes(
    provider: CallListProvider, followup: Followup, tmp_path: Path
) -> None:
    _fill(provider, followup)
    (tmp_path / "taken").write_text("a file where the folder should be")
    with pytest.raises(InputError, match="cannot write"):
        export_list(followup.engine, LIST, tmp_path / "taken" / "carts.csv", NOW)
    assert _statuses(followup) == {"pending"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "zone", "window", "slot"),
    [
        # open now, until the end of the window
        (
            "2024-06-03T14:00Z",
            "America/Chicago",
            ("08:00", "21:00"),
            ("14:00Z", "2024-06-04T02:00Z"),
        ),
        # opens later today
        (
            "2024-06-03T12:00Z",
            "America/Chicago",
            ("08:00", "21:00"),
            ("13:00Z", "2024-06-04T02:00Z"),
        ),
        # over for today
        ("2024-06-04T02:00Z", "America/Chicago", ("08:00", "21:00"), None),
        # wrapping midnight, open after midnight
        ("2024-06-03T01:00Z", "UTC", ("20:00", "02:00"), ("01:00Z", "2024-06-03T02:00Z")),
        # wrapping midnight, opens tonight
        ("2024-06-03T03:00Z", "UTC", ("20:00", "02:00"), ("20:00Z", "2024-06-04T02:00Z")),
        # start == end: no closed hours
        ("2024-06-03T03:00Z", "UTC", ("00:00", "00:00"), ("03:00Z", "2024-06-04T00:00Z")),
        # a DST night: 08:00 local on the spring-forward Sunday is 12:00Z, not 13:00Z
        (
            "2024-03-10T07:30Z",
            "America/New_York",
            ("08:00", "21:00"),
            ("12:00Z", "2024-03-11T01:00Z"),
        ),
    ],
)
def test_the_calling_slot_is_in_the_customers_local_time(
    now: str, zone: str, window: tuple[str, str], slot: tuple[str, str] | None
) -> None:
    moment = _at(now.replace("Z", "+00:00"))
    found = calling_slot(moment, zone, time.fromisoformat(window[0]), time.fromisoformat(window[1]))
    if slot is None:
        assert found is None
        return
    start = slot[0] if "T" in slot[0] else now[:11] + slot[0]
    expected = CallSlot(_at(start.replace("Z", "+00:00")), _at(slot[1].replace("Z", "+00:00")))
    assert found == expected
