"""What a decided send carries to its channel beyond the plan's fields: the rendered email
(HTML and text), the sender settings of the step, a call's cart value, window and script."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from engine.campaigns.expressions import sandbox
from engine.campaigns.schema import AnyStep, CallSend, Campaign, EmailSend, WebhookSend, walk_steps
from engine.confirm_links import PLACEHOLDER as CONFIRM_PLACEHOLDER
from engine.confirm_links import ConfirmLinks
from engine.double_opt_in import is_transactional
from engine.durable.store import scope_of
from engine.journeys.journey import Journey
from engine.journeys.plan import PlanAction, PlanLine
from engine.policies import DEFAULT_CALLING_HOURS
from engine.rendering import BodyCheck, html_to_text, render_body
from engine.state.profile import CustomerState
from engine.unsubscribe import UnsubscribeLinks

_STEPS: dict[int, tuple[Campaign, dict[str, AnyStep]]] = {}


def _steps(campaign: Campaign) -> dict[str, AnyStep]:
    """The campaign's steps by path, worked out once per campaign object (by identity: a
    campaign with an ``update`` step holds a dict, so it cannot be hashed)."""
    found = _STEPS.get(id(campaign))
    if found is None or found[0] is not campaign:
        found = _STEPS[id(campaign)] = (
            campaign,
            {path: step for path, _loc, step in walk_steps(campaign.steps)},
        )
    return found[1]


class SendContent:
    """Renders the channel content of decided sends from ``templates``."""

    def __init__(
        self,
        templates: Path,
        calling_hours: tuple[Any, Any] | None = None,
        links: UnsubscribeLinks | None = None,
        confirm: tuple[ConfirmLinks, timedelta] | None = None,
        bodies: BodyCheck | None = None,
    ) -> None:
        self.templates = templates
        self.links = links
        self.bodies = bodies  # the check that rendered the bodies as the sends were decided
        self.confirm = confirm  # the links confirming a signup, and how long they last
        start, end = calling_hours or DEFAULT_CALLING_HOURS
        self.window = (start.strftime("%H:%M"), end.strftime("%H:%M"))

    def __call__(self, line: PlanLine, journey: Journey, state: CustomerState) -> Mapping[str, Any]:
        if line.action is not PlanAction.SEND or line.step is None:
            return {}
        step = _steps(journey.campaign).get(line.step)
        if isinstance(step, EmailSend):
            fields: dict[str, Any] = {"tags": list(step.tags)}
            if step.from_:
                fields["from"] = step.from_
            if step.reply_to:
                fields["reply_to"] = step.reply_to
            scope = scope_of(journey, state, line.at)
            if is_transactional(journey.campaign.id):
                scope["confirm_url"] = self._confirm_url(journey)
            elif self.links is not None:
                fields["unsubscribe_url"] = scope["unsubscribe_url"] = self.links.url(
                    journey.customer_id, "email", line.at
                )
            html = None
            if self.bodies is not None and not is_transactional(journey.campaign.id):
                html = self.bodies.take(
                    step.template,
                    journey.customer_id,
                    state,
                    journey.trigger,
                    line.at,
                    scope.get("unsubscribe_url"),
                )
            try:
                if html is None:
                    html, text = render_body(self.templates, step.template, scope)
                else:
                    text = html_to_text(html)
                fields["html"], fields["text"] = html, text
            except Exception as exc:  # noqa: BLE001 - kept with the row; the send fails, not the run
                fields["render_error"] = f"{type(exc).__name__}: {exc}"
            return fields
        if isinstance(step, CallSend):
            fields = {
                "cart_value": state.cart.value,
                "window_start": self.window[0],
                "window_end": self.window[1],
            }
            if step.reason:
                fields["reason"] = step.reason
            if step.script:
                try:
                    scope = scope_of(journey, state, line.at)
                    fields["script"] = sandbox().from_string(step.script).render(**scope)
                except Exception as exc:  # noqa: BLE001 - as for email
                    fields["render_error"] = f"{type(exc).__name__}: {exc}"
            return fields
        if isinstance(step, WebhookSend):
            try:
                scope = scope_of(journey, state, line.at)
                return {"body": sandbox().from_string(step.body).render(**scope)}
            except Exception as exc:  # noqa: BLE001 - as for email
                return {"render_error": f"{type(exc).__name__}: {exc}"}
        return {}

    def _confirm_url(self, journey: Journey) -> str:
        """The link that confirms the signup ``journey`` (of the double opt-in campaign)
        entered on: valid from the signup's time for the policy's ``expires``."""
        trigger = journey.trigger
        listed = trigger.properties.get("list") if trigger is not None else None
        if self.confirm is None:
            return f"{CONFIRM_PLACEHOLDER}{journey.customer_id}"
        links, ttl = self.confirm
        list_ = None if listed is None else str(listed)
        return links.url(journey.customer_id, "email", list_, journey.entered_at, ttl)
