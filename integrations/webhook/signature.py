"""Signing webhook requests, and checking them on the receiving side.

Every request carries ``X-Followup-Timestamp`` (Unix seconds) and ``X-Followup-Signature:
v1=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` (the body's exact bytes) with the shared
secret. A receiver recomputes it with :func:`verify_signature`, which also refuses a timestamp
too far from its own clock, so a captured request cannot be replayed later. Several ``v1=``
values, comma-separated, are accepted: one per secret while a secret is being rotated.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

SCHEME = "v1"
TIMESTAMP_HEADER = "X-Followup-Timestamp"
SIGNATURE_HEADER = "X-Followup-Signature"
TOLERANCE = timedelta(minutes=5)


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The ``X-Followup-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + _bytes(body)
    digest = hmac.new(_bytes(secret), signed, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: str | bytes,
    header: str,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> bool:
    """Whether ``header`` (the ``X-Followup-Signature`` value) signs ``body`` at ``timestamp``
    (the ``X-Followup-Timestamp`` value) with ``secret``, and ``timestamp`` is within
    ``tolerance`` of ``now`` (tz-aware). Compares in constant time; never raises on bad input."""
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs(now.timestamp() - sent_at) > tolerance.total_seconds():
        return False
    expected = sign(secret, sent_at, body).encode()
    offered = [part.strip().encode() for part in header.split(",")]
    return any(hmac.compare_digest(expected, value) for value in offered if value)
