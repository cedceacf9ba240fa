"""The words of the journey engine's decisions, in one place.

A journey's status, a timer's kind, a send's status and the reasons a plan line or an entry
record gives are these enums. They are ``StrEnum``: a member equals and stores as its value, so
the database columns, the plan's JSON and ``followup explain`` read the same words as before.
One care: orjson writes a member as a value but refuses it as a dict key, so counts kept by
reason for JSON are keyed by ``str(member)``.
"""

from __future__ import annotations

import enum


class JourneyStatus(enum.StrEnum):
    """Where a journey is: running, done with its steps, or ended early."""

    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class TimerKind(enum.StrEnum):
    """What a journey's timer does when due (stored in ``journey_timers.kind``)."""

    RESUME = "resume"  # a wait ends: take the next step
    TIMEOUT = "timeout"  # a wait for an event ends without it: the ``else`` branch
    SEND = "send"  # a send deferred by quiet or calling hours is decided again
    CALL = "call"  # the caller's own action (simulate's schedule ticks and segment sweeps)


class SendStatus(enum.StrEnum):
    """The ``status`` of a channel action's plan line."""

    SENT = "sent"
    SKIPPED = "skipped"


class SkipReason(enum.StrEnum):
    """Why a due send is skipped: the ``reason`` of a skipped plan line."""

    NO_CONSENT = "no_consent"
    FREQUENCY_CAP = "frequency_cap"
    SUPPRESSED = "suppressed"
    NO_ADDRESS = "no_address"
    HOLDOUT = "holdout"  # the customer is in the campaign's control group
    EXITED = "exited"  # the journey ended before the send was due
    RENDER_ERROR = "render_error"  # the subject or body template failed for this customer
    POLICY = "policy"  # a policy refused it without a reason of its own


class ExitReason(enum.StrEnum):
    """Why a journey ended early: the ``reason`` of an ``exit`` plan line."""

    EXIT_EVENT = "exit_event"  # one of the campaign's ``exit`` events
    RESTARTED = "restarted"  # a new trigger restarted it (``entry.while_active: restart``)
    MERGED = "merged"  # the profile merged into one already running the campaign


class NotEntered(enum.StrEnum):
    """Why a trigger started no journey (the ``not_entered`` records of ``explain``)."""

    AUDIENCE = "audience"
    ONCE = "once"
    COOLDOWN = "cooldown"
    ALREADY_ACTIVE = "already_active"


NOT_ENTERED = "not_entered"
"""The ``action`` of the ``decisions`` row that records a :class:`NotEntered` refusal."""
