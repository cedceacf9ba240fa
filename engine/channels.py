"""The channel port: what the dispatcher hands a provider, and what it hears back.

A :class:`Delivery` is one due action, already decided and rendered: the policies passed, the
subject and body are final. Providers (the file outbox, SMTP, Mailchimp, Facebook, call lists)
implement :class:`ChannelProvider` in ``integrations/``; the core never imports them. ``key``
(``journey:step``) is the idempotency key: a provider that can deduplicate by it must, so a
retried delivery never reaches the customer twice.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.clock import Clock, utc_now
from engine.errors import SettingProblem


class DeliveryAction(enum.StrEnum):
    """What a delivery does on its channel."""

    SEND = "send"
    AUDIENCE_ADD = "audience_add"
    AUDIENCE_REMOVE = "audience_remove"
    CONSENT = "consent"  # a consent change for a provider that keeps consent on its side
    ACTIVITY = "activity"  # a shop event for a provider that mirrors carts and orders


class DeliveryStatus(enum.StrEnum):
    """How a delivery ended: done, failed (``retry_at`` says if and when to try again),
    unknown (the provider may or may not have acted; reported, never resent blindly), or
    skipped: refused for the customer's sake, not sent and not a fault (the provider's
    suppression list, a do-not-call phone); the detail starts with the skip reason, as the
    plan's do (``suppressed: …``)."""

    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


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


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that carries many deliveries of its channel in one call (an ad audience
    takes 10,000 users per request). The dispatcher hands it every due delivery of the channel
    it claimed; it returns one outcome per delivery, in the same order."""

    def deliver_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Carry out each of ``deliveries`` once; an outcome for each, in order."""
        ...


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A customer's consent for a channel changed (an ``Unsubscribed`` or ``Subscribed``
    event, an ``identify`` with consent traits): ``key`` is unique per change, for dedupe."""

    key: str
    recipient: Recipient
    channel: str
    granted: bool
    at: datetime


@runtime_checkable
class ConsentListener(Protocol):
    """A provider that keeps consent in step on its side (Mailchimp's member status): told of
    every change of its channel's consent, exactly as a delivery is (retried, never lost)."""

    def consent_changed(self, change: ConsentChange) -> DeliveryOutcome:
        """Record ``change`` at the vendor; idempotent (a PUT of the member's status)."""
        ...


@dataclass(frozen=True, slots=True)
class CustomerActivity:
    """A shop event a provider mirrors on its side (a cart changed, an order completed), with
    the customer's open cart as it stands when it is delivered: ``cart`` has ``items`` (each
    ``product_id``, ``name``, ``price``, ``quantity``, ``url``, ``image_url``, ``category``),
    ``value`` and ``updated_at``. ``key`` is unique per event, for dedupe."""

    key: str
    recipient: Recipient
    event: str
    properties: Mapping[str, Any]
    at: datetime
    cart: Mapping[str, Any]
    opted_in: bool = False  # the customer's consent on the provider's channel, as it stands


@runtime_checkable
class ActivityListener(Protocol):
    """A provider that mirrors shop activity (Mailchimp's e-commerce carts and orders, which
    feed its own abandoned-cart automations): each event named in ``synced_events`` reaches it
    exactly as a delivery does (retried, never lost)."""

    synced_events: frozenset[str]

    def activity(self, activity: CustomerActivity) -> DeliveryOutcome:
        """Mirror ``activity``; idempotent by ``activity.key``."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderCheck:
    """What ``followup providers check`` learned of one provider without sending anything:
    whether its credentials work and its service answers. ``detail`` never holds a secret."""

    ok: bool
    detail: str


@runtime_checkable
class CheckableProvider(Protocol):
    """A provider that can verify its credentials and reachability without sending."""

    def check(self) -> ProviderCheck:
        """Ask the service who we are (or connect and log in); send nothing."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """What a provider factory may use besides its own settings.

    ``channel`` is the channel being built; ``root`` the project folder (settings' relative paths
    start there); ``environ`` the only place secrets come from; ``database_url`` the project's
    database, for providers that keep state there (call lists); ``unsubscribe_base`` the public
    address of the unsubscribe links (see :mod:`engine.unsubscribe`); ``clock`` the clock of
    the passes that call the provider (``followup tick --now`` sets it): a provider dates its
    retries and its records on it, as the outbox dates its rows, so a pass ahead of the wall
    clock does not find every retry due at once. Anything compared with the vendor's or a
    receiver's own time (a signature's timestamp, a campaign's creation time) keeps the wall
    clock."""

    channel: str
    root: Path
    environ: Mapping[str, str]
    database_url: str | None = None
    unsubscribe_base: str | None = None
    clock: Clock = utc_now


ProviderFactory = Callable[[Mapping[str, Any], ProviderContext], ChannelProvider]
"""Builds one channel's provider from its ``providers.<channel>`` settings (``provider`` key
included); raises :class:`engine.errors.ConfigError` naming ``providers.<channel>.<setting>``
for anything it cannot use. Registered under the entry-point group ``followup.providers`` by
provider name."""


@runtime_checkable
class SettingsCheckingFactory(Protocol):
    """A provider factory that can also check its settings without building the provider, for
    ``followup validate``: nothing is connected or written, and secrets are only looked up (CI
    has none), so an unset environment variable is a warning. Anything the factory itself would
    refuse is an error. Optional: a factory without ``check_settings`` is checked at build."""

    def __call__(self, settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
        """Build the provider (see :data:`ProviderFactory`)."""
        ...

    def check_settings(
        self, settings: Mapping[str, Any], context: ProviderContext
    ) -> Sequence[SettingProblem]:
        """Every problem of ``settings``, errors and warnings, by setting; none when usable."""
        ...


@runtime_checkable
class ListContentFactory(Protocol):
    """A provider factory that sends some campaigns' email as one content to a whole list
    (Mailchimp's regular campaigns for ``newsletters:``). One content cannot honour a template
    that reads the customer or the event, so ``followup validate`` refuses such a template."""

    def list_campaigns(self, settings: Mapping[str, Any]) -> Collection[str]:
        """The ids of the campaigns ``settings`` send as one content to the list (none when
        the settings are invalid: their own check says why)."""
        ...
