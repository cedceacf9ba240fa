"""The dashboard's login session: a signed cookie naming a dashboard key, checked on every
request against the key itself, so revoking the key ends its sessions at once.

The cookie ``followup_session`` holds a token of :class:`engine.signed_links.SignedTokens`
(purpose ``dashboard-session``, signed with the project's key) with the key's id and an expiry
12 hours after the login. It is ``HttpOnly``, ``SameSite=Lax``, ``Path=/dashboard``, and
``Secure`` when the server's public URL is https.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.service.keys import KeyStore, WriteKey
from engine.service.roles import DASHBOARD
from engine.signed_links import InvalidToken, SignedTokens

COOKIE = "followup_session"
PATH = "/dashboard"
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Sessions:
    """Makes and checks the session cookies of one project."""

    tokens: SignedTokens
    keys: KeyStore
    secure: bool  # the public URL is https: the cookie is sent over https only

    @classmethod
    def of(cls, signing_key: bytes, keys: KeyStore, base_url: str) -> Sessions:
        """The sessions signed with ``signing_key``; ``base_url`` is the server's public URL."""
        tokens = SignedTokens(signing_key, "dashboard-session", "dashboard session")
        return cls(tokens, keys, base_url.lower().startswith("https://"))

    def _header(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{COOKIE}={value}; Max-Age={max_age}; Path={PATH}; HttpOnly; SameSite=Lax{secure}"

    def start(self, key: WriteKey, now: datetime) -> str:
        """The ``Set-Cookie`` value of a new session for the dashboard key ``key``."""
        token = self.tokens.make({"key": key.id}, now + LIFETIME)
        return self._header(token, int(LIFETIME.total_seconds()))

    def end(self) -> str:
        """The ``Set-Cookie`` value that clears the session cookie."""
        return self._header("", 0)

    def check(self, cookie: str | None, now: datetime) -> WriteKey | None:
        """The dashboard key of a valid session cookie, or ``None``: no cookie, a forged or
        expired one, or its key revoked (or no longer a dashboard key). Reads the database."""
        if not cookie:
            return None
        try:
            data, _expires = self.tokens.open(cookie, now)
        except InvalidToken:
            return None
        key_id = data.get("key")
        if not isinstance(key_id, str):
            return None
        key = self.keys.find(key_id)
        if key is None or not key.active or key.role != DASHBOARD:
            return None
        return key
