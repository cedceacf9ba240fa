"""Signed, expiring tokens for the links followup puts in emails (unsubscribe, confirm a
signup), and the project's signing key.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is compact
JSON holding what the link asks and its expiry (``exp``, Unix seconds), and for any link but an
unsubscribe its purpose (``p``), so one kind of link never passes for another; the signature is
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import FollowupError

SECRET_ENV = "FOLLOWUP_SECRET_KEY"
KEY_FILE = Path(".followup") / "secret_key"


class InvalidToken(FollowupError):
    """A link's token that is malformed, forged or expired; the message says which."""


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


class SignedTokens:
    """Signs and opens the tokens of one kind of link (``purpose``; ``None`` for unsubscribe
    links, made before tokens named their purpose)."""

    def __init__(self, key: bytes, purpose: str | None, what: str) -> None:
        if not key:
            raise ValueError("an empty signing key")
        self._key = key
        self.purpose = purpose
        self.what = what  # "unsubscribe", "confirmation": for messages

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def make(self, data: dict[str, Any], expires: datetime) -> str:
        """A token for ``data``, valid until ``expires``."""
        fields: dict[str, Any] = {**data, "exp": int(expires.timestamp())}
        if self.purpose is not None:
            fields["p"] = self.purpose  # never one the data names
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def open(self, token: str, now: datetime) -> tuple[dict[str, Any], datetime]:
        """What ``token`` holds and when it expires, or :class:`InvalidToken` (forged,
        malformed, for another kind of link, or expired)."""
        malformed = f"malformed {self.what} token"
        payload, dot, signature = token.partition(".")
        if not dot or not payload or not signature or not token.isascii():
            raise InvalidToken(malformed)
        if not hmac.compare_digest(self._sign(payload), signature):
            raise InvalidToken(f"{self.what} token signature does not match")
        try:
            data = json.loads(_unb64(payload))
            expires = datetime.fromtimestamp(int(data["exp"]), UTC)
        except (binascii.Error, ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
            raise InvalidToken(malformed) from exc
        if not isinstance(data, dict) or data.get("p") != self.purpose:
            raise InvalidToken(f"the token is for another kind of link, not {self.what}")
        if now >= expires:
            raise InvalidToken(f"{self.what} link expired")
        return data, expires
