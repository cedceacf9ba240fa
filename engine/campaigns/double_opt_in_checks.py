"""What ``followup validate`` checks of ``policies.double_opt_in``: the confirmation template
exists, no campaign file takes the built-in campaign's id, and a campaign that still triggers
on ``Subscribed`` is warned that its emails will find no consent."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from engine.campaigns.loader import LoadedCampaign, Problem, display_path, read_yaml
from engine.campaigns.schema import EmailSend, EventTrigger, walk_steps
from engine.double_opt_in import CAMPAIGN_ID, CONFIRMED, SIGNUP, double_opt_in
from engine.policies import DoubleOptIn


def double_opt_in_findings(
    config_path: Path | None,
    policies: dict[str, object],
    campaigns: Iterable[LoadedCampaign],
    templates: Path,
) -> list[Problem]:
    """The problems and warnings of the policy in the config at ``config_path`` (none when the
    policy is off or itself invalid: that is reported with the rest of the config)."""
    try:
        policy = double_opt_in(dict(policies))
    except ValidationError:
        return []
    if policy is None or config_path is None:
        return []
    campaigns = list(campaigns)
    found = _template_problems(config_path, policy, templates)
    found += reserved_id_problems(campaigns, policies)
    for loaded in campaigns:
        campaign = loaded.campaign
        trigger = campaign.trigger
        emails = any(isinstance(step, EmailSend) for _, _, step in walk_steps(campaign.steps))
        if isinstance(trigger, EventTrigger) and trigger.event == SIGNUP and emails:
            warning = loaded.source.problem(
                ("trigger", "event"),
                f"under policies.double_opt_in a {SIGNUP} event grants no consent until it is "
                f"confirmed, so this campaign's emails would be skipped (no_consent); "
                f"trigger on {CONFIRMED} instead",
            )
            found.append(warning.as_warning())
    return found


def reserved_id_problems(
    campaigns: Iterable[LoadedCampaign], policies: dict[str, object]
) -> list[Problem]:
    """A problem at each campaign file whose id is the built-in campaign's, when the policy
    is on (``simulate`` and ``run`` cannot run both)."""
    try:
        if double_opt_in(dict(policies)) is None:
            return []
    except ValidationError:
        return []
    return [
        loaded.source.problem(
            ("campaign",),
            f"campaign id {CAMPAIGN_ID} is the double opt-in confirmation's "
            "(policies.double_opt_in); give your campaign another id",
        )
        for loaded in campaigns
        if loaded.campaign.id == CAMPAIGN_ID
    ]


def _template_problems(config_path: Path, policy: DoubleOptIn, templates: Path) -> list[Problem]:
    template = templates / policy.template
    if template.is_file():
        if "confirm_url" in template.read_text(errors="replace"):
            return []
        _, source, _ = read_yaml(config_path)
        message = (
            f"the confirmation email's template {display_path(template)} has no "
            "{{ confirm_url }}: nobody could confirm a signup"
        )
        return [source.problem(("policies", "double_opt_in"), message).as_warning()]
    _, source, _ = read_yaml(config_path)
    where = display_path(templates / policy.template)
    message = (
        f"the confirmation email's template {where} does not exist; create it with a link to "
        "{{ confirm_url }} (followup's own is templates/confirm_subscription.html), or name "
        "another with template:"
    )
    return [source.problem(("policies", "double_opt_in"), message)]
