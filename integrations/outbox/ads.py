"""The ads channel as JSON-lines files of audience changes, one file per audience.

``<path>/<audience>.jsonl`` gets one line per change, ready for a later sync to Meta custom
audiences (or any network that matches on hashed identifiers)::

    {"key": "j_1:2", "action": "add", "audience": "cart-abandoners", "customer_id": "c1",
     "email_sha256": "86e0…", "phone_sha256": "5e7e…", "at": "2024-06-01T12:00:00+00:00"}

Identifiers are normalised the way Meta asks before SHA-256: the email trimmed and lowercased, the
phone as digits only with the country code (E.164 without the ``+``), by the same rules as the
Facebook provider (:mod:`integrations.facebook.keys`). Nothing in clear text leaves the customer
store but the customer id. Each key is appended at most once per audience
file (see :class:`integrations.outbox._files.KeyedAppendFile`).
"""

from __future__ import annotations

import json
from typing import Any

from engine.channels import Delivery, DeliveryAction, DeliveryOutcome, DeliveryStatus
from integrations.facebook.keys import email_sha256, phone_sha256
from integrations.outbox._files import (
    ALREADY,
    KeyedFileOutbox,
    as_utc,
    failed,
    io_failed,
)

__all__ = ["FileAdsOutbox", "audience_change", "email_sha256", "phone_sha256"]

_ACTIONS = {DeliveryAction.AUDIENCE_ADD: "add", DeliveryAction.AUDIENCE_REMOVE: "remove"}


def audience_change(delivery: Delivery) -> dict[str, Any]:
    """The JSON line for an audience delivery (keys in their documented order)."""
    return {
        "key": delivery.key,
        "action": _ACTIONS[delivery.action],
        "audience": str(delivery.fields["audience"]),
        "customer_id": delivery.recipient.customer_id,
        "email_sha256": email_sha256(delivery.recipient.email),
        "phone_sha256": phone_sha256(delivery.recipient.phone),
        "at": as_utc(delivery.due_at).isoformat(),
    }


def _key_of(line: str) -> str | None:
    key = json.loads(line)["key"]
    return key if isinstance(key, str) else None


class FileAdsOutbox(KeyedFileOutbox):
    """Appends audience additions and removals to ``<path>/<audience>.jsonl``, each key once.

    ``clock`` and ``retry_after`` date the retry of a delivery the file system refused.
    """

    name = "outbox"
    idempotent = True  # a repeated key is found and not carried again

    suffix = ".jsonl"
    key_of = staticmethod(_key_of)

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Append the audience change unless its key is already in the audience's file."""
        if delivery.action not in _ACTIONS:
            return failed(f"the ads outbox cannot {delivery.action.value}")
        audience = delivery.fields.get("audience")
        if not audience:
            return failed("no audience")
        change = audience_change(delivery)
        if change["email_sha256"] is None and change["phone_sha256"] is None:
            return failed("no email or phone to match the customer on")
        log = self._file(str(audience))
        record = json.dumps(change, ensure_ascii=False, separators=(",", ":"))
        try:
            appended = log.append_once(delivery.key, record)
        except OSError as error:
            return io_failed(error, self._clock, self._retry_after)
        detail = "appended to the outbox" if appended else ALREADY
        return DeliveryOutcome(DeliveryStatus.DELIVERED, detail, provider_id=log.path.name)
