"""Keeping customers as members of one Mailchimp audience: idempotent upserts, tags, consent.

Every write is ``PUT /lists/{list_id}/members/{subscriber_hash}``, safe to repeat. A send upserts
with ``status_if_new`` only, so it never overrides a choice the person made at Mailchimp; a
consent change sets ``status`` itself (``subscribed``, or ``pending`` on a double opt-in audience,
and ``unsubscribed``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from engine.channels import Recipient
from integrations.mailchimp.transport import Transport

MAX_TAG_LENGTH = 100


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def tag_names(tags: object) -> list[str]:
    """A delivery's ``tags`` field (a name or a list of names) as distinct, non-empty names."""
    items: Iterable[object] = (
        [tags] if isinstance(tags, str) else tags if isinstance(tags, Iterable) else []
    )
    names: list[str] = []
    for tag in items:
        name = str(tag).strip()[:MAX_TAG_LENGTH]
        if name and name not in names:
            names.append(name)
    return names


class Audience:
    """One audience (``list_id``), written through ``transport``."""

    def __init__(
        self,
        transport: Transport,
        list_id: str,
        *,
        status_if_new: str = "subscribed",
        marketing_permission_id: str | None = None,
    ) -> None:
        self.transport = transport
        self.list_id = list_id
        self.status_if_new = status_if_new
        self.marketing_permission_id = marketing_permission_id

    def member(self, recipient: Recipient, status: str | None = None) -> dict[str, Any]:
        """The PUT body for ``recipient``: address, ``status_if_new``, names, permission."""
        assert recipient.email
        body: dict[str, Any] = {
            "email_address": recipient.email,
            "status_if_new": status or self.status_if_new,
        }
        if status is not None:
            body["status"] = status
        merge = {
            tag: value
            for tag, value in (("FNAME", recipient.first_name), ("LNAME", recipient.last_name))
            if value
        }
        if merge:
            body["merge_fields"] = merge
        if self.marketing_permission_id:
            body["marketing_permissions"] = [
                {
                    "marketing_permission_id": self.marketing_permission_id,
                    "enabled": (status or self.status_if_new) in ("subscribed", "pending"),
                }
            ]
        return body

    def upsert(self, recipient: Recipient, status: str | None = None) -> dict[str, Any]:
        """Create or update the member; Mailchimp's member record."""
        assert recipient.email
        body = self.member(recipient, status)
        member_id = subscriber_hash(recipient.email)
        result: dict[str, Any] = self.transport.marketing(
            lambda client: client.lists.set_list_member(self.list_id, member_id, body)
        )
        return result

    def tag(self, email: str, tags: list[str]) -> None:
        """Mark ``tags`` active on the member (a new name creates the tag); repeatable."""
        if not tags:
            return
        body = {"tags": [{"name": name, "status": "active"} for name in tags]}
        member_id = subscriber_hash(email)
        self.transport.marketing(
            lambda client: client.lists.update_list_member_tags(self.list_id, member_id, body)
        )

    def consent(self, recipient: Recipient, granted: bool) -> dict[str, Any]:
        """Set the member's status to match the customer's consent (idempotent)."""
        if not granted:
            return self.upsert(recipient, "unsubscribed")
        return self.upsert(
            recipient, "pending" if self.status_if_new == "pending" else "subscribed"
        )
