"""Campaigns whose email goes to a whole list as one content (a Mailchimp regular campaign for
``newsletters:``; see :class:`engine.channels.ListContentFactory`): their subject and template,
with the templates it includes, must read nothing of the customer or the event, because every
member gets the content rendered for the first one."""

from __future__ import annotations

from collections.abc import Mapping

from engine.campaigns.expressions import NamePath, template_paths, template_references
from engine.campaigns.loader import LoadedCampaign, Problem
from engine.campaigns.name_warnings import TemplateFile
from engine.campaigns.schema import EmailSend, walk_steps

EXAMPLE = "newsletter_list.html"


def check_list_content(
    loaded: LoadedCampaign, setting: str, templates: Mapping[str, TemplateFile]
) -> list[Problem]:
    """A problem at each email of ``loaded`` whose subject or template personalises, though
    ``setting`` (``providers.email``) sends the campaign as one content to the whole list."""
    problems: list[Problem] = []
    campaign = loaded.campaign.campaign
    because = (
        f"but {setting} in followup.yaml sends {campaign} as one email to the whole list "
        "(newsletters:), rendered for its first member"
    )
    for _, loc, step in walk_steps(loaded.campaign.steps):
        if not isinstance(step, EmailSend):
            continue
        subject = template_paths(step.subject)
        if subject:
            problems.append(
                loaded.source.problem(
                    (*loc, "subject"),
                    f"the subject reads {subject[0]}, {because}; write one for everyone",
                )
            )
        found = _personal(step.template, templates, set())
        if found is not None:
            name, path = found
            where = f"{name} reads {path} (line {path.line})"
            problems.append(
                loaded.source.problem(
                    (*loc, "template"),
                    f"{where}, {because}; use a template that reads neither customer nor "
                    f"event, like {EXAMPLE}",
                )
            )
    return problems


def _personal(
    name: str, templates: Mapping[str, TemplateFile], seen: set[str]
) -> tuple[str, NamePath] | None:
    """The first customer or event path ``name`` or a template it includes reads, with the
    template that reads it; ``None`` when none does (or the template is missing: reported
    elsewhere)."""
    template = templates.get(name)
    if template is None or name in seen:
        return None
    seen.add(name)
    paths = template_paths(template.text)
    if paths:
        return name, paths[0]
    for included in template_references(template.text):
        found = _personal(included, templates, seen)
        if found is not None:
            return found
    return None
