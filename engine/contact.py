"""Email addresses and phone numbers in the one form followup compares them in."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


def normalize_email(raw: object) -> str | None:
    """``raw`` trimmed and lowercased, or ``None`` when it cannot be an address."""
    if not isinstance(raw, str):
        return None
    email = raw.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        return None
    return email


@lru_cache(maxsize=65536)
def _normalize_phone_text(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_phone(raw: object, region: str = "US") -> str | None:
    """``raw`` in E.164 (``+14155550100``), using ``region`` for national numbers; ``None`` when it
    is not a possible phone number."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        return None
    return _normalize_phone_text(raw.strip(), region)
