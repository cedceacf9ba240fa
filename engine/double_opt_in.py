"""Double opt-in: a signup grants consent only once the customer follows the link it was sent.

With ``policies.double_opt_in: [email]`` in ``followup.yaml`` (or the long form, to name the
lists it holds for, the template, subject and how long a link lasts), a ``Subscribed`` event for
email grants no consent by itself. The engine runs a built-in campaign, ``double-opt-in``, that
sends the confirmation email (``templates/confirm_subscription.html`` with ``{{ confirm_url }}``)
at once; its goal is the ``Subscription Confirmed`` event the link records, which grants the
consent. The confirmation is transactional: it needs no consent and is not counted by the
frequency caps, nor held by quiet hours (the customer is waiting for it), but a suppressed
address or a customer without an email address gets none. A customer who already consents gets
no confirmation; a second signup within ten minutes gets no second email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from engine.campaigns.durations import format_duration
from engine.campaigns.schema import Campaign
from engine.errors import FollowupError
from engine.events import Event
from engine.policies import DoubleOptIn
from engine.state.profile import Consent

CAMPAIGN_ID = "double-opt-in"
CONFIRMED = "Subscription Confirmed"
SIGNUP = "Subscribed"
RESEND_COOLDOWN = timedelta(minutes=10)
# campaigns whose sends are transactional: no consent needed, not counted by caps or quiet hours
TRANSACTIONAL = frozenset({CAMPAIGN_ID})

# The signup's channel as the consent reducer reads it (engine.state.reducers.consent_changes):
# email when absent or empty, else the name trimmed and in lower case.
_CHANNEL = (
    "(('email' if event.properties.channel is not defined or event.properties.channel is none"
    " or event.properties.channel == '' else event.properties.channel) | string | trim | lower)"
)


def confirmation_campaign(policy: DoubleOptIn) -> Campaign:
    """The built-in campaign that sends the confirmation email."""
    where = f"{_CHANNEL} in {list(policy.channels)!r}"
    if policy.lists:
        where += f" and event.properties.list in {list(policy.lists)!r}"
    return Campaign.model_validate(
        {
            "campaign": CAMPAIGN_ID,
            "name": "Double opt-in: confirm a signup",
            "trigger": {"event": SIGNUP, "where": where},
            "audience": "not customer.consent.email",
            "entry": {"cooldown": format_duration(RESEND_COOLDOWN)},
            "goal": {"event": CONFIRMED, "within": format_duration(policy.expires)},
            "steps": [{"send": "email", "template": policy.template, "subject": policy.subject}],
        }
    )


def double_opt_in(policies: dict[str, Any]) -> DoubleOptIn | None:
    """The project's double opt-in policy (``policies:`` as ``followup.yaml`` has it), if any."""
    setting = policies.get("double_opt_in")
    return None if setting is None else DoubleOptIn.model_validate(setting)


def signups_held_back(policies: dict[str, Any]) -> Callable[[str, Event], bool] | None:
    """What the state reducer holds back (see ``StateReducer``): ``None`` without the policy."""
    policy = double_opt_in(policies)
    return None if policy is None else policy.holds_back


def with_confirmation(campaigns: Iterable[Campaign], policies: dict[str, Any]) -> list[Campaign]:
    """``campaigns`` and, when the policy is on, the built-in confirmation campaign."""
    policy = double_opt_in(policies)
    found = list(campaigns)
    if policy is None:
        return found
    if any(campaign.id == CAMPAIGN_ID for campaign in found):
        raise FollowupError(
            f"campaign id {CAMPAIGN_ID} is the double opt-in confirmation's "
            "(policies.double_opt_in); give your campaign another id"
        )
    return [*found, confirmation_campaign(policy)]


def withdrawn_since(consent: Consent, channel: str, signed_up_at: datetime) -> bool:
    """Whether consent on ``channel`` was withdrawn after a signup at ``signed_up_at``: its
    confirmation must neither go out nor subscribe the customer again."""
    changed = consent.changed_at.get(channel)
    granted = bool(getattr(consent, channel, False))
    return not granted and changed is not None and changed[0] > signed_up_at


def is_transactional(campaign_id: str) -> bool:
    """Whether the sends of ``campaign_id`` need no consent and count for no cap."""
    return campaign_id in TRANSACTIONAL
