"""A newsletter as a Mailchimp regular campaign to one tag of the audience.

Three calls: ``POST /campaigns`` (type ``regular``, recipients the tag as a saved segment: tags
are static segments), ``PUT /campaigns/{id}/content``, ``POST /campaigns/{id}/actions/send``.
Mailchimp sends it to every subscribed member with the tag; unsubscribed members are left out by
Mailchimp itself.
"""

from __future__ import annotations

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
