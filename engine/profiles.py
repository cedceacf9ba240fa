"""Reading profiles back: find a customer by any identity, and rebuild states from the log."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from engine.clock import Clock, utc_now
from engine.contact import normalize_email, normalize_phone
from engine.identity import ANONYMOUS, EMAIL, PHONE, USER
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer
from engine.storage.customer_store import CHUNK, CustomerStore, MergeRecord, StoredEvent


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """One customer as a person would look them up: state, identities, merges, recent events."""

    id: str
    state: CustomerState
    identity_keys: tuple[str, ...]
    merges: tuple[MergeRecord, ...]
    recent_events: tuple[StoredEvent, ...]


def candidate_keys(reference: str, phone_region: str) -> list[str]:
    """The identity keys ``reference`` (an id, email, phone or key) could stand for."""
    reference = reference.strip()
    if ":" in reference.split("@", 1)[0] and reference.split(":", 1)[0] in (
        USER,
        ANONYMOUS,
        EMAIL,
        PHONE,
    ):
        return [reference]
    keys = [f"{USER}:{reference}"]
    email = normalize_email(reference)
    if email is not None:
        keys.append(f"{EMAIL}:{email}")
    phone = normalize_phone(reference, phone_region)
    if phone is not None and any(ch.isdigit() for ch in reference):
        keys.append(f"{PHONE}:{phone}")
    keys.append(f"{ANONYMOUS}:{reference}")
    return keys


def find_customer_id(
    conn: sa.Connection, store: CustomerStore, reference: str, phone_region: str
) -> str | None:
    """The live customer behind a customer id (merged ids too), userId, email, phone or
    anonymousId."""
    found = store.resolve(conn, reference.strip())
    if found is not None:
        return found
    for key in candidate_keys(reference, phone_region):
        found = store.resolve(conn, key)
        if found is not None:
            return found
    return None


def load_profile(
    conn: sa.Connection, store: CustomerStore, customer_id: str, recent: int = 20
) -> CustomerProfile | None:
    """The profile of a live customer, with its ``recent`` latest events."""
    states = store.states(conn, [customer_id])
    if customer_id not in states:
        return None
    return CustomerProfile(
        id=customer_id,
        state=states[customer_id],
        identity_keys=tuple(store.keys_of(conn, customer_id)),
        merges=tuple(store.merges_into(conn, customer_id)),
        recent_events=tuple(store.stored_events(conn, customer_id, limit=recent)),
    )


@dataclass(frozen=True, slots=True)
class RebuildSummary:
    """What ``followup state rebuild`` did."""

    customers: int
    changed: int


def rebuild_states(
    engine: sa.Engine, reducer: StateReducer, clock: Clock = utc_now
) -> RebuildSummary:
    """Fold every live customer's state again from the event log; report how many differed."""
    store = CustomerStore(engine.dialect.name)
    with engine.connect() as conn:
        customer_ids = store.live_ids(conn)
    changed = 0
    for start in range(0, len(customer_ids), CHUNK):
        part = customer_ids[start : start + CHUNK]
        with engine.begin() as conn:
            stored = store.versioned_states(conn, part)
            history = store.history_by_customer(conn, part)
            rebuilt = {cid: reducer.fold(history.get(cid, ())) for cid in part}
            differing = {
                cid: s for cid, s in rebuilt.items() if cid in stored and stored[cid].state != s
            }
            changed += len(differing)
            if differing:
                versions = {cid: stored[cid].version for cid in differing}
                store.save_states(conn, differing, versions, clock())
    return RebuildSummary(customers=len(customer_ids), changed=changed)
