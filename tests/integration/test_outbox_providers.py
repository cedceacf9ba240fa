"""The file outbox providers on real files: formats, exactly-once, crashes and concurrency."""

from __future__ import annotations

import csv
import email
import email.policy
import errno
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

import integrations.outbox.email as email_outbox
from engine.channels import Delivery, DeliveryAction, DeliveryStatus, Recipient
from engine.errors import ConfigError
from integrations.outbox import (
    CsvCallList,
    FileAdsOutbox,
    FileEmailOutbox,
    build_file_providers,
)
from integrations.outbox.ads import email_sha256, phone_sha256

DUE = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 13, 0, tzinfo=UTC)
JANE = Recipient(
    customer_id="c_42",
    user_id="u_42",
    email=" Jane.Doe@Example.com ",
    phone="+14155550100",
    first_name="Jane",
    last_name="Doe",
    timezone="America/Chicago",
)
JANE_EMAIL_SHA = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
JANE_PHONE_SHA = "5e7ec4c79ccac6e420876e65ad0e6b4b2ccf73ec3dccb50297bf2890a1ec73b9"


def delivery(
    channel: str,
    step: str = "1",
    journey: str = "j_0123abcd",
    action: DeliveryAction = DeliveryAction.SEND,
    recipient: Recipient = JANE,
    **fields: Any,
) -> Delivery:
    return Delivery(
        key=f"{journey}:{step}",
        campaign="abandoned-cart",
        journey=journey,
        step=step,
        channel=channel,
        action=action,
        due_at=DUE,
        recipient=recipient,
        fields=fields,
    )


def an_email(step: str = "1", **fields: Any) -> Delivery:
    content: dict[str, Any] = {
        "subject": "Jane, you left 2 items behind",
        "text": "Your cart is waiting.",
        "html": "<p>Your cart is <b>waiting</b>.</p>",
        "from": "Shop <shop@example.com>",
        "reply_to": "help@example.com",
        "unsubscribe_url": "https://shop.example.com/u/abc",
    }
    return delivery("email", step, **{**content, **fields})


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def lines(path: Path) -> list[str]:
    text = path.read_text()
    assert text.endswith("\n")
    return text.splitlines()


# --- email -----------------------------------------------------------------------------------


def test_email_is_an_rfc5322_message_with_both_parts_and_every_header(tmp_path: Path) -> None:
    outbox = FileEmailOutbox(tmp_path)
    outcome = outbox.deliver(an_email("2.then.0"))

    assert outcome.status is DeliveryStatus.DELIVERED
    assert [p.name for p in tmp_path.iterdir()] == ["j_0123abcd-2.then.0.eml"]
    assert outcome.provider_id == "j_0123abcd-2.then.0.eml"
    message = read_eml(tmp_path / "j_0123abcd-2.then.0.eml")
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "Jane Doe <Jane.Doe@Example.com>"
    assert message["From"] == "Shop <shop@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Subject"] == "Jane, you left 2 items behind"
    assert parsedate_to_datetime(message["Date"]) == DUE
    assert message["Message-ID"].endswith("@example.com>")
    assert message["List-Unsubscribe"] == "<https://shop.example.com/u/abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Followup-Key"] == "j_0123abcd:2.then.0"
    assert message["X-Followup-Campaign"] == "abandoned-cart"
    assert message["X-Followup-Journey"] == "j_0123abcd"
    assert message["X-Followup-Step"] == "2.then.0"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    assert text.get_content().strip() == "Your cart is waiting."
    assert html.get_content().strip() == "<p>Your cart is <b>waiting</b>.</p>"
    assert b"\r\n" in (tmp_path / "j_0123abcd-2.then.0.eml").read_bytes()


def test_email_defaults_sender_and_leaves_optional_headers_out(tmp_path: Path) -> None:
    outbox = FileEmailOutbox(tmp_path, sender="news@shop.example")
    plain = delivery("email", subject="Hi", html="<p>Hi</p>", tags="welcome")
    assert outbox.deliver(plain).status is DeliveryStatus.DELIVERED

    message = read_eml(tmp_path / "j_0123abcd-1.eml")
    assert message["From"] == "news@shop.example"
    assert message["Message-ID"].endswith("@shop.example>")
    assert message["Reply-To"] is None
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None
    assert message["X-Followup-Tags"] == "welcome"
    assert message.get_content_type() == "text/html"


def test_email_is_the_same_bytes_on_every_attempt_and_unique_per_key(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    FileEmailOutbox(first).deliver(an_email("1"))
    FileEmailOutbox(again).deliver(an_email("1"))
    FileEmailOutbox(other).deliver(an_email("2"))
    files = [next(folder.glob("*.eml")) for folder in (first, again, other)]
    ids = [read_eml(file)["Message-ID"] for file in files]
    assert ids[0] == ids[1] != ids[2]
    assert files[0].read_bytes() == files[1].read_bytes()  # same delivery, same bytes


def test_email_repeated_key_is_one_file_and_a_harmless_repeat(tmp_path: Path) -> None:
    outbox = FileEmailOutbox(tmp_path)
    assert outbox.deliver(an_email()).detail == "written to the outbox"
    before = (tmp_path / "j_0123abcd-1.eml").read_bytes()

    again = FileEmailOutbox(tmp_path).deliver(an_email(subject="changed"))

    assert again.status is DeliveryStatus.DELIVERED
    assert again.detail == "already in the outbox"
    assert os.listdir(tmp_path) == ["j_0123abcd-1.eml"]
    assert (tmp_path / "j_0123abcd-1.eml").read_bytes() == before


def test_email_publish_never_overwrites_a_file_that_appeared_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers racing on one key: the loser's link fails, its temp file goes, one file."""
    outbox = FileEmailOutbox(tmp_path)
    final = tmp_path / "j_0123abcd-1.eml"
    real_publish = email_outbox._publish

    def racing_publish(temp: str, target: str) -> bool:
        Path(target).write_bytes(b"the other writer's message")
        return real_publish(temp, target)

    monkeypatch.setattr(email_outbox, "_publish", racing_publish)
    outcome = outbox.deliver(an_email())

    assert (outcome.status, outcome.detail) == (DeliveryStatus.DELIVERED, "already in the outbox")
    assert os.listdir(tmp_path) == ["j_0123abcd-1.eml"]
    assert final.read_bytes() == b"the other writer's message"


class Crash(Exception):
    """The process dying between the temp write and the publish."""


def test_email_crash_before_publish_leaves_no_message_and_a_retry_writes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bytes] = []

    def crash(temp: str, final: str) -> bool:
        written.append(Path(temp).read_bytes())
        raise Crash

    monkeypatch.setattr(email_outbox, "_publish", crash)
    with pytest.raises(Crash):
        FileEmailOutbox(tmp_path).deliver(an_email())
    assert written and b"Subject: Jane, you left 2 items behind" in written[0]
    assert list(tmp_path.glob("*.eml")) == []

    monkeypatch.undo()
    outcome = FileEmailOutbox(tmp_path).deliver(an_email())

    assert (outcome.status, outcome.detail) == (DeliveryStatus.DELIVERED, "written to the outbox")
    assert os.listdir(tmp_path) == ["j_0123abcd-1.eml"]
    assert read_eml(tmp_path / "j_0123abcd-1.eml").get_body() is not None


def test_email_start_removes_stale_temp_files_only(tmp_path: Path) -> None:
    stale = tmp_path / ".j_0123abcd-1.eml.k3x9.tmp"
    fresh = tmp_path / ".j_0123abcd-2.eml.p0q1.tmp"
    stale.write_bytes(b"half a mess")
    fresh.write_bytes(b"being written right now")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    FileEmailOutbox(tmp_path)

    assert sorted(os.listdir(tmp_path)) == [fresh.name]


def test_email_disk_failure_is_retried_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileEmailOutbox(tmp_path, clock=lambda: NOW, retry_after=timedelta(minutes=2))

    real_open = os.open

    def disk_full(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", disk_full)
    outcome = outbox.deliver(an_email())

    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.detail == "cannot write the outbox: No space left on device"
    assert outcome.retry_at == NOW + timedelta(minutes=2)
    assert os.listdir(tmp_path) == []


def test_email_batch_is_one_group_commit_with_an_outcome_per_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is written, synced once, then published: each delivery gets its own outcome
    (written, already there, cannot be made) and the messages are the bytes one by one gives."""
    one_by_one = tmp_path / "one"
    for step in ("1", "3"):
        FileEmailOutbox(one_by_one).deliver(an_email(step))
    batch_folder = tmp_path / "batch"
    outbox = FileEmailOutbox(batch_folder)
    outbox.deliver(an_email("2"))
    syncs: list[list[Path]] = []
    real_sync = email_outbox.sync_files

    def counted(folder: Path, files: Any) -> None:
        syncs.append(list(files))
        real_sync(folder, files)

    monkeypatch.setattr(email_outbox, "sync_files", counted)
    outcomes = outbox.deliver_batch(
        [an_email("1"), an_email("2"), an_email("x", text=None, html=None), an_email("3")]
    )

    assert [(o.status, o.detail) for o in outcomes] == [
        (DeliveryStatus.DELIVERED, "written to the outbox"),
        (DeliveryStatus.DELIVERED, "already in the outbox"),
        (DeliveryStatus.FAILED, "no body: neither text nor html"),
        (DeliveryStatus.DELIVERED, "written to the outbox"),
    ]
    assert [len(files) for files in syncs] == [2]
    assert sorted(os.listdir(batch_folder)) == [f"j_0123abcd-{n}.eml" for n in (1, 2, 3)]
    for step in ("1", "3"):
        name = f"j_0123abcd-{step}.eml"
        assert (batch_folder / name).read_bytes() == (one_by_one / name).read_bytes()


def test_email_batch_the_disk_refused_publishes_nothing_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileEmailOutbox(tmp_path, clock=lambda: NOW, retry_after=timedelta(minutes=2))

    def disk_failed(folder: Path, files: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(email_outbox, "sync_files", disk_failed)
    outcomes = outbox.deliver_batch([an_email("1"), an_email("2")])

    assert {(o.status, o.detail, o.retry_at) for o in outcomes} == {
        (
            DeliveryStatus.FAILED,
            "cannot write the outbox: Input/output error",
            NOW + timedelta(minutes=2),
        )
    }
    assert os.listdir(tmp_path) == []  # no message, no temporary file


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda: an_email(text=None, html=None), "no body: neither text nor html"),
        (lambda: replace(an_email(), recipient=Recipient("c_1")), "no email address"),
        (lambda: an_email(subject="Hi\r\nBcc: everyone@example.com"), "invalid message"),
        (
            lambda: replace(an_email(), action=DeliveryAction.AUDIENCE_ADD),
            "the email outbox cannot audience_add",
        ),
    ],
)
def test_email_that_cannot_be_made_fails_for_good(
    tmp_path: Path, make: Callable[[], Delivery], detail: str
) -> None:
    outcome = FileEmailOutbox(tmp_path).deliver(make())
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.detail.startswith(detail)
    assert outcome.retry_at is None
    assert os.listdir(tmp_path) == []


def test_email_file_names_are_safe_and_distinct(tmp_path: Path) -> None:
    outbox = FileEmailOutbox(tmp_path)
    outbox.deliver(replace(an_email("1"), journey="../etc/x", key="../etc/x:1"))
    outbox.deliver(replace(an_email("1"), journey="__etc_x", key="__etc_x:1"))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2
    assert all("/" not in name and name.endswith(".eml") for name in names)


# --- ads -------------------------------------------------------------------------------------


def an_audience_change(
    step: str = "3", action: DeliveryAction = DeliveryAction.AUDIENCE_ADD, **overrides: Any
) -> Delivery:
    return delivery("ads", step, action=action, **{"audience": "cart-abandoners", **overrides})


def test_ads_hashes_match_metas_published_vectors() -> None:
    assert email_sha256(" Jane.Doe@Example.com ") == JANE_EMAIL_SHA
    assert phone_sha256("+14155550100") == JANE_PHONE_SHA
    assert phone_sha256("+1 (415) 555-0100") == JANE_PHONE_SHA
    assert email_sha256(None) is None and phone_sha256("not a phone") is None


def test_ads_changes_are_json_lines_per_audience(tmp_path: Path) -> None:
    outbox = FileAdsOutbox(tmp_path)
    added = outbox.deliver(an_audience_change("3"))
    removed = outbox.deliver(an_audience_change("exit", DeliveryAction.AUDIENCE_REMOVE))

    assert added.status is removed.status is DeliveryStatus.DELIVERED
    assert added.provider_id == "cart-abandoners.jsonl"
    rows = [json.loads(line) for line in lines(tmp_path / "cart-abandoners.jsonl")]
    assert rows == [
        {
            "key": "j_0123abcd:3",
            "action": "add",
            "audience": "cart-abandoners",
            "customer_id": "c_42",
            "email_sha256": JANE_EMAIL_SHA,
            "phone_sha256": JANE_PHONE_SHA,
            "at": "2024-06-01T12:30:00+00:00",
        },
        {
            "key": "j_0123abcd:exit",
            "action": "remove",
            "audience": "cart-abandoners",
            "customer_id": "c_42",
            "email_sha256": JANE_EMAIL_SHA,
            "phone_sha256": JANE_PHONE_SHA,
            "at": "2024-06-01T12:30:00+00:00",
        },
    ]
    assert list(rows[0]) == [
        "key",
        "action",
        "audience",
        "customer_id",
        "email_sha256",
        "phone_sha256",
        "at",
    ]


def test_ads_repeated_key_is_one_line_also_after_a_restart(tmp_path: Path) -> None:
    FileAdsOutbox(tmp_path).deliver(an_audience_change())
    outbox = FileAdsOutbox(tmp_path)  # a new process: learns the keys from the file
    again = outbox.deliver(an_audience_change())
    twice = outbox.deliver(an_audience_change())

    assert again.status is twice.status is DeliveryStatus.DELIVERED
    assert again.detail == "already in the outbox"
    assert len(lines(tmp_path / "cart-abandoners.jsonl")) == 1


def test_ads_torn_last_line_from_a_crash_is_cut_off(tmp_path: Path) -> None:
    outbox = FileAdsOutbox(tmp_path)
    outbox.deliver(an_audience_change("1"))
    with (tmp_path / "cart-abandoners.jsonl").open("ab") as handle:
        handle.write(b'{"key":"j_0123abcd:2","action":"ad')  # the crash mid-write

    outcome = FileAdsOutbox(tmp_path).deliver(an_audience_change("2"))

    assert outcome.detail == "appended to the outbox"
    keys = [json.loads(line)["key"] for line in lines(tmp_path / "cart-abandoners.jsonl")]
    assert keys == ["j_0123abcd:1", "j_0123abcd:2"]


def test_ads_without_any_identifier_or_audience_fails_for_good(tmp_path: Path) -> None:
    outbox = FileAdsOutbox(tmp_path)
    anonymous = replace(an_audience_change(), recipient=Recipient("c_1"))
    no_audience = an_audience_change(audience="")
    send = replace(an_audience_change(), action=DeliveryAction.SEND)
    details = [outbox.deliver(d).detail for d in (anonymous, no_audience, send)]
    assert details == [
        "no email or phone to match the customer on",
        "no audience",
        "the ads outbox cannot send",
    ]
    assert os.listdir(tmp_path) == []


def run_in_threads(work: Callable[[int], None], threads: int = 2) -> None:
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@pytest.mark.parametrize("shared", [True, False], ids=["one-instance", "two-instances"])
def test_ads_concurrent_appends_keep_every_line_whole(tmp_path: Path, shared: bool) -> None:
    """Two instances stand for two processes: only the file lock keeps them apart."""
    instances = [FileAdsOutbox(tmp_path)] * 2 if shared else [FileAdsOutbox(tmp_path) for _ in "ab"]
    per_thread = 150

    def work(thread: int) -> None:
        for n in range(per_thread):
            instances[thread].deliver(an_audience_change(f"{thread}.{n}"))

    run_in_threads(work)

    rows = [json.loads(line) for line in lines(tmp_path / "cart-abandoners.jsonl")]
    assert len(rows) == 2 * per_thread
    assert len({row["key"] for row in rows}) == 2 * per_thread
    repeat = instances[1].deliver(an_audience_change("0.0"))
    assert repeat.detail == "already in the outbox"


# --- calls -----------------------------------------------------------------------------------

HEADER = (
    "key,contact_id,phone_e164,first_name,last_name,timezone,call_window_start_local,"
    "call_window_end_local,not_before_utc,priority,reason,campaign,cart_value,script"
)


def a_call(step: str = "4.then.0", **overrides: Any) -> Delivery:
    fields = {
        "list": "high-value-carts",
        "priority": "high",
        "reason": "abandoned_cart",
        "window_start": "09:00",
        "window_end": "20:00",
        "cart_value": 249.5,
        "script": "Ask Jane about the boots",
        **overrides,
    }
    return delivery("call", step, **fields)


def test_call_list_has_the_header_and_the_row_exactly(tmp_path: Path) -> None:
    outcome = CsvCallList(tmp_path).deliver(a_call())

    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.provider_id == "high-value-carts.csv"
    assert lines(tmp_path / "high-value-carts.csv") == [
        HEADER,
        (
            "j_0123abcd:4.then.0,c_42,+14155550100,Jane,Doe,America/Chicago,09:00,20:00,"
            "2024-06-01T12:30:00+00:00,high,abandoned_cart,abandoned-cart,249.50,"
            "Ask Jane about the boots"
        ),
    ]


def test_call_list_defaults_and_quoting(tmp_path: Path) -> None:
    odd = replace(
        a_call(
            priority=None,
            reason=None,
            window_start=None,
            window_end=None,
            cart_value=None,
            script='=HYPERLINK("http://evil.test","x"), thanks\nfor the order',
        ),
        recipient=replace(JANE, first_name="=HYPERLINK(1)", last_name="O'Brien, Jr.\nII"),
    )
    CsvCallList(tmp_path).deliver(odd)

    with (tmp_path / "high-value-carts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = rows[0]
    assert (row["first_name"], row["last_name"]) == ("'=HYPERLINK(1)", "O'Brien, Jr. II")
    # a script rendered from a name is defused as the name is (docs/channels.md)
    assert row["script"] == '\'=HYPERLINK("http://evil.test","x"), thanks for the order'
    assert (row["call_window_start_local"], row["call_window_end_local"]) == ("08:00", "21:00")
    assert (row["priority"], row["reason"], row["cart_value"]) == (
        "normal",
        "abandoned-cart",
        "",
    )


def test_call_list_repeated_key_is_one_row_also_after_a_restart(tmp_path: Path) -> None:
    CsvCallList(tmp_path).deliver(a_call())
    again = CsvCallList(tmp_path).deliver(a_call())
    assert (again.status, again.detail) == (DeliveryStatus.DELIVERED, "already in the outbox")
    assert len(lines(tmp_path / "high-value-carts.csv")) == 2


@pytest.mark.parametrize(
    ("phone", "detail"),
    [(None, "no phone"), ("12", "no phone: the number on file is not a possible phone number")],
)
def test_call_without_a_phone_fails_for_good(
    tmp_path: Path, phone: str | None, detail: str
) -> None:
    outcome = CsvCallList(tmp_path).deliver(replace(a_call(), recipient=replace(JANE, phone=phone)))
    assert (outcome.status, outcome.detail, outcome.retry_at) == (
        DeliveryStatus.FAILED,
        detail,
        None,
    )
    assert os.listdir(tmp_path) == []


def test_call_concurrent_appends_keep_every_row_whole(tmp_path: Path) -> None:
    lists = [CsvCallList(tmp_path), CsvCallList(tmp_path)]

    def work(thread: int) -> None:
        for n in range(100):
            lists[thread].deliver(a_call(f"{thread}.{n}"))

    run_in_threads(work)

    with (tmp_path / "high-value-carts.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER.split(",")
    assert len(rows) == 201 and all(len(row) == 14 for row in rows)
    assert len({row[0] for row in rows[1:]}) == 200


# --- registry --------------------------------------------------------------------------------


def test_registry_defaults_to_the_file_outbox(tmp_path: Path) -> None:
    providers = build_file_providers(tmp_path, {})

    assert set(providers) == {"email", "ads", "call", "webhook"}  # webhook: http, no urls yet
    email_provider, ads, calls = providers["email"], providers["ads"], providers["call"]
    assert isinstance(email_provider, FileEmailOutbox)
    assert isinstance(ads, FileAdsOutbox)
    assert isinstance(calls, CsvCallList)
    assert email_provider.path == tmp_path / "outbox/email"
    assert ads.path == tmp_path / "outbox/ads"
    assert calls.path == tmp_path / "outbox/calls"
    assert all(folder.is_dir() for folder in (email_provider.path, ads.path, calls.path))


def test_registry_uses_configured_paths_and_sender(tmp_path: Path) -> None:
    providers = build_file_providers(
        tmp_path,
        {
            "email": {"provider": "outbox", "path": "out/mail", "sender": "shop@example.com"},
            "call": {"provider": "csv", "path": "dialer"},
        },
    )
    email_provider, calls = providers["email"], providers["call"]
    assert isinstance(email_provider, FileEmailOutbox) and isinstance(calls, CsvCallList)
    assert email_provider.path == tmp_path / "out/mail"
    assert email_provider.sender == "shop@example.com"
    assert calls.path == tmp_path / "dialer"
    assert providers["ads"].deliver(an_audience_change()).status is DeliveryStatus.DELIVERED
    assert (tmp_path / "outbox/ads/cart-abandoners.jsonl").exists()


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ({"email": {"provider": "sendgrid"}}, "unknown email provider 'sendgrid'"),
        ({"email": {"provider": "outbx"}}, "did you mean 'outbox'?"),
        ({"email": {"provider": "csv"}}, "providers.email: the csv provider carries calls only"),
        ({"sms": {"provider": "outbox"}}, "unknown channel 'sms'"),
        ({"call": {"provider": "csv", "pth": "x"}}, "unknown setting 'pth'; did you mean 'path'?"),
        ({"call": {"path": "x"}}, "providers.call needs a provider"),
        ({"ads": "outbox"}, "providers.ads must be a mapping"),
        ({"email": {"provider": "outbox", "sender": "nobody"}}, "must be an email address"),
    ],
)
def test_registry_rejects_what_it_cannot_build(
    tmp_path: Path, providers: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_file_providers(tmp_path, providers)


def test_registry_says_which_provider_carries_calls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use provider: csv for calls"):
        build_file_providers(tmp_path, {"call": {"provider": "outbox"}})
