"""``followup validate``: every campaign, template and the config, as ``path:line:column`` problems.

Checked beyond the schema: templates named by ``send: email`` exist in the config's ``templates``
folder, every template there parses in the sandbox (and the templates it includes exist), each
channel a campaign sends on has a provider, and ``policies`` and ``providers`` in ``followup.yaml``
have the documented shape. Each provider checks its own settings as it would when built, without
connecting anywhere; an environment variable it names but that is not set here is a warning (CI
validates without secrets). A campaign a provider sends as one content to a whole list (Mailchimp
``newsletters:``) must not personalise its subject or template. Nothing here raises: a missing path or an unreadable config is a
problem.

Given sample data (a JSONL file of events, or the project database), the names campaigns and
templates read are checked against it too (:mod:`engine.campaigns.name_warnings`), and with a
JSONL file each email's subject and body are rendered on the profiles it makes
(:mod:`engine.journeys.render_sample`): those are warnings, which leave a project valid.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.campaigns.expressions import check_template, template_references
from engine.campaigns.list_content import check_list_content
from engine.campaigns.loader import (
    CampaignSet,
    LoadedCampaign,
    Loc,
    Problem,
    SourceMap,
    display_path,
    load_campaigns,
    not_utf8,
    raw_email_templates,
    raw_send_fields,
    read_yaml,
    validate_document,
)
from engine.campaigns.name_warnings import TemplateFile, name_warnings
from engine.campaigns.sample import SampleData, read_database_sample, read_events_sample
from engine.campaigns.schema import (
    CHANNELS,
    AnySend,
    EmailSend,
    StrictModel,
    WebhookSend,
    walk_steps,
)
from engine.channels import ProviderContext
from engine.config import Project, ProjectConfig
from engine.errors import SettingProblem
from engine.policies import Policies
from engine.project_files import CONFIG_FILE
from engine.providers import (
    DEFAULTS,
    check_provider_settings,
    hint,
    list_content_campaigns,
    provider_names,
)
from engine.rates import parse_rate

TEMPLATE_SUFFIXES = (".html", ".htm", ".txt", ".text", ".md", ".mjml", ".j2", ".jinja", ".jinja2")


class ProviderSetting(BaseModel):
    """One channel's entry under ``providers:``: a provider name and its own settings."""

    model_config = ConfigDict(frozen=True, extra="allow")
    provider: str = Field(min_length=1)
    rate: str | None = Field(
        default=None, description="calls per second, minute or hour, shared by every process"
    )

    @field_validator("rate")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value


class Providers(StrictModel):
    """``providers:`` in ``followup.yaml``: which provider carries each channel."""

    what = "providers"
    email: ProviderSetting | None = None
    ads: ProviderSetting | None = None
    call: ProviderSetting | None = None
    webhook: ProviderSetting | None = None


@dataclass(frozen=True)
class ValidationReport:
    """What ``followup validate`` found; valid when ``problems`` is empty, whatever the
    ``warnings`` (names the sample data never sets, see :func:`validate_project`) and the
    ``unset`` (environment variables the providers name that are not set here: CI has no
    secrets, so ``--strict`` leaves these alone)."""

    problems: tuple[Problem, ...]
    campaigns: int
    templates: int
    config: str | None
    warnings: tuple[Problem, ...] = ()
    unset: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether everything is valid."""
        return not self.problems

    @property
    def findings(self) -> tuple[Problem, ...]:
        """Problems and warnings, in the order of their files and places."""
        return tuple(sorted(self.problems + self.warnings + self.unset))


def validate_project(
    paths: Sequence[Path] | None = None,
    config_path: Path | None = None,
    events: Path | None = None,
    sample_database: bool = False,
) -> ValidationReport:
    """Validate the config (``config_path`` or ``./followup.yaml``, if any), the campaigns in
    ``paths`` (default: the config's ``campaigns`` folder) and the config's templates.

    With sample data, warn on the names no event or trait in it sets: ``events`` is a JSONL
    file of Segment messages; without one and with ``sample_database``, the project database
    is the sample if it exists. Without either, there are no such warnings."""
    project, channels, config_findings = load_config(config_path, check_providers=True)
    problems = [finding for finding in config_findings if finding.severity == "error"]
    unset = [finding for finding in config_findings if finding.severity == "warning"]
    shown_config = display_path(config_path) if config_path else _default_config_shown()
    targets = list(paths or [project.path(project.config.campaigns)])
    if not paths and not targets[0].is_dir():
        where = display_path(targets.pop())
        problems.append(
            Problem(where, 1, 1, "no such folder; create it or set campaigns: in followup.yaml")
        )
    loaded = load_campaigns(targets)
    problems += loaded.problems
    templates = project.path(project.config.templates)
    webhook_urls = configured_webhook_urls(project.config.providers)
    for campaign in loaded.campaigns.values():
        problems += check_sends(campaign, templates, channels, webhook_urls)
    problems += check_unloaded_templates(loaded, templates)
    problems += check_unloaded_webhook_urls(loaded, webhook_urls)
    template_files, template_problems, template_count = read_templates(templates)
    problems += template_problems
    to_lists = list_content_campaigns(project.config.providers)
    by_name = {template.name: template for template in template_files}
    for campaign in loaded.campaigns.values():
        if campaign.campaign.campaign in to_lists:
            setting = to_lists[campaign.campaign.campaign]
            problems += check_list_content(campaign, setting, by_name)
    problems += check_template_files(template_files, _template_names(templates))
    # here: engine.double_opt_in builds on this package, which imports this module
    from engine.campaigns.double_opt_in_checks import double_opt_in_findings

    shown = config_path or (Path.cwd() / CONFIG_FILE if shown_config else None)
    opt_in = double_opt_in_findings(
        shown, project.config.policies, loaded.campaigns.values(), templates
    )
    problems += [finding for finding in opt_in if finding.severity == "error"]
    sample, sample_findings = _sample(project, events, sample_database)
    problems += [finding for finding in sample_findings if finding.severity == "error"]
    warnings = [finding for finding in sample_findings if finding.severity == "warning"]
    warnings += [finding for finding in opt_in if finding.severity == "warning"]
    if sample is not None:
        warnings += name_warnings(loaded.campaigns.values(), sample, template_files)
    if sample is not None and events is not None:
        from engine.journeys.render_sample import render_warnings  # folds profiles: when asked

        warnings += render_warnings(
            loaded.campaigns.values(), events, templates, project.config.phone_region
        )
    return ValidationReport(
        tuple(sorted(set(problems))),
        len(loaded.campaigns),
        template_count,
        shown_config,
        tuple(sorted(set(warnings))),
        tuple(sorted(set(unset))),
    )


def _sample(
    project: Project, events: Path | None, database: bool
) -> tuple[SampleData | None, list[Problem]]:
    if events is not None:
        return read_events_sample(events, project.config.phone_region)
    if database:
        return read_database_sample(project.database_url), []
    return None, []


def _default_config_shown() -> str | None:
    return CONFIG_FILE if (Path.cwd() / CONFIG_FILE).exists() else None


def load_config(
    config_path: Path | None, check_providers: bool = False
) -> tuple[Project, frozenset[str] | None, list[Problem]]:
    """The project (defaults where the config is invalid), the channels that have a provider
    (``None`` when unknown because ``providers`` is invalid), and the config's problems. With
    ``check_providers``, each provider's settings are checked too (without building it), and
    the environment variables they name but are not set here are warnings among the problems."""
    if config_path is None:
        candidate = Path.cwd() / CONFIG_FILE
        if not candidate.exists():
            return Project(ProjectConfig(), Path.cwd()), frozenset(CHANNELS), []
        config_path = candidate
    root = config_path.resolve().parent
    data, source, problems = read_yaml(config_path)
    if data is None:
        if problems and problems[0].message == "no such file":
            problems = [Problem(problems[0].path, 1, 1, "no such config file")]
        return Project(ProjectConfig(), root), None, problems
    if not isinstance(data, dict):
        problems.append(source.problem((), "the config must be a mapping of settings"))
        return Project(ProjectConfig(), root), None, problems
    allowed = list(ProjectConfig.model_fields)
    for key in [key for key in data if key not in allowed]:
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(allowed)}"
        problems.append(source.problem((key,), f"unknown setting {key!r}; {hint}", at_key=True))
        del data[key]
    config, invalid = validate_document(ProjectConfig, data, source)
    problems += invalid
    if config is None:
        fallback = {k: v for k, v in data.items() if k in ("campaigns", "templates")}
        fallback = {k: v for k, v in fallback.items() if isinstance(v, str)}
        config = ProjectConfig.model_validate(fallback)
    problems += _check_policies(data.get("policies"), source)
    problems += _check_reports(data.get("reports"), source)
    channels, provider_problems = _provider_channels(data.get("providers"), source)
    project = Project(config, root)
    if check_providers and channels is not None and not provider_problems:
        provider_problems = _provider_settings(data.get("providers"), source, project)
    return project, channels, problems + provider_problems


def _check_policies(data: Any, source: SourceMap) -> list[Problem]:
    if not isinstance(data, dict):  # absent, or already reported by ProjectConfig
        return []
    return validate_document(Policies, data, source, ("policies",))[1]


def _check_reports(data: Any, source: SourceMap) -> list[Problem]:
    if not isinstance(data, dict):  # absent, or already reported by ProjectConfig
        return []
    from engine.reports.settings import ReportSettings  # see validate_project

    return validate_document(ReportSettings, data, source, ("reports",))[1]


def _provider_channels(data: Any, source: SourceMap) -> tuple[frozenset[str] | None, list[Problem]]:
    if not data:  # no providers: the embedded defaults carry every channel
        return frozenset(DEFAULTS), []
    if not isinstance(data, dict):  # already reported by ProjectConfig
        return None, []
    providers, problems = validate_document(Providers, data, source, ("providers",))
    if providers is None:
        return None, problems
    installed = provider_names()
    for channel in CHANNELS:
        setting = getattr(providers, channel)
        if setting is not None and setting.provider not in installed:
            problems.append(
                source.problem(
                    ("providers", channel, "provider"),
                    f"unknown {channel} provider {setting.provider!r}"
                    f"{hint(setting.provider, installed)}",
                )
            )
    # a channel left out gets its default provider, as run and tick do (engine.providers)
    return frozenset(
        c
        for c in CHANNELS
        if getattr(providers, c) is not None or DEFAULTS[c]["provider"] in installed
    ), problems


def _provider_settings(data: Any, source: SourceMap, project: Project) -> list[Problem]:
    """Each configured provider's own check of its settings, at their places in the file."""
    if not isinstance(data, dict):
        return []
    found: list[Problem] = []
    for channel, settings in data.items():
        context = ProviderContext(
            channel=str(channel),
            root=project.root,
            environ=os.environ,
            database_url=project.database_url,
            unsubscribe_base=project.config.server.base_url,
        )
        found += [
            _at_setting(problem, source, ("providers", channel))
            for problem in check_provider_settings(settings, context) or []
        ]
    if any(problem.severity == "error" for problem in found):
        return found  # the settings first
    return found + _unsubscribe_base(data.get("email"), source, project)


def _unsubscribe_base(email: Any, source: SourceMap, project: Project) -> list[Problem]:
    """A warning when emails that leave the machine (any provider but the file outbox) would
    carry unsubscribe links customers cannot reach (no ``server.public_url``: the local
    address) or cannot unsubscribe from in one click (not https: no List-Unsubscribe-Post,
    RFC 8058). A warning, as an unset secret is: a development config may leave it out."""
    kind = email.get("provider") if isinstance(email, dict) else None
    if not isinstance(kind, str) or kind == "outbox":
        return []
    server = project.config.server
    at = ("providers", "email", "provider")
    if server.public_url is None:
        message = (
            f"emails sent by {kind} carry unsubscribe links to {server.base_url}/unsubscribe/…,"
            " which customers cannot reach; set server.public_url to the https address where"
            " followup serve answers"
        )
    elif not server.base_url.startswith("https://"):
        message = (
            f"server.public_url {server.public_url} is not https: emails get no one-click"
            " unsubscribe (List-Unsubscribe-Post, RFC 8058), which Gmail and Yahoo require of"
            " bulk senders"
        )
    else:
        return []
    return [source.problem(at, message).as_warning()]


def _at_setting(problem: SettingProblem, source: SourceMap, at: tuple[str, ...]) -> Problem:
    message = problem.shown(".".join(at))  # names the setting in full, as run and tick do
    found = source.problem((*at, *problem.loc), message, at_key=problem.at_key)
    return found.as_warning() if problem.warning else found


def configured_webhook_urls(providers: Mapping[str, Any]) -> frozenset[str] | None:
    """The url names under ``providers.webhook.urls``, or ``None`` when none are configured
    (then every webhook delivery fails until some are, as docs/channels.md says)."""
    webhook = providers.get("webhook")
    urls = webhook.get("urls") if isinstance(webhook, Mapping) else None
    return frozenset(str(name) for name in urls) if isinstance(urls, Mapping) and urls else None


def check_sends(
    loaded: LoadedCampaign,
    templates: Path,
    channels: frozenset[str] | None,
    webhook_urls: frozenset[str] | None = None,
) -> list[Problem]:
    """Each send of a campaign has a provider for its channel; for email, its template; for a
    webhook, its url among the configured ones (when there are any)."""
    problems = []
    for _, loc, step in walk_steps(loaded.campaign.steps):
        if not isinstance(step, AnySend):
            continue
        channel = step.send
        if channels is not None and channel not in channels:
            problems.append(
                loaded.source.problem(
                    (*loc, "send"),
                    f"no provider carries {channel}; add it under providers: in followup.yaml, "
                    f"e.g. {channel}: {_provider_example(channel)}",
                )
            )
    missing = [problem for _name, problem in missing_templates(loaded, templates)]
    return problems + missing + check_webhook_urls(loaded, webhook_urls)


def missing_templates(loaded: LoadedCampaign, templates: Path) -> list[tuple[str, Problem]]:
    """Each email step of the campaign whose template is not in ``templates``: the name, and
    the problem at the step's ``template`` key (with the closest name there is)."""
    available = _template_names(templates)
    return [
        (
            step.template,
            _template_missing(
                loaded.source, (*loc, "template"), step.template, templates, available
            ),
        )
        for _, loc, step in walk_steps(loaded.campaign.steps)
        if isinstance(step, EmailSend) and step.template not in available
    ]


def check_unloaded_templates(campaigns: CampaignSet, templates: Path) -> list[Problem]:
    """The email templates missing for the campaigns that did not load, as :func:`check_sends`
    finds them for those that did: one run of validate lists every problem of a file."""
    available = _template_names(templates)
    return [
        _template_missing(source, loc, name, templates, available)
        for data, source in campaigns.unloaded
        for loc, name in raw_email_templates(data)
        if name not in available
    ]


def _template_missing(
    source: SourceMap, loc: Loc, name: str, templates: Path, available: set[str]
) -> Problem:
    """The problem of an email step naming ``name``, not among the ``available`` templates."""
    close = difflib.get_close_matches(name, sorted(available), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return source.problem(loc, f"template {name!r} not found in {display_path(templates)}/{hint}")


def check_webhook_urls(
    loaded: LoadedCampaign, webhook_urls: frozenset[str] | None
) -> list[Problem]:
    """Each webhook send of a campaign names one of the configured urls (when there are any:
    ``simulate`` checks this too, since the plan would show the send as sent)."""
    return [
        _url_unknown(loaded.source, (*loc, "url"), step.url, webhook_urls)
        for _, loc, step in walk_steps(loaded.campaign.steps)
        if isinstance(step, WebhookSend) and webhook_urls and step.url not in webhook_urls
    ]


def check_unloaded_webhook_urls(
    campaigns: CampaignSet, webhook_urls: frozenset[str] | None
) -> list[Problem]:
    """The webhook urls named by the campaigns that did not load and not configured, as
    :func:`check_webhook_urls` finds them for those that did."""
    if not webhook_urls:
        return []
    return [
        _url_unknown(source, loc, url, webhook_urls)
        for data, source in campaigns.unloaded
        for loc, url in raw_send_fields(data, "webhook", "url")
        if url not in webhook_urls
    ]


def _url_unknown(source: SourceMap, loc: Loc, url: str, webhook_urls: frozenset[str]) -> Problem:
    """The problem of a webhook step naming ``url``, not among the configured ones."""
    close = difflib.get_close_matches(url, sorted(webhook_urls), n=1)
    hint = (
        f"did you mean {close[0]}?"
        if close
        else f"expected one of {', '.join(sorted(webhook_urls))}"
    )
    return source.problem(
        loc, f"no url named {url!r} under providers.webhook.urls in followup.yaml; {hint}"
    )


def _provider_example(channel: str) -> str:
    items = ", ".join(f"{k}: {v}" for k, v in DEFAULTS[channel].items())
    return "{" + items + "}"


def _template_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        file
        for file in folder.rglob("*")
        if file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(folder).parts)
    )


def _template_names(folder: Path) -> set[str]:
    return {file.relative_to(folder).as_posix() for file in _template_files(folder)}


def check_templates(folder: Path) -> tuple[list[Problem], int]:
    """Every template in ``folder`` parses in the sandbox and names only known fields and
    existing templates; with the number of templates checked."""
    templates, problems, count = read_templates(folder)
    return problems + check_template_files(templates, _template_names(folder)), count


def read_templates(folder: Path) -> tuple[list[TemplateFile], list[Problem], int]:
    """The templates in ``folder`` (files with a template suffix), a problem for each that
    cannot be read, and how many there are."""
    templates: list[TemplateFile] = []
    problems: list[Problem] = []
    files = [file for file in _template_files(folder) if file.suffix in TEMPLATE_SUFFIXES]
    for file in files:
        shown = display_path(file)
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(not_utf8(shown, exc))
            continue
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problems.append(Problem(shown, 1, 1, f"cannot read the template: {reason}"))
            continue
        templates.append(TemplateFile(file.relative_to(folder).as_posix(), shown, text))
    return templates, problems, len(files)


def check_template_files(templates: Sequence[TemplateFile], names: set[str]) -> list[Problem]:
    """Each template parses in the sandbox and names only known fields, and the templates it
    includes are among ``names`` (every file of the folder)."""
    problems: list[Problem] = []
    for template in templates:
        shown, text = template.shown, template.text
        problems += [
            Problem(shown, p.line, 1, p.message) for p in check_template(text, template.name)
        ]
        for reference in template_references(text):
            if reference not in names:
                line = next(
                    (n for n, row in enumerate(text.splitlines(), 1) if reference in row), 1
                )
                problems.append(
                    Problem(shown, line, 1, f"template {reference!r} not found in the folder")
                )
    return problems
