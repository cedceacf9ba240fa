"""Turning a stored customer back into the identity fields of a Segment message, so an event the
service makes for them (an unsubscribe) lands on the same profile through ingest."""

from __future__ import annotations

from typing import Any

from engine.api import Followup
from engine.identity import ANONYMOUS, EMAIL, PHONE, USER
from engine.profiles import find_customer_id

_ORDER = (USER, EMAIL, PHONE, ANONYMOUS)


def identity_fields(followup: Followup, reference: str) -> dict[str, Any] | None:
    """``userId``, ``context.traits`` (email, phone) or ``anonymousId`` of the live customer
    behind ``reference`` (a customer id, merged ones too, or any identity), strongest first;
    ``None`` when no such customer is stored."""
    store = followup.ingestor.store
    with followup.engine.connect() as conn:
        live = find_customer_id(conn, store, reference, followup.phone_region)
        keys = store.keys_of(conn, live) if live is not None else []
    if not keys:
        return None
    kind, _, value = min(keys, key=lambda k: (_ORDER.index(k.split(":", 1)[0]), k)).partition(":")
    if kind == USER:
        return {"userId": value}
    if kind == ANONYMOUS:
        return {"anonymousId": value}
    return {"context": {"traits": {"email" if kind == EMAIL else "phone": value}}}
