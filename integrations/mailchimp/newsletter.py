"""A newsletter as a Mailchimp regular campaign to one tag of the audience.

Three calls: ``POST /campaigns`` (type ``regular``, recipients the tag as a saved segment: tags
are static segments), ``PUT /campaigns/{id}/content``, ``POST /campaigns/{id}/actions/send``.
Mailchimp sends it to every subscribed member with the tag; unsubscribed members are left out by
Mailchimp itself.

A scheduled newsletter (``newsletters:`` in the settings) is sent this way once per *issue* (its
deliveries due at one time): each recipient is tagged ``<tag>-<YYYYMMDDHHMM>``, then one campaign
titled with the issue key is created for that tag and sent (see :mod:`.issues`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.mailchimp.transport import Failure, MailchimpError, Transport


def tag_id(transport: Transport, list_id: str, tag: int | str) -> int:
    """The id of ``tag`` (an id already, or a tag name looked up among static segments)."""
    if isinstance(tag, int):
        return tag
    found = transport.marketing(lambda c: c.lists.list_segments(list_id, type="static", count=1000))
    for segment in found.get("segments") or []:
        if segment.get("name") == tag:
            return int(segment["id"])
    raise MailchimpError(f"no tag {tag!r} in audience {list_id}", Failure.PERMANENT)


def send_newsletter(
    transport: Transport,
    list_id: str,
    tag: int | str,
    subject: str,
    html: str,
    *,
    from_name: str,
    reply_to: str,
    text: str | None = None,
    title: str | None = None,
    preview_text: str | None = None,
) -> str:
    """Create, fill and send a regular campaign to the members tagged ``tag``; its id.
    Raises :class:`MailchimpError` (``Failure.UNKNOWN`` when the send call got no answer)."""
    settings: dict[str, Any] = {
        "subject_line": subject,
        "from_name": from_name,
        "reply_to": reply_to,
        "title": title or subject,
    }
    if preview_text:
        settings["preview_text"] = preview_text
    segment = tag_id(transport, list_id, tag)
    campaign = transport.marketing(
        lambda c: c.campaigns.create(
            {
                "type": "regular",
                "recipients": {"list_id": list_id, "segment_opts": {"saved_segment_id": segment}},
                "settings": settings,
            }
        )
    )
    campaign_id = str(campaign["id"])
    content: dict[str, Any] = {"html": html}
    if text:
        content["plain_text"] = text
    transport.marketing(lambda c: c.campaigns.set_content(campaign_id, content))
    transport.marketing(lambda c: c.campaigns.send(campaign_id), sends=True)
    return campaign_id


SETTLE = timedelta(minutes=1)
"""How long a new issue's campaign waits, unsent, before it goes: the dispatcher claims an issue's
deliveries in chunks, and every chunk must be tagged before the one send."""
SENT_STATES = ("sending", "sent")
LOOKBACK = timedelta(days=1)  # Mailchimp's clock against ours: look a day before the due time


@dataclass(frozen=True, slots=True)
class Issue:
    """One issue of a newsletter: the deliveries of ``campaign`` due at ``due_at``."""

    campaign: str
    due_at: datetime
    base_tag: str

    @property
    def stamp(self) -> str:
        return self.due_at.astimezone(UTC).strftime("%Y%m%d%H%M")

    @property
    def tag(self) -> str:
        """The per-issue tag its recipients get, a static segment of the audience."""
        return f"{self.base_tag}-{self.stamp}"

    @property
    def title(self) -> str:
        """The Mailchimp campaign's title: the issue key, to find it again after a retry."""
        return f"followup {self.campaign} {self.stamp}"


def when(value: object) -> datetime | None:
    """A Mailchimp date-time (``2024-05-06T09:00:00+00:00``), ``None`` when empty."""
    if not value:
        return None
    found = datetime.fromisoformat(str(value))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def find_issue(transport: Transport, list_id: str, issue: Issue) -> dict[str, Any] | None:
    """The regular campaign already made for ``issue`` (its title), if any."""
    since = (issue.due_at - LOOKBACK).astimezone(UTC).isoformat(timespec="seconds")
    found = transport.marketing(
        lambda c: c.campaigns.list(
            type="regular", list_id=list_id, since_create_time=since, count=1000
        )
    )
    for campaign in found.get("campaigns") or []:
        if (campaign.get("settings") or {}).get("title") == issue.title:
            return dict(campaign)
    return None


def create_issue(
    transport: Transport,
    list_id: str,
    issue: Issue,
    subject: str,
    *,
    from_name: str,
    reply_to: str,
) -> dict[str, Any]:
    """A new (unsent) regular campaign to the issue's tag; Mailchimp's campaign."""
    segment = transport.marketing(
        lambda c: c.lists.list_segments(
            list_id,
            type="static",
            count=1000,
            since_created_at=(issue.due_at - LOOKBACK).astimezone(UTC).isoformat("T", "seconds"),
        )
    )
    found = [s for s in segment.get("segments") or [] if s.get("name") == issue.tag]
    if not found:  # no member could be tagged: nothing to send to
        raise MailchimpError(f"no tag {issue.tag!r} in audience {list_id}", Failure.PERMANENT)
    body = issue_body(list_id, issue, int(found[0]["id"]), subject, from_name, reply_to)
    campaign: dict[str, Any] = transport.marketing(lambda c: c.campaigns.create(body))
    return campaign


def issue_body(
    list_id: str, issue: Issue, segment_id: int, subject: str, from_name: str, reply_to: str
) -> dict[str, Any]:
    """``POST /campaigns``: a regular campaign to a static segment, titled with the issue."""
    return {
        "type": "regular",
        "recipients": {"list_id": list_id, "segment_opts": {"saved_segment_id": segment_id}},
        "settings": {
            "subject_line": subject,
            "from_name": from_name,
            "reply_to": reply_to,
            "title": issue.title,
        },
    }


def fill_and_send(transport: Transport, campaign_id: str, html: str, text: str | None) -> None:
    """Set the content (a repeatable ``PUT``) and send; the send is never repeated blindly."""
    content: dict[str, Any] = {"html": html}
    if text:
        content["plain_text"] = text
    transport.marketing(lambda c: c.campaigns.set_content(campaign_id, content))
    transport.marketing(lambda c: c.campaigns.send(campaign_id), sends=True)


def tagged_at(transport: Transport, list_id: str, member_id: str, tag: str) -> datetime | None:
    """When the member got ``tag`` (``None`` if it has not)."""
    found = transport.marketing(
        lambda c: c.lists.get_list_member_tags(list_id, member_id, count=1000)
    )
    for each in found.get("tags") or []:
        if each.get("name") == tag:
            return when(each.get("date_added")) or datetime.min.replace(tzinfo=UTC)
    return None
