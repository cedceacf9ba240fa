"""The ``calllist`` provider on SQLite and PostgreSQL: a call delivery becomes exactly one
``call_entries`` row, do-not-call phones are refused for good, and bad settings name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.channels import DeliveryAction, DeliveryStatus, ProviderContext
from engine.errors import ConfigError
from engine.providers import build_providers
from engine.storage.database import create_engine, open_database
from integrations.calls import CallListProvider, calllist_provider, entry_id
from integrations.calls.entries import dnc_add
from integrations.calls.tables import call_dnc
from tests.calls.conftest import DUE, call, entries, recipient
from tests.conftest import FIXED_NOW, TickingClock


def test_a_call_becomes_one_entry_however_often_it_is_delivered(
    provider: CallListProvider, followup: Followup, jane: str, clock: TickingClock
) -> None:
    delivery = call(recipient(jane, first_name='=HYPERLINK("x")'), script="Offer\n  10% off")
    first = provider.deliver(delivery)
    clock.now = FIXED_NOW.replace(hour=13)
    again = provider.deliver(delivery)

    key = "j_0001:3.then.0"
    assert (first.status, first.detail, first.provider_id) == (
        DeliveryStatus.DELIVERED,
        "added to call list high-value-carts",
        entry_id(key),
    )
    assert (again.status, again.detail, again.provider_id) == (
        DeliveryStatus.DELIVERED,
        "already on the call list",
        entry_id(key),
    )
    assert provider.idempotent is True
    assert entries(followup.engine) == [
        {
            "id": entry_id(key),
            "key": key,
            "list_name": "high-value-carts",
            "customer_id": jane,
            "phone": "+14155550100",
            "first_name": '\'=HYPERLINK("x")',
            "last_name": "Doe",
            "timezone": "America/Chicago",
            "window_start": "08:00",
            "window_end": "21:00",
            "priority": "high",
            "reason": "abandoned-cart",
            "script": "Offer 10% off",
            "campaign_id": "abandoned-cart",
            "journey_id": "j_0001",
            "cart_value": "249.50",
            "due_at": DUE,
            "status": "pending",
            "detail": None,
            "outcome": None,
            "agent": None,
            "note": None,
            "created_at": FIXED_NOW,
            "exported_at": None,
            "called_at": None,
            "updated_at": FIXED_NOW,
        }
    ]
    assert entry_id(key) == entry_id(key) and entry_id(key) != entry_id("j_0001:4")


def test_a_do_not_call_phone_is_skipped_as_suppressed(
    provider: CallListProvider, followup: Followup, jane: str
) -> None:
    with followup.engine.begin() as conn:
        dnc_add(conn, ["+14155550100"], "test", FIXED_NOW)
    outcome = provider.deliver(call(recipient(jane)))
    assert outcome.status is DeliveryStatus.SKIPPED  # not sent, and not a fault
    assert outcome.retry_at is None  # permanent: never retried
    assert outcome.detail == "suppressed: do-not-call: +14155550100 is on the do-not-call list"
    assert entries(followup.engine) == []


@pytest.mark.parametrize(
    ("changes", "fields", "action", "detail"),
    [
        ({}, {}, DeliveryAction.AUDIENCE_ADD, "the call list cannot audience_add"),
        ({}, {"list": None}, DeliveryAction.SEND, "no call list"),
        ({"phone": None}, {}, DeliveryAction.SEND, "no phone"),
        (
            {"phone": "12"},
            {},
            DeliveryAction.SEND,
            "no phone: the number on file is not a possible phone number",
        ),
        (
            {"timezone": "Mars/Olympus"},
            {},
            DeliveryAction.SEND,
            "no time zone: 'Mars/Olympus' is not an IANA zone, so calling hours cannot be kept",
        ),
        (
            {},
            {"window_end": "9pm"},
            DeliveryAction.SEND,
            "window_end '9pm' is not a local time HH:MM",
        ),
    ],
)
def test_deliveries_that_cannot_become_calls_fail_for_good(
    tmp_path: Path,
    changes: dict[str, str | None],
    fields: dict[str, str | None],
    action: DeliveryAction,
    detail: str,
) -> None:
    # refused before the database is asked, so SQLite alone tells
    provider = CallListProvider(open_database(f"sqlite:///{tmp_path / 'followup.db'}"))
    outcome = provider.deliver(call(recipient("c_jane", **changes), action=action, **fields))
    assert (outcome.status, outcome.detail, outcome.retry_at) == (
        DeliveryStatus.FAILED,
        detail,
        None,
    )
    assert entries(provider.engine) == []
    provider.close()


def test_a_database_that_does_not_answer_is_retried_later(
    tmp_path: Path, clock: TickingClock
) -> None:
    gone = create_engine(f"sqlite:///{tmp_path / 'no such folder' / 'followup.db'}")
    provider = CallListProvider(gone, clock=clock)
    outcome = provider.deliver(call(recipient("c_jane")))
    assert (outcome.status, outcome.detail, outcome.retry_at) == (
        DeliveryStatus.FAILED,
        "cannot write the call list: OperationalError",
        FIXED_NOW.replace(minute=5),
    )
    check = provider.check()
    assert (check.ok, check.detail) == (False, "the database does not answer: OperationalError")
    provider.close()


def test_the_check_finds_missing_tables(tmp_path: Path) -> None:
    provider = CallListProvider(create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    check = provider.check()
    provider.close()
    assert (check.ok, check.detail) == (
        False,
        "the database lacks the tables call_entries, call_dnc",
    )


def test_the_entry_point_builds_it_from_followup_yaml(database_url: str, tmp_path: Path) -> None:
    built = build_providers(
        tmp_path, {"call": {"provider": "calllist", "path": "calls"}}, database_url=database_url
    )
    provider = built["call"]
    assert isinstance(provider, CallListProvider)
    try:
        check = provider.check()
        assert (check.ok, check.detail) == (True, "call lists in the project database")
        with provider.engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(call_dnc)) == 0
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("channel", "settings", "database_url", "message"),
    [
        ("email", {}, "sqlite://", "providers.email: the calllist provider carries calls only"),
        (
            "call",
            {"folder": "x"},
            "sqlite://",
            "providers.call: unknown setting 'folder'; expected one of provider, path",
        ),
        (
            "call",
            {},
            None,
            (
                "providers.call: the calllist provider keeps its lists in the project database; "
                "set database_url in followup.yaml"
            ),
        ),
    ],
)
def test_bad_configuration_names_the_setting(
    tmp_path: Path,
    channel: str,
    settings: dict[str, str],
    database_url: str | None,
    message: str,
) -> None:
    context = ProviderContext(channel, tmp_path, {}, database_url)
    with pytest.raises(ConfigError) as raised:
        calllist_provider({"provider": "calllist", **settings}, context)
    assert str(raised.value) == message
