"""Warnings on names that no event or trait in the sample data ever sets (CAMPAIGN_FORMAT.md).

A missing attribute is empty at run time, so a misspelt event or property name does not fail: the
campaign silently never fires or never matches. Against a sample of real events
(:mod:`engine.campaigns.sample`), ``followup validate`` warns on:

- an event name (``trigger``, ``exit``, ``goal``, ``wait: {for: ...}``) that no event in the
  sample has, with the closest name that it has;
- ``event.properties.X`` (in a condition, a subject, a webhook body or a template) when no event
  that ``event`` can be there has property X. ``event`` is the trigger event; in ``goal.value``
  the goal event; in the ``then`` steps of a ``wait: {for: EVENT}`` that event or the trigger;
  in a template, the ``event`` of each ``send: email`` that uses it (or a template including
  it). Event names absent from the sample are left to the first rule, and where ``event`` is no
  event (a schedule or segment trigger) nothing is said;
- ``customer.traits.X`` when no event in the sample sets trait X and no ``update`` step of the
  campaigns writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.campaigns.expressions import (
    NamePath,
    did_you_mean,
    expression_paths,
    template_paths,
    template_references,
)
from engine.campaigns.loader import LoadedCampaign, Loc, Problem
from engine.campaigns.sample import SampleData, trait_key
from engine.campaigns.schema import (
    CallSend,
    EmailSend,
    EventTrigger,
    IfStep,
    SegmentTrigger,
    UpdateStep,
    WaitForEvent,
    WaitStep,
    WebhookSend,
    walk_steps,
)

Events = frozenset[str]  # the names of the events ``event`` can be at some place
EVENT_NAME_CUTOFF = 0.8  # how alike (difflib ratio) a sample's event name must be to suggest it


@dataclass(frozen=True, slots=True)
class _Text:
    """A condition or template string of a campaign: where it is, and what ``event`` is there."""

    loc: Loc
    source: str
    events: Events
    template: bool = False


@dataclass(frozen=True, slots=True)
class TemplateFile:
    """A template's text, its ``name`` in the templates folder (as ``send: email`` names it)
    and its path as messages show it."""

    name: str
    shown: str
    text: str


def name_warnings(
    campaigns: Iterable[LoadedCampaign],
    sample: SampleData,
    templates: Iterable[TemplateFile] = (),
) -> list[Problem]:
    """The warnings on the names that ``campaigns`` and ``templates`` read and ``sample``
    never sets, sorted."""
    campaigns = list(campaigns)
    traits = set(sample.traits)
    for loaded in campaigns:
        traits |= updated_traits(loaded)
    checker = _Checker(sample, frozenset(traits))
    found: list[Problem] = []
    uses: dict[str, set[str]] = {}
    for loaded in campaigns:
        found += checker.campaign(loaded)
        for name, events in template_uses(loaded).items():
            uses.setdefault(name, set()).update(events)
    found += checker.templates(list(templates), uses)
    return sorted(set(found))


def updated_traits(loaded: LoadedCampaign) -> set[str]:
    """The traits the campaign's ``update`` steps write."""
    return {
        trait_key(key)
        for _, _, step in walk_steps(loaded.campaign.steps)
        if isinstance(step, UpdateStep)
        for key in step.update.traits
    }


def event_names(loaded: LoadedCampaign) -> list[tuple[Loc, str]]:
    """Every event name the campaign waits for, with where it is written: trigger, exits,
    goal, and ``wait: {for: ...}`` steps."""
    campaign = loaded.campaign
    names: list[tuple[Loc, str]] = []
    if isinstance(campaign.trigger, EventTrigger):
        names.append((("trigger", "event"), campaign.trigger.event))
    names += [(("exit", index, "event"), rule.event) for index, rule in enumerate(campaign.exit)]
    if campaign.goal is not None:
        names.append((("goal", "event"), campaign.goal.event))
    for _, loc, step in walk_steps(campaign.steps):
        if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            names.append(((*loc, "wait", "for"), step.wait.event))
    return names


def _trigger_events(loaded: LoadedCampaign) -> Events:
    trigger = loaded.campaign.trigger
    return frozenset([trigger.event]) if isinstance(trigger, EventTrigger) else frozenset()


def _step_events(loaded: LoadedCampaign) -> dict[Loc, Events]:
    """What ``event`` can be at each step: the trigger, and the event of every
    ``wait: {for: ...}`` whose ``then`` the step is in."""
    steps = {loc: step for _, loc, step in walk_steps(loaded.campaign.steps)}
    trigger = _trigger_events(loaded)
    result: dict[Loc, Events] = {}
    for loc in steps:
        events = set(trigger)
        for index, part in enumerate(loc):
            wait = steps.get(loc[:index]) if part == "then" else None
            if isinstance(wait, WaitStep) and isinstance(wait.wait, WaitForEvent):
                events.add(wait.wait.event)
        result[loc] = frozenset(events)
    return result


def _texts(loaded: LoadedCampaign) -> list[_Text]:
    """Every condition and template string of the campaign."""
    campaign = loaded.campaign
    trigger = _trigger_events(loaded)
    texts: list[_Text] = []
    if isinstance(campaign.trigger, EventTrigger) and campaign.trigger.where is not None:
        texts.append(_Text(("trigger", "where"), campaign.trigger.where.source, trigger))
    elif isinstance(campaign.trigger, SegmentTrigger):
        texts.append(_Text(("trigger", "segment"), campaign.trigger.segment.source, trigger))
    if campaign.audience is not None:
        texts.append(_Text(("audience",), campaign.audience.source, trigger))
    if campaign.goal is not None and campaign.goal.value is not None:
        goal = frozenset([campaign.goal.event])
        texts.append(_Text(("goal", "value"), campaign.goal.value.source, goal))
    events_at = _step_events(loaded)
    for _, loc, step in walk_steps(campaign.steps):
        events = events_at[loc]
        if isinstance(step, EmailSend):
            texts.append(_Text((*loc, "subject"), step.subject, events, template=True))
        elif isinstance(step, WebhookSend):
            texts.append(_Text((*loc, "body"), step.body, events, template=True))
        elif isinstance(step, CallSend) and step.script is not None:
            texts.append(_Text((*loc, "script"), step.script, events, template=True))
        elif isinstance(step, UpdateStep):
            for key, value in step.update.traits.items():
                texts.append(_Text((*loc, "update", "traits", key), value.source, events))
        elif isinstance(step, IfStep):
            texts.append(_Text((*loc, "if"), step.if_.source, events))
    return texts


def template_uses(loaded: LoadedCampaign) -> dict[str, Events]:
    """The templates the campaign sends, each with what ``event`` can be when it renders."""
    events_at = _step_events(loaded)
    uses: dict[str, set[str]] = {}
    for _, loc, step in walk_steps(loaded.campaign.steps):
        if isinstance(step, EmailSend):
            uses.setdefault(step.template, set()).update(events_at[loc])
    return {name: frozenset(events) for name, events in uses.items()}


class _Checker:
    """The three rules, against one sample and the traits anything sets."""

    def __init__(self, sample: SampleData, traits: frozenset[str]) -> None:
        self.sample = sample
        self.traits = traits

    def campaign(self, loaded: LoadedCampaign) -> list[Problem]:
        """Warnings on the event names, conditions and template strings of a campaign."""
        source = loaded.source
        found = []
        for loc, name in event_names(loaded):
            message = self.event_name(name)
            if message:
                found.append(source.problem(loc, message).as_warning())
        for text in _texts(loaded):
            paths = template_paths(text.source) if text.template else expression_paths(text.source)
            for path in paths:
                message = self.path(path, text.events)
                if message:
                    found.append(source.problem(text.loc, message).as_warning())
        return found

    def templates(
        self, templates: list[TemplateFile], uses: Mapping[str, Iterable[str]]
    ) -> list[Problem]:
        """Warnings on template files, where ``event`` is what it is in every send of them and
        of the templates that include them."""
        events = {template.name: set(uses.get(template.name, ())) for template in templates}
        changed = True
        while changed:  # an included template renders with its includer's event
            changed = False
            for template in templates:
                for reference in template_references(template.text):
                    mine = events[template.name]
                    if reference in events and not mine <= events[reference]:
                        events[reference] |= mine
                        changed = True
        found = []
        for template in templates:
            for path in template_paths(template.text):
                message = self.path(path, frozenset(events[template.name]))
                if message:
                    found.append(Problem(template.shown, path.line, 1, message, "warning"))
        return found

    def event_name(self, name: str) -> str:
        if name in self.sample.event_names:
            return ""
        # a typo, not another event ("Order Refunded" is no "Order Completed"), and never
        # "Unsubscribed: did you mean Subscribed?": close in spelling, opposite in meaning
        choices = [other for other in self.sample.event_names if not _opposites(name, other)]
        hint = did_you_mean(name, choices, cutoff=EVENT_NAME_CUTOFF)
        return f"no event named {name!r} in {self.sample.source}{hint}"

    def path(self, path: NamePath, events: Events) -> str:
        parts = path.parts
        if len(parts) < 3:
            return ""
        if parts[:2] == ("event", "properties"):
            return self.property(parts[2], events)
        if parts[:2] == ("customer", "traits"):
            return self.trait(parts[2])
        return ""

    def property(self, key: str, events: Events) -> str:
        seen = sorted(name for name in events if name in self.sample.properties)
        if not seen:  # an event the sample lacks is warned on by name; no event: nothing
            return ""
        known = set().union(*(self.sample.properties[name] for name in seen))
        if key in known:
            return ""
        which = " or ".join(repr(name) for name in seen)
        hint = did_you_mean(key, known, prefix="event.properties.")
        return (
            f"event.properties.{key}: no {which} event in {self.sample.source} "
            f"has this property{hint}"
        )

    def trait(self, key: str) -> str:
        if key in self.traits or trait_key(key) in self.traits:  # as sent or as kept
            return ""
        hint = did_you_mean(key, self.traits, prefix="customer.traits.")
        return (
            f"customer.traits.{key}: no event in {self.sample.source} sets this trait, "
            f"nor does an update step{hint}"
        )


def _opposites(one: str, other: str) -> bool:
    """``Subscribed`` and ``Unsubscribed``."""
    one, other = one.lower(), other.lower()
    return one == "un" + other or other == "un" + one
