"""Why a customer did or did not get a message, in plain English: the lines of ``followup
explain``, ``simulate --explain`` and the dashboard's customer page, from
:func:`engine.drive.explanation.explain_customer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.campaigns.loader import CampaignSet, campaign_version
from engine.campaigns.schema import Campaign, EventTrigger, ScheduleTrigger, SegmentTrigger
from engine.double_opt_in import CAMPAIGN_ID, with_confirmation
from engine.drive.explanation import Decision, Explanation, JourneyState, Outcome
from engine.drive.status_model import CurrentCampaign
from engine.journeys.outcomes import NOT_ENTERED, ExitReason, NotEntered, SkipReason
from engine.journeys.plan import format_optional_time, format_time
from engine.state.profile import CustomerState


def current_campaigns(loaded: CampaignSet, policies: dict[str, Any]) -> dict[str, CurrentCampaign]:
    """Each campaign's status and version now: the files', and the built-in double opt-in
    campaign's when the policy is on."""
    current = {
        cid: CurrentCampaign(found.campaign.status.value, found.version)
        for cid, found in loaded.campaigns.items()
    }
    for campaign in with_confirmation([], policies) if CAMPAIGN_ID not in current else []:
        current[campaign.id] = CurrentCampaign(campaign.status.value, campaign_version(campaign))
    return current


SKIP_REASONS: dict[str, str] = {
    SkipReason.NO_CONSENT: "no {channel} consent",
    SkipReason.FREQUENCY_CAP: "over the project's {channel} frequency cap",
    SkipReason.HOLDOUT: "held out: in the campaign's control group, never contacted",
    SkipReason.SUPPRESSED: "the address or phone is on the project's suppression list",
    SkipReason.NO_ADDRESS: "no {address} known for the customer",
    SkipReason.EXITED: "the journey had already ended",
    SkipReason.RENDER_ERROR: "the subject or body template failed to render for this customer",
    SkipReason.POLICY: "blocked by a project policy",
}
EXIT_REASONS: dict[str, str] = {
    ExitReason.EXIT_EVENT: "exited on {event}",
    ExitReason.RESTARTED: "exited: restarted by a new trigger (entry.while_active: restart)",
    ExitReason.MERGED: "exited: the profile was merged into one already running this campaign "
    "(one journey per campaign survives a merge)",
}
NOT_ENTERED_REASONS: dict[str, str] = {
    NotEntered.AUDIENCE: "the customer did not match the campaign's audience at the trigger",
    NotEntered.ONCE: "entry.once: the customer entered this campaign before",
    NotEntered.COOLDOWN: "the customer entered this campaign within its entry.cooldown",
    NotEntered.ALREADY_ACTIVE: (
        "a journey of this campaign was already running (entry.while_active: ignore)"
    ),
}
_ADDRESSES = {"email": "email address", "call": "phone number", "sms": "phone number"}
# a decided send, by its outbox row's status: the outcome text after it says the rest
_SEND_VERBS = {"delivered": "sent", "pending": "queued", "sending": "queued"}
_FIELD_ORDER = ("template", "subject", "audience", "list", "priority", "reason", "url", "variant")


def _plain(reason: str, channel: str | None) -> str | None:
    template = SKIP_REASONS.get(reason)
    if template is None:
        return None
    name = channel or "channel"
    return template.format(channel=name, address=_ADDRESSES.get(name, "email address or phone"))


def reason_text(decision: Decision) -> str:
    """A short plain-English explanation of the decision's reason."""
    reason = decision.reason or ""
    if decision.action == NOT_ENTERED:
        return NOT_ENTERED_REASONS.get(reason, reason)
    if decision.action == "exit":
        event = str(decision.fields.get("event", "an exit event"))
        return EXIT_REASONS.get(reason, f"exited: {reason}").format(event=event)
    return _plain(reason, decision.channel) or reason


def _fields_text(fields: Mapping[str, Any]) -> str:
    parts = []
    for key in _FIELD_ORDER:
        value = fields.get(key)
        if value is None or value == "":
            continue
        text = f'"{value}"' if key == "subject" else str(value)
        parts.append(f"{key} {text}")
    return ", ".join(parts)


SIMULATED = "simulated: nothing is sent"


def outcome_text(outcome: Outcome | None, channel: str | None, simulated: bool = False) -> str:
    """What became of a channel action decided ``sent``: its outbox row (none in a
    simulation)."""
    if outcome is None:
        return SIMULATED if simulated else "no outbox row (not handed to delivery)"
    detail = f": {outcome.detail}" if outcome.detail else ""
    match outcome.status:
        case "delivered":
            return f"delivered {format_time(outcome.updated_at)}"
        case "pending":
            tried = f", {outcome.attempts} attempt(s) so far{detail}" if outcome.attempts else ""
            return f"waiting for delivery (due {format_time(outcome.next_attempt_at)}{tried})"
        case "sending":
            return f"being delivered (claimed {format_time(outcome.updated_at)})"
        case "skipped":
            why = outcome.detail or "no detail"
            reason, _, rest = why.partition(":")
            if (
                reason == SkipReason.EXITED and rest
            ):  # a late exit event settled it, not the delivery
                return f"not delivered: skipped {format_time(outcome.updated_at)}, {why}"
            plain = _plain(reason, channel)
            if plain is not None and not rest:
                why += f" ({plain})"
            return f"not delivered: checked again at delivery {format_time(outcome.updated_at)}, skipped: {why}"
        case "failed":
            return f"FAILED {format_time(outcome.updated_at)}{detail}"
        case "unknown":
            return f"UNKNOWN outcome{detail}; check by hand whether it reached the customer"
    return f"{outcome.status}{detail}"


def decision_text(decision: Decision, customer_id: str, simulated: bool = False) -> str:
    """One decision as a line a person reads (of a simulation: nothing was delivered)."""
    head = f"{format_time(decision.at)} {decision.campaign_id}"
    if decision.journey_id:
        head += f" {decision.journey_id}"
    if decision.customer_id != customer_id:
        head += f" (as merged profile {decision.customer_id})"
    fields = decision.fields
    action = decision.action
    if action == "enter":
        held = " (held out: control group, never contacted)" if fields.get("holdout") else ""
        return f"{head} entered{held}"
    if action == NOT_ENTERED:
        return f"{head} not entered: {decision.reason} ({reason_text(decision)})"
    if action == "exit":
        return f"{head} {reason_text(decision)}"
    if action == "convert":
        value = fields.get("value")
        worth = f" (value {value})" if value is not None else ""
        control = " [control group]" if fields.get("holdout") else ""
        return f"{head} converted by {fields.get('event', 'the goal event')}{worth}{control}"
    verb = {"audience_add": "add to audience", "audience_remove": "remove from audience"}.get(
        action, "sent"
    )
    described = _fields_text(fields)
    step = f" step {decision.step}:" if decision.step is not None else ":"
    if decision.status == "skipped":
        extra = f"; {described}" if described else ""
        what = (
            (decision.channel or "?") if action == "send" else f"{decision.channel or '?'} {verb}"
        )
        return f"{head}{step} {what} skipped: {decision.reason} ({reason_text(decision)}){extra}"
    if action == "send":  # "sent" once the provider confirmed it, not when it was decided
        verb = _SEND_VERBS.get(decision.outcome.status if decision.outcome else "", "decided")
    what = f"{decision.channel or '?'} {verb}"
    extra = f" ({described})" if described else ""
    outcome = outcome_text(decision.outcome, decision.channel, simulated)
    return f"{head}{step} {what}{extra} — {outcome}"


def journey_text(
    journey: JourneyState, current: Mapping[str, CurrentCampaign], simulated: bool = False
) -> str:
    """One journey as a line a person reads (of a simulation, which runs drafts too)."""
    file = current.get(journey.campaign_id)
    version = f"version {journey.version}"
    if file is not None and file.version != journey.version:
        version = f"older version {journey.version} (the file is now {file.version})"
    text = (
        f"{journey.campaign_id} {journey.id} entered {format_time(journey.entered_at)}: "
        f"{journey.status}, {version}"
    )
    if journey.status == "active":
        if file is None:
            text += "; held: the campaign file is gone"
        elif file.status != "active" and not (simulated and file.status == "draft"):
            text += f"; held: the campaign is {file.status}"
        if journey.next_due_at is not None:
            text += f"; next step due {format_time(journey.next_due_at)}"
        else:
            text += "; waiting for an event"
    return text


def _trigger_hint(campaign: Campaign, explanation: Explanation, simulated: bool) -> str:
    trigger = campaign.trigger
    if isinstance(trigger, EventTrigger):
        seen = explanation.events.get(trigger.event, 0)
        if not seen:
            return (
                f"{campaign.id}: no {trigger.event!r} event seen for this customer "
                f"(the campaign's trigger)"
            )
        where = f" none matched `where: {trigger.where.source}`, or" if trigger.where else ""
        if simulated:  # every campaign simulated runs from the first event
            why = (
                f"none matched `where: {trigger.where.source}`"
                if trigger.where
                else "none was a track event (pages and screens of that name do not trigger)"
            )
            return f"{campaign.id}: {seen} {trigger.event!r} event(s) seen, but {why}"
        return (
            f"{campaign.id}: {seen} {trigger.event!r} event(s) seen, but{where} they came before "
            f"the campaign was running (an event triggers only the campaigns active when the "
            f"engine takes it)"
        )
    if isinstance(trigger, ScheduleTrigger):
        audience = f" matching `{campaign.audience.source}`" if campaign.audience else ""
        return (
            f"{campaign.id}: scheduled ({trigger.schedule}); every customer{audience} enters at "
            f"each tick, and none has been run for this customer yet"
        )
    assert isinstance(trigger, SegmentTrigger)
    return (
        f"{campaign.id}: enters when `{trigger.segment.source}` turns true for the customer; "
        f"it has not"
    )


def why_nothing(
    explanation: Explanation,
    campaigns: Mapping[str, Campaign],
    campaign_id: str | None,
    simulated: bool = False,
) -> list[str]:
    """What may explain that no decision was recorded (in a simulation: made). A simulation
    runs drafts too, and no paused campaign."""
    runs = {"active", "draft"} if simulated else {"active"}
    hints = []
    if explanation.pending_events:
        hints.append(
            f"{explanation.pending_events} of the customer's events wait for the journey engine: "
            f"run `followup tick` (or keep `followup run` going)"
        )
    if campaign_id is not None:
        campaign = campaigns.get(campaign_id)
        if campaign is None:
            hints.append(f"{campaign_id}: its campaign file is gone; nothing new can happen")
        elif campaign.status.value == "paused" and simulated:
            hints.append(f"{campaign_id} is paused: simulate does not run it")
        elif campaign.status.value == "paused":
            hints.append(
                f"{campaign_id} is paused: no new entries, its pending steps are held until it "
                f"is active again"
            )
        elif campaign.status.value not in runs:
            hints.append(f"{campaign_id} is a draft: only `validate` and `simulate` run it")
        else:
            hints.append(_trigger_hint(campaign, explanation, simulated))
        return hints
    seen = ", ".join(f"{name} ×{n}" for name, n in explanation.events.items()) or "none"
    hints.append(f"the customer's events: {seen}")
    running = [c for c in campaigns.values() if c.status.value in runs]
    if not running:
        hints.append(
            "no campaign is active or a draft (simulate runs no paused campaign)"
            if simulated
            else "no campaign is active (paused and draft campaigns take no entries)"
        )
    hints.extend(
        _trigger_hint(c, explanation, simulated) for c in sorted(running, key=lambda c: c.id)
    )
    hints.extend(
        f"{c.id} is {c.status.value}: "
        + ("simulate does not run it" if simulated else "it takes no new entries")
        for c in sorted(campaigns.values(), key=lambda c: c.id)
        if c.status.value not in runs
    )
    return hints


def decision_document(
    decision: Decision, customer_id: str, simulated: bool = False
) -> dict[str, Any]:
    """One decision as ``explain --json`` gives it."""
    outcome = decision.outcome
    return {
        "at": format_time(decision.at),
        "campaign": decision.campaign_id,
        "journey": decision.journey_id,
        "customer": decision.customer_id,
        "action": decision.action,
        "step": decision.step,
        "channel": decision.channel,
        "status": decision.status,
        "reason": decision.reason,
        "explanation": reason_text(decision) if decision.reason else None,
        "fields": dict(decision.fields),
        "outcome": None
        if outcome is None
        else {
            "key": outcome.key,
            "status": outcome.status,
            "detail": outcome.detail,
            "attempts": outcome.attempts,
            "updated_at": format_time(outcome.updated_at),
            "provider_id": outcome.provider_id,
        },
        "text": decision_text(decision, customer_id, simulated),
    }


def explanation_document(
    customer_id: str,
    state: CustomerState,
    explanation: Explanation,
    hints: list[str],
    current: Mapping[str, CurrentCampaign],
    simulated: bool = False,
) -> dict[str, Any]:
    """``followup explain --json``'s document (``simulate --explain --json``'s, ``simulated``)."""
    return {
        "customer": {
            "id": customer_id,
            "user_id": state.user_id,
            "email": state.email,
            "phone": state.phone,
            "merged_ids": list(explanation.merged_ids),
        },
        "campaign": explanation.campaign_id,
        "decisions": [decision_document(d, customer_id, simulated) for d in explanation.decisions],
        "journeys": [
            {
                "journey": j.id,
                "campaign": j.campaign_id,
                "version": j.version,
                "current_version": j.version == current[j.campaign_id].version
                if j.campaign_id in current
                else False,
                "status": j.status,
                "entered_at": format_time(j.entered_at),
                "next_due_at": format_optional_time(j.next_due_at),
            }
            for j in explanation.journeys
        ],
        "events": dict(explanation.events),
        "pending_events": explanation.pending_events,
        "hints": hints,
    }


def explanation_lines(
    customer_id: str,
    state: CustomerState,
    explanation: Explanation,
    hints: list[str],
    current: Mapping[str, CurrentCampaign],
    simulated: bool = False,
) -> list[str]:
    """``followup explain``'s text (``simulate --explain``'s, ``simulated``)."""
    who = ", ".join(x for x in (state.user_id, state.email, state.phone) if x)
    lines = [f"customer {customer_id}" + (f" ({who})" if who else "")]
    if explanation.merged_ids:
        lines.append("  with the profiles merged into it: " + ", ".join(explanation.merged_ids))
    scope = f" in {explanation.campaign_id}" if explanation.campaign_id else ""
    if not explanation.decisions:
        made = "made in the simulation" if simulated else "recorded"
        lines.append(f"no decisions {made} for this customer{scope}. Why that may be:")
        lines.extend(f"  - {hint}" for hint in hints)
    else:
        lines.append(f"decisions{scope}, in time order:")
        lines.extend(
            "  " + decision_text(decision, customer_id, simulated)
            for decision in explanation.decisions
        )
    if explanation.journeys:
        lines.append("journeys:")
        lines.extend(
            "  " + journey_text(journey, current, simulated) for journey in explanation.journeys
        )
    return lines
