"""The report of REPORTS.md as one JSON object, from what was counted of the journeys
(:mod:`engine.reports.journey_counts`) and credited of the orders (:mod:`engine.reports.credit`),
with the campaign definitions for what the decisions cannot say: whether a campaign has a
holdout, its channel steps and the variants of its splits, in their order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from engine.campaigns.schema import (
    AdsSend,
    CallSend,
    Campaign,
    EmailSend,
    SplitStep,
    WebhookSend,
    walk_steps,
)
from engine.journeys.plan import format_time
from engine.reports.credit import Attributed, Figures
from engine.reports.html import Timeline
from engine.reports.journey_counts import CampaignCounts, Group, Period, StepCounts
from engine.reports.settings import ReportSettings
from engine.reports.stats import newcombe, rate, wilson


def build_report(
    counts: Mapping[str, CampaignCounts],
    attributed: Attributed,
    campaigns: Mapping[str, Campaign],
    settings: ReportSettings,
    period: Period,
    only: str | None = None,
) -> dict[str, Any]:
    """The JSON report; with ``only``, the campaigns list holds that campaign alone."""
    ids = set(campaigns) | set(counts) | set(attributed.touches)
    if only is not None:
        ids = {only}
    return {
        "period": {
            "since": format_time(period.since) if period.since else None,
            "until": format_time(period.until) if period.until else None,
        },
        "model": settings.model.value,
        "orders": {
            **_figures(attributed.orders),
            "by_source": {
                source: _figures(figures)
                for source, figures in sorted(attributed.by_source.items())
            },
        },
        "channels": {
            channel: {
                "touches": figures.count,
                "attributed_count": figures.attributed_count,
                "attributed_revenue": figures.attributed_revenue,
            }
            for channel, figures in sorted(attributed.channels.items())
        },
        "campaigns": [
            _campaign(cid, counts.get(cid, CampaignCounts()), attributed, campaigns.get(cid))
            for cid in sorted(ids)
        ],
    }


def _figures(figures: Figures) -> dict[str, Any]:
    return {
        "count": figures.count,
        "revenue": figures.revenue,
        "attributed_count": figures.attributed_count,
        "attributed_revenue": figures.attributed_revenue,
    }


def _campaign(
    cid: str, counts: CampaignCounts, attributed: Attributed, campaign: Campaign | None
) -> dict[str, Any]:
    treatment, control = counts.treatment, counts.control
    steps = _steps(counts, campaign)
    skipped: dict[str, int] = {}
    for step in steps.values():
        for reason, number in step.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + number
    credited = attributed.campaigns.get(cid, Figures())
    return {
        "campaign": cid,
        "journeys": treatment.journeys + control.journeys,
        "held_out": control.journeys,
        "touches": dict(sorted(attributed.touches.get(cid, {}).items())),
        "skipped": dict(sorted(skipped.items())),
        "exited": treatment.exited + control.exited,
        "converted": treatment.converted + control.converted,
        "conversion_value": treatment.revenue + control.revenue,
        "attributed_count": credited.attributed_count,
        "attributed_revenue": credited.attributed_revenue,
        "holdout": _holdout(treatment, control) if _has_holdout(campaign, control) else None,
        "variants": _variants(counts, campaign),
        "steps": [
            {
                "step": path,
                "reached": step.reached,
                "sent": step.sent,
                "skipped": dict(sorted(step.skipped.items())),
                "exited": step.exited,
            }
            for path, step in steps.items()
        ],
    }


def _has_holdout(campaign: Campaign | None, control: Group) -> bool:
    return campaign.holdout > 0 if campaign is not None else control.journeys > 0


def _group(group: Group) -> dict[str, Any]:
    return {
        "journeys": group.journeys,
        "converted": group.converted,
        "rate": rate(group.converted, group.journeys),
        "revenue": group.revenue,
    }


def _holdout(treatment: Group, control: Group) -> dict[str, Any]:
    rate_t = rate(treatment.converted, treatment.journeys)
    rate_c = rate(control.converted, control.journeys)
    absolute = rate_t - rate_c
    low, high = newcombe(
        treatment.converted, treatment.journeys, control.converted, control.journeys
    )
    per_t = treatment.revenue / treatment.journeys if treatment.journeys else 0.0
    per_c = control.revenue / control.journeys if control.journeys else 0.0
    return {
        "treatment": _group(treatment),
        "control": _group(control),
        "lift": {
            "absolute": absolute,
            "relative": absolute / rate_c if rate_c else None,
            "ci95": [low, high],
            "significant": bool(treatment.journeys and control.journeys) and (low > 0 or high < 0),
        },
        "incremental": {
            "conversions": absolute * treatment.journeys,
            "revenue": (per_t - per_c) * treatment.journeys,
        },
    }


def _steps(counts: CampaignCounts, campaign: Campaign | None) -> dict[str, StepCounts]:
    """The funnel rows: the campaign's channel steps in their order (those no journey reached
    too), then any other step the decisions name."""
    order: list[str] = []
    if campaign is not None:
        order = [
            path
            for path, _loc, step in walk_steps(campaign.steps)
            if isinstance(step, EmailSend | AdsSend | CallSend | WebhookSend)
        ]
    order += sorted(path for path in counts.steps if path not in order)
    return {path: counts.steps.get(path, StepCounts()) for path in order}


def _variants(counts: CampaignCounts, campaign: Campaign | None) -> dict[str, list[Any]]:
    names: dict[str, list[str]] = {}
    if campaign is not None:
        for path, _loc, step in walk_steps(campaign.steps):
            if isinstance(step, SplitStep):
                names[path] = [variant.name for variant in step.split]
    for path, variants in counts.variants.items():
        known = names.setdefault(path, [])
        known += sorted(name for name in variants if name not in known)
    found: dict[str, list[Any]] = {}
    for path in sorted(names):
        rows = []
        for name in names[path]:
            taken = counts.variants.get(path, {}).get(name)
            journeys = taken.journeys if taken else 0
            converted = taken.converted if taken else 0
            revenue = taken.revenue if taken else 0.0
            low, high = wilson(converted, journeys)
            rows.append(
                {
                    "variant": name,
                    "journeys": journeys,
                    "converted": converted,
                    "rate": rate(converted, journeys),
                    "ci95": [low, high],
                    "revenue_per_journey": revenue / journeys if journeys else 0.0,
                }
            )
        found[path] = rows
    return found


DAYS_BY_DAY = 92  # a longer period is shown by week
DAYS_BY_WEEK = 731  # a longer one by month


def timeline(attributed: Attributed) -> Timeline:
    """The figures over time for the charts: per day from the first to the last, or per week
    (from Monday) over a period past three months, or per month past two years."""
    dated = {day for day, _ in attributed.daily_attributed} | {
        day for day, _ in attributed.daily_revenue
    }
    if not dated:
        return Timeline((), {}, {})
    first, last = date.fromisoformat(min(dated)), date.fromisoformat(max(dated))
    span = (last - first).days
    unit = "day" if span <= DAYS_BY_DAY else "week" if span <= DAYS_BY_WEEK else "month"
    labels = _labels(first, last, unit)
    index = {label: n for n, label in enumerate(labels)}
    attributed_by: dict[str, list[float]] = {}
    for (day, channel), value in attributed.daily_attributed.items():
        attributed_by.setdefault(channel, [0.0] * len(labels))[index[_bucket(day, unit)]] += value
    revenue_by: dict[str, list[float]] = {}
    for (day, source), value in attributed.daily_revenue.items():
        revenue_by.setdefault(source, [0.0] * len(labels))[index[_bucket(day, unit)]] += value
    return Timeline(
        days=tuple(labels),
        attributed_by_channel={c: tuple(v) for c, v in sorted(attributed_by.items())},
        revenue_by_source={s: tuple(v) for s, v in sorted(revenue_by.items())},
        unit=unit,
    )


def _bucket(day: str, unit: str) -> str:
    """The label of the ``unit`` an ISO ``day`` falls in."""
    found = date.fromisoformat(day)
    if unit == "week":
        return (found - timedelta(days=found.weekday())).isoformat()
    if unit == "month":
        return found.strftime("%Y-%m")
    return day


def _labels(first: date, last: date, unit: str) -> list[str]:
    """Every ``unit`` label from the one of ``first`` to the one of ``last``."""
    labels: list[str] = []
    day = first
    while day <= last:
        label = _bucket(day.isoformat(), unit)
        if not labels or labels[-1] != label:
            labels.append(label)
        day += timedelta(days=1 if unit == "day" else 7 if unit == "week" else 28)
    end = _bucket(last.isoformat(), unit)
    if labels[-1] != end:
        labels.append(end)
    return labels
