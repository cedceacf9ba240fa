"""Keys of the HTTP service: made once, shown once, kept only as their SHA-256.

A key has a role: a ``write`` key sends events to the ingest API, a ``dashboard`` key logs in to
the read-only dashboard; neither is accepted for the other.

A key is ``fu_`` and 43 characters of ``secrets.token_urlsafe`` (256 bits), so a plain SHA-256 is
enough to keep it (no salt or slow hash needed for a random key of that size). A request's key is
hashed and looked up by its hash; the stored hash is compared again with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from engine.errors import FollowupError
from engine.service.roles import ROLES, WRITE
from engine.storage.tables import api_keys

KEY_PREFIX = "fu_"


class UnknownKey(FollowupError):
    """No key has that id (``followup keys revoke``)."""


@dataclass(frozen=True, slots=True)
class WriteKey:
    """A stored key (never the key itself): its id, name, rate, role and whether it is
    revoked."""

    id: str
    name: str
    prefix: str
    rate: float | None
    created_at: datetime
    revoked_at: datetime | None
    role: str = WRITE

    @property
    def active(self) -> bool:
        """Whether requests signed with it are accepted."""
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a key is stored as."""
    return hashlib.sha256(key.encode()).hexdigest()


def _from_row(row: sa.Row[tuple[object, ...]]) -> WriteKey:
    mapping = row._mapping
    return WriteKey(
        id=mapping["id"],
        name=mapping["name"],
        prefix=mapping["prefix"],
        rate=mapping["rate"],
        created_at=mapping["created_at"],
        revoked_at=mapping["revoked_at"],
        role=mapping["role"],
    )


class KeyStore:
    """The ``api_keys`` table."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db
        # every request looks its key up: a single read needs no transaction, and without one
        # the connection goes back to the pool with no ROLLBACK round trip (half the cost)
        self._reads = db.execution_options(isolation_level="AUTOCOMMIT")

    def create(
        self, name: str, rate: float | None, now: datetime, role: str = WRITE
    ) -> tuple[WriteKey, str]:
        """A new key of ``role``: its record, and the key itself (shown once, never stored)."""
        if role not in ROLES:
            raise ValueError(f"a key's role is one of {', '.join(ROLES)}, not {role!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = WriteKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            prefix=key[: len(KEY_PREFIX) + 6],
            rate=rate,
            created_at=now,
            revoked_at=None,
            role=role,
        )
        with self.db.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=record.id,
                    name=name,
                    key_hash=hash_key(key),
                    prefix=record.prefix,
                    rate=rate,
                    created_at=now,
                    role=role,
                )
            )
        return record, key

    def list(self) -> list[WriteKey]:
        """Every key, oldest first, revoked ones included."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query)]

    def revoke(self, key_id: str, now: datetime) -> WriteKey:
        """Stop accepting the key ``key_id`` (a key revoked already stays as it was)."""
        with self.db.begin() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise UnknownKey(f"no write key {key_id!r}; `followup keys list` shows them")
            if row.revoked_at is None:
                conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now)
                )
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
        return _from_row(row)

    def authenticate(self, key: str, role: str = WRITE) -> WriteKey | None:
        """The active key of ``role`` that ``key`` is, or ``None`` (unknown, revoked or of
        another role)."""
        digest = hash_key(key)
        with self._reads.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        found = _from_row(row)
        return found if found.active and found.role == role else None

    def find(self, key_id: str) -> WriteKey | None:
        """The key whose id is ``key_id`` (revoked or not), or ``None``."""
        with self._reads.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        return _from_row(row) if row is not None else None
