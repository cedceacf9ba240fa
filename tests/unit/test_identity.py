"""Identity keys and their normalisation."""

from __future__ import annotations

import pytest

from engine.contact import normalize_email, normalize_phone, phone_key
from engine.events import parse_message
from engine.identity import customer_id_for, identity_keys

T = "2024-05-01T10:00:00Z"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann@Example.COM ", "ann@example.com"),
        ("no-at-sign", None),
        ("@example.com", None),
        ("a b@example.com", None),
        (42, None),
    ],
)
def test_normalize_email(raw: object, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("+1 415 555 0100", "FR", "+14155550100"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("0033 1 42 68 53 00", "FR", "+33142685300"),
        (4155550100, "US", "+14155550100"),
        ("12", "US", None),
        ("call me", "US", None),
        ("", "US", None),
    ],
)
def test_normalize_phone_to_e164(raw: object, region: str, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


def test_keys_strongest_first() -> None:
    [event] = parse_message(
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "timestamp": T,
            "traits": {"email": "Ann@Example.com", "phone": "415-555-0100"},
        }
    )
    assert identity_keys(event) == [
        "user:u1",
        "email:ann@example.com",
        "phone:+14155550100",
        "anon:a1",
    ]


@pytest.mark.parametrize(
    ("phone", "region"),
    [("0000000000", "US"), ("000-000-0000", "US"), ("06 12 34 56 78", "US"), ("+1 555 0100", "US")],
)
def test_a_phone_that_is_not_a_valid_number_is_no_key(phone: str, region: str) -> None:
    """Two shoppers who typed 000-000-0000 are not one customer; the number stays a trait
    (a suppression list still matches it, normalised when it can be)."""
    [event] = parse_message(
        {"type": "identify", "userId": "u1", "timestamp": T, "traits": {"phone": phone}}
    )
    assert identity_keys(event, region) == ["user:u1"]
    assert phone_key(phone, region) is None
    assert phone_key("06 12 34 56 78", "FR") == "+33612345678"


def test_newsletter_signup_email_is_an_identity() -> None:
    [event] = parse_message(
        {
            "type": "track",
            "event": "Subscribed",
            "anonymousId": "a1",
            "timestamp": T,
            "properties": {"email": "new@example.com", "list": "newsletter"},
        }
    )
    assert "email:new@example.com" in identity_keys(event)


def test_alias_links_the_previous_id_as_either_kind() -> None:
    [event] = parse_message({"type": "alias", "userId": "u2", "previousId": "a9", "timestamp": T})
    assert identity_keys(event) == ["user:u2", "user:a9", "anon:a9"]


def test_customer_ids_are_stable_and_distinct() -> None:
    assert customer_id_for("user:u1") == customer_id_for("user:u1")
    assert customer_id_for("user:u1") != customer_id_for("anon:u1")
    assert customer_id_for("user:u1").startswith("c_")
