"""A project's report: its campaigns (the files' and the built-in ones), its ``reports:``
settings, and the report of its database, for ``followup report`` and the dashboard."""

from __future__ import annotations

from typing import Any

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.campaigns.schema import Campaign
from engine.config import Project
from engine.double_opt_in import with_confirmation
from engine.durable.sql_report import database_report
from engine.reports.attribution import Model
from engine.reports.html import Timeline
from engine.reports.journey_counts import ALL_TIME, Period
from engine.reports.settings import ReportSettings, report_settings


def project_campaigns(project: Project) -> dict[str, Campaign]:
    """The campaigns of the project's files (those that load) and the built-in ones, by id."""
    loaded = load_campaigns([project.path(project.config.campaigns)])
    files = [item.campaign for item in loaded.campaigns.values()]
    return {c.id: c for c in with_confirmation(files, project.config.policies)}


def project_settings(project: Project, model: Model | None = None) -> ReportSettings:
    """``reports:`` of the project (``pydantic.ValidationError`` when invalid), with ``model``
    over its model."""
    settings = report_settings(project.config.reports)
    return settings.model_copy(update={"model": model}) if model is not None else settings


def project_report(
    followup: Followup,
    period: Period = ALL_TIME,
    model: Model | None = None,
    only: str | None = None,
    campaigns: dict[str, Campaign] | None = None,
) -> tuple[dict[str, Any], Timeline]:
    """The report of ``followup``'s database over ``period`` (see :func:`database_report`)."""
    project = followup.project
    settings = project_settings(project, model)
    found = campaigns if campaigns is not None else project_campaigns(project)
    with followup.engine.connect() as conn:
        return database_report(conn, found, settings, period, only)
