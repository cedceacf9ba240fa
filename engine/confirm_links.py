"""Signed, expiring links that confirm a signup (double opt-in, :mod:`engine.double_opt_in`):
the ``{{ confirm_url }}`` of the confirmation email, checked by the HTTP service before it
records a ``Subscription Confirmed`` event.

The token (see :mod:`engine.signed_links`) holds the customer id, the channel, the list signed
up to (if any), the signup's time and the expiry: the signup's time plus the policy's
``expires`` (default 7 days), after which the signup is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from engine.signed_links import InvalidToken, SignedTokens

PATH = "/confirm/"
PLACEHOLDER = "https://followup.invalid/confirm/"  # simulate and preview: no real link


@dataclass(frozen=True, slots=True)
class Signup:
    """What a valid confirmation token names: a signup to confirm."""

    customer_id: str
    channel: str
    list: str | None
    signed_up_at: datetime
    expires_at: datetime


class ConfirmLinks:
    """Makes and checks the confirmation links of one project."""

    def __init__(self, key: bytes, base_url: str) -> None:
        self._tokens = SignedTokens(key, "confirm", "confirmation")
        self.base_url = base_url.rstrip("/")

    def token(
        self, customer_id: str, channel: str, list_: str | None, at: datetime, ttl: timedelta
    ) -> str:
        """A token for the signup of ``customer_id`` to ``list_`` on ``channel`` at ``at``,
        valid for ``ttl`` from then."""
        data = {"c": customer_id, "ch": channel, "l": list_, "at": int(at.timestamp())}
        return self._tokens.make(data, at + ttl)

    def url(
        self, customer_id: str, channel: str, list_: str | None, at: datetime, ttl: timedelta
    ) -> str:
        """The link to put in the confirmation email."""
        token = self.token(customer_id, channel, list_, at, ttl)
        return f"{self.base_url}{PATH}{quote(token, safe='')}"

    def verify(self, token: str, now: datetime) -> Signup:
        """The signup ``token`` confirms, or :class:`InvalidToken` (forged, malformed, not a
        confirmation link, or expired)."""
        data, expires = self._tokens.open(token, now)
        try:
            listed = data["l"]
            return Signup(
                str(data["c"]),
                str(data["ch"]),
                None if listed is None else str(listed),
                datetime.fromtimestamp(int(data["at"]), UTC),
                expires,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidToken("malformed confirmation token") from exc
