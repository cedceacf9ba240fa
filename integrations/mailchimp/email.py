"""The email channel through Mailchimp: the member kept in the audience, the message sent by
Mailchimp Transactional, or a Customer Journey step triggered instead.

One delivery is: upsert the member (``PUT``, safe to repeat), tag it with the step's tags, then
either ``POST /messages/send`` (Transactional) or, for a campaign mapped under ``journeys:``,
``POST /customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger``. Neither of the
last two is deduplicated by Mailchimp, so the provider is not idempotent: a call that timed out
or was cut after it left is ``unknown``, never repeated. 429 and 5xx come back as ``failed`` with a
``retry_at`` (Mailchimp's Retry-After, else a growing backoff); other 4xx fail for good with
Mailchimp's problem detail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from engine.channels import (
    ConsentChange,
    CustomerActivity,
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
)
from engine.double_opt_in import is_transactional
from integrations.mailchimp.activity import SYNCED_EVENTS, NotSyncable, mirror
from integrations.mailchimp.audience import Audience, tag_names
from integrations.mailchimp.commerce import MailchimpCommerce
from integrations.mailchimp.issues import deliver_issue
from integrations.mailchimp.newsletter import Issue
from integrations.mailchimp.settings import MailchimpSettings
from integrations.mailchimp.transport import Failure, MailchimpError, Transport

SENT = ("sent", "queued", "scheduled")
# reject reasons that mean the address is on Mailchimp's rejection list (its suppression list):
# the send is skipped as suppressed, not failed; the others (invalid, rule, ...) are failures
SUPPRESSING = frozenset({"hard-bounce", "soft-bounce", "spam", "unsub", "custom"})
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
MAX_MANDRILL_TAGS = 100
MANDRILL_TAG_LENGTH = 50


class UnsendableMessage(ValueError):
    """The delivery cannot be made into a Transactional message (no body, no sender)."""


def transactional_message(delivery: Delivery, sender: str | None) -> dict[str, Any]:
    """The ``message`` of ``POST /messages/send`` for ``delivery``. Raises
    :class:`UnsendableMessage`."""
    fields: Mapping[str, Any] = delivery.fields
    recipient = delivery.recipient
    text, html = fields.get("text"), fields.get("html")
    if not text and not html:
        raise UnsendableMessage("no body: neither text nor html")
    from_name, from_email = parseaddr(str(fields.get("from") or sender or ""))
    if "@" not in from_email:
        raise UnsendableMessage("no sender: set providers.email.sender or the step's from")
    to: dict[str, Any] = {"email": recipient.email, "type": "to"}
    name = " ".join(part for part in (recipient.first_name, recipient.last_name) if part)
    if name:
        to["name"] = name
    headers: dict[str, str] = {"X-Followup-Key": delivery.key}
    if fields.get("reply_to"):
        headers["Reply-To"] = str(fields["reply_to"])
    if fields.get("unsubscribe_url"):
        headers["List-Unsubscribe"] = f"<{fields['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message: dict[str, Any] = {
        "subject": str(fields.get("subject") or ""),
        "from_email": from_email,
        "to": [to],
        "headers": headers,
        "preserve_recipients": False,
        "metadata": {"followup_key": delivery.key, "campaign": delivery.campaign},
    }
    if from_name:
        message["from_name"] = from_name
    if html:
        message["html"] = str(html)
    if text:
        message["text"] = str(text)
    # Mandrill keeps 100 tags of at most 50 characters; a leading underscore is reserved
    tags = [t.lstrip("_")[:MANDRILL_TAG_LENGTH] for t in tag_names(fields.get("tags"))]
    if any(tags):
        message["tags"] = [t for t in dict.fromkeys(tags) if t][:MAX_MANDRILL_TAGS]
    return message


def sent_outcome(results: Any) -> DeliveryOutcome:
    """The outcome of a Transactional send from its per-recipient results."""
    first = results[0] if isinstance(results, list) and results else None
    if not isinstance(first, Mapping):
        return DeliveryOutcome(
            DeliveryStatus.UNKNOWN, f"unexpected answer to the send: {results!r}"
        )
    status = str(first.get("status"))
    provider_id = str(first["_id"]) if first.get("_id") else None
    if status in SENT:
        return DeliveryOutcome(
            DeliveryStatus.DELIVERED, f"transactional: {status}", None, provider_id
        )
    reason = first.get("reject_reason") or "no reason given"
    if status == "rejected" and reason in SUPPRESSING:  # Mailchimp's rejection list: a skip
        return DeliveryOutcome(
            DeliveryStatus.SKIPPED, f"suppressed: {status}: {reason}", None, provider_id
        )
    return DeliveryOutcome(DeliveryStatus.FAILED, f"{status}: {reason}", None, provider_id)


class MailchimpEmail:
    """The ``mailchimp`` email provider (see the module docstring)."""

    name = "mailchimp"
    idempotent = False  # Transactional sends and journey triggers are not deduplicated by key

    def __init__(self, settings: MailchimpSettings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        self.audience = Audience(
            transport,
            settings.list_id,
            status_if_new=settings.status_if_new,
            marketing_permission_id=settings.marketing_permission_id,
        )
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self.commerce = (
            MailchimpCommerce(transport, settings.store_id) if settings.store_id else None
        )
        # shop events mirrored into the store; none without one (then no activity reaches it)
        self.synced_events = SYNCED_EVENTS if self.commerce else frozenset[str]()

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Upsert the member, then send the message or trigger the mapped journey step."""
        if delivery.action is not DeliveryAction.SEND:
            return DeliveryOutcome(DeliveryStatus.FAILED, f"mailchimp cannot {delivery.action}")
        recipient = delivery.recipient
        if not recipient.email:
            return DeliveryOutcome(DeliveryStatus.FAILED, "no_address: the customer has no email")
        journey = self.settings.journey_for(delivery.campaign, delivery.step)
        try:
            message = None if journey else transactional_message(delivery, self.settings.sender)
        except UnsendableMessage as error:
            return DeliveryOutcome(DeliveryStatus.FAILED, str(error))
        try:
            # a double opt-in confirmation touches no member: one made by a send is subscribed
            if not is_transactional(delivery.campaign):
                self.audience.upsert(recipient)
                self.audience.tag(recipient.email, tag_names(delivery.fields.get("tags")))
            if journey is not None:
                self.transport.marketing(
                    lambda client: client.customerJourneys.trigger(
                        journey.journey_id, journey.step_id, {"email_address": recipient.email}
                    ),
                    sends=True,
                )
                outcome = DeliveryOutcome(
                    DeliveryStatus.DELIVERED,
                    "customer journey step triggered",
                    provider_id=f"journey:{journey.journey_id}:{journey.step_id}",
                )
            else:
                results = self.transport.transactional(
                    lambda client: client.messages.send({"message": message}), sends=True
                )
                outcome = sent_outcome(results)
        except MailchimpError as error:
            return self.failed(delivery.key, error)
        self._forget(delivery.key)
        return outcome

    def consent_changed(self, change: ConsentChange) -> DeliveryOutcome:
        """Set the member's status to ``subscribed`` (``pending`` on a double opt-in audience)
        or ``unsubscribed``; a repeat is harmless."""
        if not change.recipient.email:
            return DeliveryOutcome(DeliveryStatus.FAILED, "no_address: the customer has no email")
        try:
            member = self.audience.consent(change.recipient, change.granted)
        except MailchimpError as error:
            return self.failed(change.key, error)
        self._forget(change.key)
        found = member if isinstance(member, Mapping) else {}
        status = found.get("status") or ("subscribed" if change.granted else "unsubscribed")
        member_id = found.get("id")
        return DeliveryOutcome(
            DeliveryStatus.DELIVERED, f"member {status}", provider_id=str(member_id or "") or None
        )

    def activity(self, activity: CustomerActivity) -> DeliveryOutcome:
        """Mirror a cart event (the cart as it stands) or an order into the store."""
        if self.commerce is None:
            return DeliveryOutcome(DeliveryStatus.FAILED, "not_synced: no store_id configured")
        try:
            done = mirror(self.commerce, activity)
        except NotSyncable as error:
            return DeliveryOutcome(DeliveryStatus.FAILED, str(error))
        except MailchimpError as error:
            return self.failed(activity.key, error)
        self._forget(activity.key)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, done)

    def check(self) -> ProviderCheck:
        """``GET /ping`` (Marketing) and ``users/ping`` (Transactional); nothing is sent."""
        parts = []
        ok = True
        pings: list[tuple[str, Callable[[], Any]]] = [
            ("marketing", lambda: self.transport.marketing(lambda c: c.ping.get())),
            ("transactional", lambda: self.transport.transactional(lambda c: c.users.ping())),
        ]
        for what, ping in pings:
            try:
                answer = ping()
            except MailchimpError as error:
                ok = False
                parts.append(f"{what}: {error.detail}")
                continue
            health = answer.get("health_status") if isinstance(answer, Mapping) else answer
            parts.append(f"{what}: {self.transport.redact(health)}")
        return ProviderCheck(ok, f"list {self.settings.list_id}; " + "; ".join(parts))

    def failed(self, key: str, error: MailchimpError) -> DeliveryOutcome:
        if error.failure is Failure.UNKNOWN:
            self._forget(key)
            return DeliveryOutcome(DeliveryStatus.UNKNOWN, error.detail)
        if error.failure is Failure.PERMANENT:
            self._forget(key)
            return DeliveryOutcome(DeliveryStatus.FAILED, error.detail)
        with self._lock:
            self._failures[key] = attempt = self._failures.get(key, 0) + 1
        delay = error.retry_after or min(BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
        return DeliveryOutcome(
            DeliveryStatus.FAILED, error.detail, retry_at=self.transport.clock() + delay
        )

    def _forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class MailchimpNewsletters(MailchimpEmail):
    """The provider when ``newsletters`` are configured: it takes the due deliveries in batches
    (:class:`~engine.channels.BatchProvider`) so each issue of a newsletter is sent as one
    regular campaign (see :mod:`.issues`); every other delivery is sent one by one."""

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """One delivery (a newsletter's as an issue of one)."""
        return self.deliver_batch([delivery])[0]

    def deliver_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Newsletter deliveries by issue (campaign, due time), the others one by one."""
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        issues: dict[Issue, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            newsletter = self.settings.newsletters.get(delivery.campaign)
            if newsletter is None or delivery.action is not DeliveryAction.SEND:
                outcomes[index] = super().deliver(delivery)
            else:
                issue = Issue(delivery.campaign, delivery.due_at, newsletter.tag)
                issues.setdefault(issue, []).append(index)
        for issue, indexes in issues.items():
            done = deliver_issue(self, issue, [deliveries[i] for i in indexes])
            for index, outcome in zip(indexes, done, strict=True):
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]
