"""Unsubscribe links: signed, expiring, refused when forged, malformed or late; the project key
is made once and shared by processes that start together."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.events import EventInvalid, parse_message
from engine.unsubscribe import InvalidToken, UnsubscribeLinks, signing_key

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_a_link_round_trips_until_it_expires() -> None:
    links = UnsubscribeLinks(b"k" * 32, "https://shop.example.com/", timedelta(days=2))
    url = links.url("cus_1", "email", NOW)
    assert url.startswith("https://shop.example.com/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    request = links.verify(token, NOW + timedelta(days=1))
    assert (request.customer_id, request.channel) == ("cus_1", "email")
    with pytest.raises(InvalidToken, match="expired"):
        links.verify(token, NOW + timedelta(days=2))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "e30" + t[3:],  # payload changed
        lambda t: t.replace(".", ""),  # no signature
        lambda t: t + "é",  # not ASCII
        lambda t: "",
    ],
)
def test_forged_and_malformed_tokens_are_refused(mangle: object) -> None:
    links = UnsubscribeLinks(b"k" * 32, "http://127.0.0.1:8000")
    token = links.token("cus_1", "email", NOW)
    with pytest.raises(InvalidToken):
        links.verify(mangle(token), NOW)  # type: ignore[operator]
    other = UnsubscribeLinks(b"x" * 32, "http://127.0.0.1:8000")
    with pytest.raises(InvalidToken, match="signature"):
        other.verify(token, NOW)


def test_the_project_key_comes_from_the_environment_or_one_file(tmp_path: Path) -> None:
    assert signing_key(tmp_path, {"FOLLOWUP_SECRET_KEY": " s3cret "}) == b"s3cret"
    found: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: found.append(signing_key(tmp_path, {}))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) >= 32
    assert (tmp_path / ".followup" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert signing_key(tmp_path, {}) == found[0]


def test_names_longer_than_the_event_log_holds_are_refused_at_parse() -> None:
    message = {"type": "track", "event": "x" * 256, "userId": "u", "timestamp": NOW.isoformat()}
    with pytest.raises(EventInvalid, match="event is longer than 255"):
        parse_message(message)
    with pytest.raises(EventInvalid, match="channel is longer than 32"):
        parse_message({**message, "event": "ok", "context": {"channel": "c" * 33}})
