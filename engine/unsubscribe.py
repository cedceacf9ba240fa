"""Signed, expiring unsubscribe links: the token the email channel puts in ``List-Unsubscribe``
and the HTTP service checks before it records an ``Unsubscribed`` event.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is the
customer id, the channel and the expiry (Unix seconds) as compact JSON; the signature is
HMAC-SHA256 over the payload with the project's signing key, compared in constant time. The key
comes from ``FOLLOWUP_SECRET_KEY``; without it, a random key is made once and kept in
``.followup/secret_key`` beside ``followup.yaml`` (mode 0600), so the embedded default works with
nothing set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from engine.errors import FollowupError

SECRET_ENV = "FOLLOWUP_SECRET_KEY"
KEY_FILE = Path(".followup") / "secret_key"
DEFAULT_TTL = timedelta(days=90)
PATH = "/unsubscribe/"


class InvalidToken(FollowupError):
    """An unsubscribe token that is malformed, forged or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    """What a valid token asks: stop ``channel`` for ``customer_id``."""

    customer_id: str
    channel: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(root: Path, environ: dict[str, str] | None = None) -> bytes:
    """The project's signing key: ``FOLLOWUP_SECRET_KEY``, else the key file under ``root``
    (made on first use)."""
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV, "").strip():
        return env[SECRET_ENV].strip().encode()
    path = root / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_urlsafe(32).encode())
    try:
        os.link(temp, path)  # atomic, never replaces: a racing process's key wins if first
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return path.read_bytes().strip()


class UnsubscribeLinks:
    """Makes and checks the unsubscribe links of one project."""

    def __init__(self, key: bytes, base_url: str, ttl: timedelta = DEFAULT_TTL) -> None:
        if not key:
            raise ValueError("an empty signing key")
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def token(self, customer_id: str, channel: str, now: datetime) -> str:
        """A token for ``customer_id`` and ``channel``, valid for ``ttl`` from ``now``."""
        expires = int((now + self.ttl).timestamp())
        body = json.dumps({"c": customer_id, "ch": channel, "exp": expires}, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def url(self, customer_id: str, channel: str, now: datetime) -> str:
        """The link to put in an email (``List-Unsubscribe`` and the footer)."""
        return f"{self.base_url}{PATH}{quote(self.token(customer_id, channel, now), safe='')}"

    def verify(self, token: str, now: datetime) -> UnsubscribeRequest:
        """What ``token`` asks, or :class:`InvalidToken` (forged, malformed or expired)."""
        payload, dot, signature = token.partition(".")
        if not dot or not payload or not signature or not token.isascii():
            raise InvalidToken("malformed unsubscribe token")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise InvalidToken("unsubscribe token signature does not match")
        try:
            data = json.loads(_unb64(payload))
            request = UnsubscribeRequest(
                str(data["c"]), str(data["ch"]), datetime.fromtimestamp(int(data["exp"]), UTC)
            )
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise InvalidToken("malformed unsubscribe token") from exc
        if now >= request.expires_at:
            raise InvalidToken("unsubscribe link expired")
        return request
