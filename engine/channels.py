"""The channel port: what the dispatcher hands a provider, and what it hears back.

A :class:`Delivery` is one due action, already decided and rendered: the policies passed, the
subject and body are final. Providers (the file outbox, SMTP, Mailchimp, Facebook, call lists)
implement :class:`ChannelProvider` in ``integrations/``; the core never imports them. ``key``
(``journey:step``) is the idempotency key: a provider that can deduplicate by it must, so a
retried delivery never reaches the customer twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class DeliveryAction(enum.StrEnum):
    """What a delivery does on its channel."""

    SEND = "send"
    AUDIENCE_ADD = "audience_add"
    AUDIENCE_REMOVE = "audience_remove"


class DeliveryStatus(enum.StrEnum):
    """How a delivery ended: done, failed (``retry_at`` says if and when to try again), or
    unknown (the provider may or may not have acted; reported, never resent blindly)."""

    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a delivery is for, as the channel needs it."""

    customer_id: str
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    timezone: str = "UTC"
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One due action for one customer on one channel.

    ``fields`` are the channel's, rendered: email ``subject``, ``html``, ``text``, ``from``,
    ``reply_to``, ``tags``, ``template``; ads ``audience``; call ``list``, ``priority``,
    ``reason``, ``script``, ``cart_value``, ``window_start``, ``window_end`` (local ``HH:MM``);
    webhook ``url``, ``body``.
    """

    key: str
    campaign: str
    journey: str
    step: str
    channel: str
    action: DeliveryAction
    due_at: datetime
    recipient: Recipient
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What a provider did with a delivery."""

    status: DeliveryStatus
    detail: str = ""
    retry_at: datetime | None = None
    provider_id: str | None = None


class ChannelProvider(Protocol):
    """Carries deliveries of one channel. ``deliver`` must be idempotent by ``delivery.key``
    where the provider can be (the file outbox is); it returns an outcome rather than raising
    for any failure of the channel itself."""

    name: str
    idempotent: bool  # a repeated ``key`` is recognised and not carried again

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Carry out ``delivery`` once."""
        ...
