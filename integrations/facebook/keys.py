"""Customer match keys as Meta wants them: normalised, then SHA-256 (lowercase hex).

One module for every place that hashes customers for Meta: the Facebook custom-audience provider
and the ads file outbox (:mod:`integrations.outbox.ads`). The rules are Meta's customer-file
rules (the Marketing API custom-audience guide, restated in
``rudderlabs/rudderstack-docs:destinations/advertising/fb_custom_audience.md``; the phone rule from
https://www.facebook.com/business/help/2082575038703844); see ``INTEGRATIONS.md`` section 3.3.
They differ from the SDK helper (``CustomAudienceMixin.normalize_key``) on purpose, where the
helper is wrong: names keep accented letters (Meta: "special characters in UTF-8"), UK postcodes
lose their spaces, and a country is an ISO code or nothing (the helper turns "United States"
into ``un``). ``EXTERN_ID`` is sent as it is, not hashed. A key the customer lacks is ``""``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from engine.channels import Recipient
from engine.contact import normalize_email, normalize_phone

SCHEMA = ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "EXTERN_ID")
"""The multi-key schema of every upload, in row order."""

_US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")
_UK_POSTCODE = re.compile(r"^([a-z]{1,2}\d[a-z\d]?\d)[a-z]{2}$")


def sha256_hex(value: str) -> str:
    """SHA-256 of ``value`` (UTF-8) as lowercase hex; ``""`` stays ``""`` (a missing key)."""
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def email_key(email: str | None) -> str:
    """EMAIL: trimmed, lowercased; ``""`` for anything that is not an address."""
    return normalize_email(email) or ""


def phone_key(phone: str | None, region: str = "US") -> str:
    """PHONE: digits only with the country code, no leading zeros (``+1 415-555-0100`` is
    ``14155550100``); national numbers are read in ``region``. ``""`` when not a phone."""
    e164 = normalize_phone(phone, region)
    return e164.lstrip("+") if e164 else ""


def _letters(value: str | None) -> str:
    """Lowercase letters only (accented letters kept, in NFC); no digits, spaces or
    punctuation."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", value.strip().lower())
    return "".join(ch for ch in text if ch.isalpha())


def name_key(name: str | None) -> str:
    """FN / LN: lowercase letters only, UTF-8 letters kept (``Mary-Jane`` is ``maryjane``,
    ``José`` is ``josé``)."""
    return _letters(name)


def city_key(city: str | None) -> str:
    """CT: lowercase letters only, no spaces (``San Francisco`` is ``sanfrancisco``)."""
    return _letters(city)


def state_key(state: str | None) -> str:
    """ST: the state or province code, lowercase letters only (``CA`` is ``ca``)."""
    return _letters(state)


def zip_key(postcode: str | None) -> str:
    """ZIP: lowercase, no whitespace; a US ZIP+4 keeps its first 5 digits, a UK postcode its
    area, district and sector (``SW1A 1AA`` is ``sw1a1``)."""
    if not postcode:
        return ""
    text = "".join(postcode.lower().split())
    us = _US_ZIP.match(text)
    if us:
        return us.group(1)
    uk = _UK_POSTCODE.match(text)
    return uk.group(1) if uk else text


def country_key(country: str | None) -> str:
    """COUNTRY: the ISO 3166-1 alpha-2 code, lowercase; ``""`` for anything else."""
    code = (country or "").strip().lower()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else ""


def email_sha256(email: str | None) -> str | None:
    """SHA-256 of the normalised email, or ``None`` without one."""
    return sha256_hex(email_key(email)) or None


def phone_sha256(phone: str | None) -> str | None:
    """SHA-256 of the normalised phone, or ``None`` without a possible number."""
    return sha256_hex(phone_key(phone)) or None


def matchable(recipient: Recipient) -> bool:
    """Whether Meta can match the recipient: an email or a phone number."""
    return bool(email_key(recipient.email) or phone_key(recipient.phone))


def hashed_row(recipient: Recipient) -> list[str]:
    """The recipient as one payload row in :data:`SCHEMA` order: every key normalised and
    hashed, ``EXTERN_ID`` (the customer id) as it is, a missing key ``""``. followup keeps no
    city, state, ZIP or country for a customer, so those are ``""``."""
    return [
        sha256_hex(email_key(recipient.email)),
        sha256_hex(phone_key(recipient.phone)),
        sha256_hex(name_key(recipient.first_name)),
        sha256_hex(name_key(recipient.last_name)),
        "",
        "",
        "",
        "",
        recipient.customer_id,
    ]
