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


def phone_key(raw: object, region: str = "US") -> str | None:
    """``raw`` in E.164 when it is a valid number (by phonenumbers' metadata) to identify a
    customer by: one merely of a possible length (``000-000-0000``, a French ``06 12 34 56 78``
    read as a US number) would join everyone who typed it. A suppression list or a stored
    trait takes any possible number (:func:`normalize_phone`): a stop request is kept
    whatever is wrong with the number."""
    phone = normalize_phone(raw, region)
    return phone if phone is not None and _valid(phone) else None


@lru_cache(maxsize=65536)
def _valid(e164: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(e164)))
