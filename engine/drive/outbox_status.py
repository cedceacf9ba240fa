"""The statuses of an outbox row, in one place.

``pending`` (due, or waiting for its retry or its throttle's turn) -> ``sending`` (claimed by a
dispatch, its provider being called) -> ``delivered``, ``failed`` (for good), ``skipped``
(checked again before its call and refused: consent, address, suppression, an earlier send of
the journey that failed), or ``unknown`` (the process stopped during the call of a provider that
does not deduplicate: never resent blindly).
"""

from __future__ import annotations

import enum


class OutboxStatus(enum.StrEnum):
    """An outbox row's status, as stored in ``outbox.status``."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"


UNSETTLED = (OutboxStatus.PENDING, OutboxStatus.SENDING)
"""Rows still on their way: a later send of the journey waits for them."""
OPEN = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED, OutboxStatus.UNKNOWN)
"""Rows that keep a campaign in the reports: not yet delivered or skipped."""

UNKNOWN_DETAIL = "the process stopped while the provider was called; not resent, check by hand"
"""The detail of a row retaken ``unknown``."""
