"""Signed, expiring unsubscribe links: the token the email channel puts in ``List-Unsubscribe``
and the HTTP service checks before it records an ``Unsubscribed`` event.

The token (see :mod:`engine.signed_links`) holds the customer id (``c``), the channel (``ch``)
and the expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from engine.signed_links import InvalidToken, SignedTokens, signing_key

__all__ = ["InvalidToken", "UnsubscribeLinks", "UnsubscribeRequest", "signing_key"]

DEFAULT_TTL = timedelta(days=90)
PATH = "/unsubscribe/"


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    """What a valid token asks: stop ``channel`` for ``customer_id``."""

    customer_id: str
    channel: str
    expires_at: datetime


MADE_KEPT = 4096  # links kept for a second asking: a batch's sends, and more


class UnsubscribeLinks:
    """Makes and checks the unsubscribe links of one project."""

    def __init__(self, key: bytes, base_url: str, ttl: timedelta = DEFAULT_TTL) -> None:
        self._tokens = SignedTokens(key, None, "unsubscribe")
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        # (customer, channel, now) -> link: a send's link is asked for when its body is checked
        # and again when its content is written (signing is a sixth of deciding a send)
        self._made: dict[tuple[str, str, datetime], str] = {}

    def token(self, customer_id: str, channel: str, now: datetime) -> str:
        """A token for ``customer_id`` and ``channel``, valid for ``ttl`` from ``now``."""
        return self._tokens.make({"c": customer_id, "ch": channel}, now + self.ttl)

    def url(self, customer_id: str, channel: str, now: datetime) -> str:
        """The link to put in an email (``List-Unsubscribe`` and the footer)."""
        key = (customer_id, channel, now)
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= MADE_KEPT:
                self._made.clear()
            token = quote(self.token(customer_id, channel, now), safe="")
            made = self._made[key] = f"{self.base_url}{PATH}{token}"
        return made

    def verify(self, token: str, now: datetime) -> UnsubscribeRequest:
        """What ``token`` asks, or :class:`InvalidToken` (forged, malformed or expired)."""
        data, expires = self._tokens.open(token, now)
        try:
            return UnsubscribeRequest(str(data["c"]), str(data["ch"]), expires)
        except KeyError as exc:
            raise InvalidToken("malformed unsubscribe token") from exc
