"""A batch of audience deliveries grouped into uploads: one per audience and action, in order.

Each upload is one ``users`` session at Meta, and uploads are sent in order. Changes to one
customer keep their order: a change joins the open upload of its audience and action only if the
customer has no change in a later upload (added, removed, added again in one batch makes three
uploads); otherwise it starts a new upload at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.channels import Delivery, DeliveryAction
from integrations.facebook.keys import hashed_row, matchable

ACTIONS = (DeliveryAction.AUDIENCE_ADD, DeliveryAction.AUDIENCE_REMOVE)


@dataclass
class Upload:
    """The deliveries of one audience and action, by their index in the batch, with the
    payload row of each."""

    audience: str
    action: DeliveryAction
    indexes: list[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def plan_uploads(deliveries: Sequence[Delivery]) -> tuple[dict[int, str], list[Upload]]:
    """Why each refused delivery cannot go to Meta (by index), and the uploads of the rest in
    the order they must be sent."""
    refused: dict[int, str] = {}
    uploads: list[Upload] = []
    open_uploads: dict[tuple[str, DeliveryAction], int] = {}  # position in ``uploads``
    last: dict[tuple[str, str], int] = {}  # (audience, customer) -> position of last change
    for index, delivery in enumerate(deliveries):
        reason = refusal(delivery)
        if reason is not None:
            refused[index] = reason
            continue
        audience = str(delivery.fields["audience"])
        changed = (audience, delivery.recipient.customer_id)
        position = open_uploads.get((audience, delivery.action))
        if position is None or last.get(changed, -1) > position:
            position = len(uploads)  # a new upload, sent after the customer's last change
            uploads.append(Upload(audience, delivery.action))
            open_uploads[(audience, delivery.action)] = position
        upload = uploads[position]
        upload.indexes.append(index)
        upload.rows.append(hashed_row(delivery.recipient))
        last[changed] = position
    return refused, uploads


def refusal(delivery: Delivery) -> str | None:
    """Why a delivery cannot go to Meta at all (a permanent failure), or ``None``."""
    if delivery.action not in ACTIONS:
        return f"the facebook provider cannot {delivery.action.value}"
    audience = delivery.fields.get("audience")
    if not isinstance(audience, str) or not audience.strip():
        return "no audience"
    if not matchable(delivery.recipient):
        return "no email or phone to match the customer on"
    return None
