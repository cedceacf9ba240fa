"""``followup validate --events``: whether each email a campaign sends renders on the sample's
own profiles, before a run finds out by skipping sends (``render_error``).

The events are folded into profiles as ``simulate`` folds them; each email send (its subject
and its body) is rendered for up to :data:`SAMPLE_PROFILES` customers, with, for a campaign
triggered by an event, the customer's latest such event as ``event``. The first failure of each
send is a warning at the template line that failed (at the subject, for a subject).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from engine.campaigns.expressions import sandbox
from engine.campaigns.loader import LoadedCampaign, Problem, display_path
from engine.campaigns.schema import EmailSend, EventTrigger, walk_steps
from engine.events import Event
from engine.ingest.jsonl import read_jsonl
from engine.ingest.pipeline import Accepted
from engine.journeys.context import names
from engine.journeys.memory_customers import InMemoryCustomers
from engine.journeys.simulate import EVENT_ORDER, received_order
from engine.rendering import BodyCheck, template_environment
from engine.state.reducers import StateReducer

SAMPLE_PROFILES = 1_000  # customers each send is rendered for, at most


def render_warnings(
    campaigns: Iterable[LoadedCampaign], events: Path, templates: Path, phone_region: str = "US"
) -> list[Problem]:
    """A warning for each email send of ``campaigns`` whose subject or body fails to render on
    a profile folded from ``events`` (a JSONL file of Segment messages)."""
    loaded = [c for c in campaigns if any(_emails(c))]
    if not loaded:
        return []
    parsed = [
        event
        for record in read_jsonl(events, phone_region=phone_region)
        if isinstance(record, Accepted)
        for event in record.events
    ]
    customers = InMemoryCustomers(StateReducer(phone_region), phone_region)
    watched = {
        c.campaign.trigger.event for c in loaded if isinstance(c.campaign.trigger, EventTrigger)
    }
    latest: dict[tuple[str, str], Event] = {}  # (customer, event name) -> their latest such
    for event in sorted(received_order(parsed), key=EVENT_ORDER):
        customer_id = customers.apply(event).customer_id
        if event.name in watched:
            latest[(customer_id, event.name)] = event
    ids = customers.ids()
    shown_events = display_path(events)
    warnings: list[Problem] = []
    for campaign in loaded:
        trigger = campaign.campaign.trigger
        name = trigger.event if isinstance(trigger, EventTrigger) else None
        sample: list[tuple[str, Event | None]] = [
            (cid, latest[(cid, name)] if name is not None else None)
            for cid in ids
            if name is None or (cid, name) in latest
        ][:SAMPLE_PROFILES]
        for loc, step in _emails(campaign):
            found = _first_failure(campaign, loc, step, sample, customers, templates, shown_events)
            if found is not None:
                warnings.append(found)
    return warnings


def _emails(campaign: LoadedCampaign) -> list[tuple[tuple[str | int, ...], EmailSend]]:
    return [
        (loc, step)
        for _path, loc, step in walk_steps(campaign.campaign.steps)
        if isinstance(step, EmailSend)
    ]


def _first_failure(
    campaign: LoadedCampaign,
    loc: tuple[str | int, ...],
    step: EmailSend,
    sample: Sequence[tuple[str, Event | None]],
    customers: InMemoryCustomers,
    templates: Path,
    shown_events: str,
) -> Problem | None:
    """The warning for the first sample customer the send's subject or body fails for (the
    body rendered as the run renders it, :class:`~engine.rendering.BodyCheck`)."""
    try:
        template_environment(templates).get_template(step.template)
    except Exception:  # noqa: BLE001 - a missing or invalid template is validate's own error
        return None
    subject = sandbox().from_string(step.subject)
    bodies = BodyCheck(templates)
    for customer_id, event in sample:
        state = customers.state(customer_id)
        at = event.timestamp if event is not None else state.last_seen_at or datetime.now(UTC)
        who = (
            f"for customer {customer_id} of {shown_events} "
            f"(campaign {campaign.campaign.campaign}); the send would be skipped (render_error)"
        )
        try:
            subject.render(**names(customer_id, state, event, at))
        except Exception as exc:  # noqa: BLE001 - reported, as the run would skip the send
            message = f"the subject fails to render {who}: {type(exc).__name__}: {exc}"
            return campaign.source.problem((*loc, "subject"), message).as_warning()
        if not bodies(step.template, customer_id, state, event, at):
            fault = bodies.problems[step.template]
            message = f"fails to render {who}: {fault.message}"
            return Problem(display_path(Path(fault.file)), fault.line or 1, 1, message, "warning")
    return None
