"""Identity keys: what in an event says who the customer is.

A key is ``kind:value``: ``user:…`` (userId), ``anon:…`` (anonymousId), ``email:…`` (trimmed,
lowercased) and ``phone:…`` (E.164). Two keys in one event belong to one customer; that is all
identity resolution needs to know. The resolver that merges profiles lives in
:mod:`engine.ingest.resolver`.
"""

from __future__ import annotations

import hashlib

from engine.contact import normalize_email, phone_key
from engine.events import Event, EventType

USER = "user"
ANONYMOUS = "anon"
EMAIL = "email"
PHONE = "phone"


def identity_keys(event: Event, phone_region: str = "US") -> list[str]:
    """Every identity key the event carries, strongest first (userId, email, phone, anonymousId)."""
    keys: list[str] = []
    if event.user_id is not None:
        keys.append(f"{USER}:{event.user_id}")
    if event.previous_id is not None and event.type is EventType.ALIAS:  # previousId: rare
        # Segment lets previousId be either an earlier userId or an anonymousId: link both.
        keys.append(f"{USER}:{event.previous_id}")
        keys.append(f"{ANONYMOUS}:{event.previous_id}")
    traits = event.traits
    email = normalize_email(traits.get("email")) if traits else None
    if email is None and event.properties:  # a signup form's or a shop's order email
        given = event.properties.get("email")
        email = normalize_email(given) if given is not None else None
    if email is not None:
        keys.append(f"{EMAIL}:{email}")
    phone = phone_key(traits.get("phone"), phone_region) if traits else None
    if phone is not None:
        keys.append(f"{PHONE}:{phone}")
    if event.anonymous_id is not None:
        keys.append(f"{ANONYMOUS}:{event.anonymous_id}")
    return keys


def ids_only(event: Event) -> tuple[str | None, str | None] | None:
    """``(userId, anonymousId)`` when those are all the identity the event carries (its keys are
    theirs: no email, phone or alias), else ``None``. Most of a shop's events: views and pages."""
    if event.traits or event.previous_id is not None or "email" in event.properties:
        return None
    return (event.user_id, event.anonymous_id)


def customer_id_for(founding_key: str) -> str:
    """The id of a customer first seen through ``founding_key``: stable, so a replay of the same
    events in the same order names the same customers."""
    return "c_" + hashlib.blake2b(founding_key.encode(), digest_size=8).hexdigest()
