"""Scheduled newsletters as one Mailchimp regular campaign per issue (``newsletters:``).

An issue's deliveries (one campaign, one due time) may come in several calls (the dispatcher
claims rows in chunks) and again after a retry, so every step can be repeated:

1. each recipient is upserted and tagged with the issue's tag (``PUT`` and ``POST`` of tags, both
   repeatable);
2. the campaign titled with the issue key is looked up (``GET /campaigns``), else created for the
   tag's static segment (a create whose answer was lost is found by the next call's look-up);
3. it is sent once it is :data:`~.newsletter.SETTLE` old, so the other chunks are tagged too;
   until then the deliveries wait (``failed`` with a ``retry_at``);
4. once sent, a delivery is ``delivered`` if its member was tagged before the send, else
   ``failed`` for good: Mailchimp sends a campaign once, and a second one is never made.

The content is the first delivery's rendered subject, HTML and text, the same for every member:
a newsletter template must not personalise. Its own unsubscribe link becomes Mailchimp's
``*|UNSUB|*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from engine.channels import Delivery, DeliveryOutcome, DeliveryStatus
from integrations.mailchimp.audience import subscriber_hash
from integrations.mailchimp.newsletter import (
    SENT_STATES,
    SETTLE,
    Issue,
    create_issue,
    fill_and_send,
    find_issue,
    tagged_at,
    when,
)
from integrations.mailchimp.transport import MailchimpError

if TYPE_CHECKING:
    from integrations.mailchimp.email import MailchimpEmail

UNSUB = "*|UNSUB|*"


def content(first: Delivery) -> tuple[str, str | None]:
    """The issue's HTML and text: the first delivery's, its unsubscribe link made Mailchimp's."""
    fields = first.fields
    html, text = str(fields.get("html") or ""), fields.get("text")
    own = fields.get("unsubscribe_url")
    if own:
        html, text = html.replace(str(own), UNSUB), str(text or "").replace(str(own), UNSUB)
    if not html and text:
        html = "<pre>" + str(text) + "</pre>"
    return html, str(text) if text else None


def deliver_issue(
    provider: MailchimpEmail, issue: Issue, deliveries: Sequence[Delivery]
) -> list[DeliveryOutcome]:
    """Outcomes for ``deliveries`` (all of ``issue``), in order."""
    transport, list_id = provider.transport, provider.settings.list_id
    outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
    try:
        campaign = find_issue(transport, list_id, issue)
    except MailchimpError as error:
        return [provider.failed(d.key, error) for d in deliveries]
    if campaign is not None and campaign.get("status") in SENT_STATES:
        return [_received(provider, issue, campaign, d) for d in deliveries]
    tagged: list[int] = []
    for index, delivery in enumerate(deliveries):
        recipient = delivery.recipient
        if not recipient.email:
            outcomes[index] = DeliveryOutcome(
                DeliveryStatus.FAILED, "no_address: the customer has no email"
            )
            continue
        try:
            provider.audience.upsert(recipient)
            provider.audience.tag(recipient.email, [issue.tag])
        except MailchimpError as error:
            outcomes[index] = provider.failed(delivery.key, error)
            continue
        tagged.append(index)
    if tagged:
        first = deliveries[tagged[0]]
        done = _send(provider, issue, campaign, first)
        for index in tagged:
            outcomes[index] = (
                provider.failed(deliveries[index].key, done)
                if isinstance(done, MailchimpError)
                else done
            )
    return [outcome or DeliveryOutcome(DeliveryStatus.FAILED, "not sent") for outcome in outcomes]


def _send(
    provider: MailchimpEmail, issue: Issue, campaign: dict[str, Any] | None, first: Delivery
) -> DeliveryOutcome | MailchimpError:
    """Create the issue's campaign if needed, and send it once it has settled."""
    transport, fields = provider.transport, first.fields
    from_name, from_email = parseaddr(str(fields.get("from") or provider.settings.sender or ""))
    try:
        if campaign is None:
            campaign = create_issue(
                transport,
                provider.settings.list_id,
                issue,
                str(fields.get("subject") or issue.title),
                from_name=from_name or from_email.split("@")[0],
                reply_to=str(fields.get("reply_to") or from_email),
            )
        campaign_id = str(campaign["id"])
        # settled by Mailchimp's clock (create_time is its own), retried on the pass's clock
        wall = transport.wall_clock()
        ready = (when(campaign.get("create_time")) or wall) + SETTLE
        if wall < ready:
            retry_at = transport.clock() + (ready - wall)
            return DeliveryOutcome(
                DeliveryStatus.FAILED,
                f"tagged {issue.tag}; campaign {campaign_id} is sent at {retry_at:%H:%M:%S},"
                " once every recipient is tagged",
                retry_at=retry_at,
            )
        html, text = content(first)
        fill_and_send(transport, campaign_id, html, text)
    except MailchimpError as error:
        return error
    return DeliveryOutcome(
        DeliveryStatus.DELIVERED,
        f"newsletter {issue.title}: campaign {campaign_id} sent to tag {issue.tag}",
        provider_id=campaign_id,
    )


def _received(
    provider: MailchimpEmail, issue: Issue, campaign: dict[str, Any], delivery: Delivery
) -> DeliveryOutcome:
    """For an issue already sent: whether this member was in it (tagged before the send)."""
    campaign_id = str(campaign["id"])
    email = delivery.recipient.email
    if not email:
        return DeliveryOutcome(DeliveryStatus.FAILED, "no_address: the customer has no email")
    try:
        at = tagged_at(
            provider.transport, provider.settings.list_id, subscriber_hash(email), issue.tag
        )
    except MailchimpError as error:
        return provider.failed(delivery.key, error)
    sent = when(campaign.get("send_time"))
    if at is not None and (sent is None or at <= sent):
        return DeliveryOutcome(
            DeliveryStatus.DELIVERED,
            f"newsletter {issue.title}: campaign {campaign_id} sent to tag {issue.tag}",
            provider_id=campaign_id,
        )
    return DeliveryOutcome(
        DeliveryStatus.FAILED,
        f"newsletter {issue.title} was already sent (campaign {campaign_id}) before this member"
        " was tagged; a campaign is sent once, so not to this member",
    )
