"""What a shop may write for a customer's consent: the channels, the events that change it, and
the values that say yes or no.

Segment's libraries send JSON booleans; a CSV export writes ``false``, ``No`` or ``0``. Each of
those says the same, and is read so: an opt-out written as text is an opt-out. A value that says
neither (``"maybe"``, ``2``) or a channel no one has (``e-mail``) is refused at ingest, with the
line and field, rather than taken and ignored (docs/ingest.md).
"""

from __future__ import annotations

CONSENT_CHANNELS = ("email", "sms", "call", "ads")
CONSENT_EVENTS = ("Subscribed", "Unsubscribed", "Subscription Confirmed")
_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def consent_channel(value: object) -> str | None:
    """A channel as a shop may write it (``Email``, `` call``): trimmed, lower case; ``None``
    for what is not text."""
    return value.strip().lower() if isinstance(value, str) else None


def event_channel(named: object) -> str | None:
    """The consent channel a consent event's ``properties.channel`` names: ``email`` when it is
    left out (or empty), ``None`` when it names no consent channel."""
    if named is None or named == "":
        return "email"
    channel = consent_channel(named)
    return channel if channel in CONSENT_CHANNELS else None


def consent_flag(value: object) -> bool | None:
    """Yes or no, for a JSON boolean, the integers 1 and 0, or ``true``/``false``,
    ``yes``/``no``, ``1``/``0`` as text in any case; ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower())
    return None
