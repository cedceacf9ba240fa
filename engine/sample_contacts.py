"""Synthetic contact details for the sample customers, so the demo campaigns have someone to reach.

The Taobao and CDNOW data sets carry behaviour only: no addresses, no consent, no time zone. For
the ``make run`` demo, :func:`build_contacts` writes one ``identify`` per customer of a sample
file, at their first event: a name of the data set's country (Faker, seeded by a hash of the id),
an address at ``example.com`` (reserved, never delivered), the time zone of the data set's
country, and email consent for a stable share of customers (chosen by a hash of the id). Every
build is the same. Nothing here is real data; the behaviour is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from faker import Faker

from engine.errors import InputError

ZONES = {"tb": "Asia/Shanghai", "cdnow": "America/New_York"}
LOCALES = {"tb": "zh_CN", "cdnow": "en_US"}


@dataclass(frozen=True, slots=True)
class ContactsSummary:
    """How many customers :func:`build_contacts` saw, and how many consented to email."""

    customers: int
    consented: int
    path: Path


def _share(user_id: str) -> float:
    digest = hashlib.sha256(f"contact\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


def _name(user_id: str) -> tuple[str, str]:
    """A first and last name of the customer's country, the same for ``user_id`` every time
    (with one Faker version)."""
    fake = _faker(LOCALES.get(user_id.split("-")[0], "en_US"))
    fake.seed_instance(int(_share(f"name\x1f{user_id}") * 2**32))
    return fake.first_name(), fake.last_name()


def contact(user_id: str, first_seen: str, email_share: float) -> dict[str, Any]:
    """The identify message that gives ``user_id`` a synthetic address and consent."""
    consented = _share(user_id) < email_share
    first, last = _name(user_id)
    return {
        "type": "identify",
        "userId": user_id,
        "messageId": f"contact-{user_id}",
        "timestamp": first_seen,
        "traits": {
            "email": f"{user_id}@example.com",
            "firstName": first,
            "lastName": last,
            "timezone": ZONES.get(user_id.split("-")[0], "UTC"),
            "consent": {"email": consented, "ads": consented},
        },
    }


def build_contacts(sample: Path, out: Path, email_share: float = 0.05) -> ContactsSummary:
    """One identify per customer of the JSONL ``sample``, written to ``out``."""
    if not 0 <= email_share <= 1:
        raise ValueError("email_share is a fraction from 0 to 1")
    first_seen: dict[str, str] = {}
    try:
        with sample.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise InputError(f"{sample}:{number}: not JSON: {exc}") from exc
                user, at = message.get("userId"), message.get("timestamp")
                known = first_seen.get(user) if isinstance(user, str) else None
                if isinstance(user, str) and isinstance(at, str) and (known is None or at < known):
                    first_seen[user] = at
    except OSError as exc:
        raise InputError(
            f"{sample}: cannot read: {exc.strerror}; run `followup samples build` first"
        ) from exc
    messages = [contact(user, at, email_share) for user, at in sorted(first_seen.items())]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    consented = sum(1 for m in messages if m["traits"]["consent"]["email"])
    return ContactsSummary(len(messages), consented, out)
