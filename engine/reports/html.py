"""The HTML report: the JSON report of REPORTS.md as one page a marketer reads and prints.

The page is self-contained: inline SVG charts drawn on the server (``charts.py``), an inline
stylesheet, no script and nothing fetched from another host. The template is
``templates/report.html``. Mappings are listed in key order and numbers formatted with fixed
decimals, so the same report and timeline always give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from engine.reports.charts import (
    Series,
    bar_chart,
    count,
    finite,
    interval_chart,
    line_chart,
    money,
    percent,
    points,
    rate_chart,
)


@dataclass(frozen=True)
class Timeline:
    """Figures per period of time (``unit``: day, week or month; UTC; labels are ISO dates,
    a week's Monday, or ``YYYY-MM``; ascending, consecutive) for the charts over time."""

    days: tuple[str, ...]
    attributed_by_channel: Mapping[str, tuple[float, ...]]  # channel -> attributed revenue per day
    revenue_by_source: Mapping[str, tuple[float, ...]]  # order source -> order revenue per day
    unit: str = "day"

    def __post_init__(self) -> None:
        for name, values in [*self.attributed_by_channel.items(), *self.revenue_by_source.items()]:
            if len(values) != len(self.days):
                raise ValueError(
                    f"timeline series {name!r} has {len(values)} values for {len(self.days)} days"
                )


@dataclass(frozen=True)
class _Daily:
    """A line chart over days and the day-by-series table under it."""

    chart: Markup
    names: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float, ...], float], ...]  # day, value per name, total
    unit: str = "day"


@dataclass(frozen=True)
class _Lift:
    holdout: Mapping[str, Any]
    sentence: str
    chart: Markup | None  # None when a group has no journeys


@dataclass(frozen=True)
class _Split:
    step: str
    chart: Markup
    variants: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class CampaignFigures:
    """A campaign of the report with its charts: funnel, lift, variants (the HTML report's
    and the dashboard's)."""

    data: Mapping[str, Any]
    anchor: str
    funnel: Markup
    reasons: tuple[str, ...]  # skip reasons met in any step: the funnel table's columns
    lift: _Lift | None
    splits: tuple[_Split, ...]


def render_html(
    report: Mapping[str, Any], timeline: Timeline, title: str = "followup report"
) -> str:
    """The report (the JSON object of REPORTS.md) as a complete, self-contained HTML5 page."""
    orders = report["orders"]
    return (
        _environment()
        .get_template("report.html")
        .render(
            title=title,
            period=_period(report["period"]),
            model=str(report["model"]).replace("_", " "),
            orders=orders,
            order_share=_ratio(orders["attributed_count"], orders["count"]),
            revenue_share=_ratio(orders["attributed_revenue"], orders["revenue"]),
            by_channel=_daily(
                f"Attributed revenue per {timeline.unit}, by channel",
                timeline.days,
                timeline.attributed_by_channel,
                "attributed revenue",
                unit=timeline.unit,
            ),
            sources=_sorted_items(orders["by_source"]),
            sources_chart=_sources_chart(orders["by_source"]),
            by_source=_daily(
                f"Order revenue per {timeline.unit}, by source",
                timeline.days,
                timeline.revenue_by_source,
                "revenue",
                plot_height=120.0,
                unit=timeline.unit,
            ),
            channels=_sorted_items(report["channels"]),
            campaigns=[campaign_figures(c) for c in report["campaigns"]],
        )
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("engine.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(money=money, count=count, percent=percent, points=points)
    return environment


def _period(period: Mapping[str, Any]) -> str:
    since, until = period.get("since"), period.get("until")
    if since and until:
        return f"from {since} until {until}"
    if since:
        return f"from {since}"
    return f"until {until}" if until else "all time"


def _ratio(part: float, whole: float) -> float:
    return finite(part) / finite(whole) if finite(whole) else 0.0


def _sorted_items(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(mapping.items())


def _path_key(path: str) -> tuple[tuple[int, int, str], ...]:
    """Step paths in tree order: ``2.A.0`` before ``10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("."))


def _daily(
    title: str,
    days: Sequence[str],
    series: Mapping[str, Sequence[float]],
    y_label: str,
    plot_height: float = 180.0,
    unit: str = "day",
) -> _Daily:
    names = tuple(sorted(series))
    lines = [Series(name, tuple(finite(v) for v in series[name])) for name in names]
    per_day = [tuple(line.values[index] for line in lines) for index in range(len(days))]
    rows = tuple((day, values, sum(values)) for day, values in zip(days, per_day, strict=True))
    chart = line_chart(title, days, lines, "money", y_label, plot_height, f"{unit} (UTC)")
    return _Daily(chart, names, rows, unit)


def _sources_chart(by_source: Mapping[str, Mapping[str, float]]) -> Markup:
    names = sorted(by_source)
    return bar_chart(
        "Revenue and attributed revenue by order source",
        names,
        [
            Series("revenue", tuple(finite(by_source[n]["revenue"]) for n in names)),
            Series("attributed", tuple(finite(by_source[n]["attributed_revenue"]) for n in names)),
        ],
        "money",
    )


def campaign_figures(campaign: Mapping[str, Any]) -> CampaignFigures:
    """The charts of one campaign of the report."""
    name = str(campaign["campaign"])
    steps = campaign["steps"]
    funnel = bar_chart(
        f"Funnel of {name}: journeys that reached and were sent each step",
        [f"step {s['step']}" for s in steps],
        [
            Series("reached", tuple(finite(s["reached"]) for s in steps)),
            Series("sent", tuple(finite(s["sent"]) for s in steps)),
        ],
        "count",
    )
    holdout = campaign["holdout"]
    return CampaignFigures(
        data=campaign,
        anchor="campaign-" + re.sub(r"\s+", "-", name),
        funnel=funnel,
        reasons=tuple(sorted({reason for s in steps for reason in s["skipped"]})),
        lift=_lift(name, holdout) if holdout is not None else None,
        splits=tuple(
            _split(name, step, campaign["variants"][step])
            for step in sorted(campaign["variants"], key=_path_key)
        ),
    )


def _lift(name: str, holdout: Mapping[str, Any]) -> _Lift:
    treatment, control, lift = holdout["treatment"], holdout["control"], holdout["lift"]
    if not treatment["journeys"] or not control["journeys"]:
        group = "treatment" if not treatment["journeys"] else "control"
        sentence = f"The {group} group has no journeys yet: lift cannot be measured."
        return _Lift(holdout, sentence, None)
    lower, upper = lift["ci95"]
    chart = interval_chart(
        f"Lift of {name}: {points(lift['absolute'])} points, "
        f"95% interval {points(lower)} to {points(upper)} points",
        lift["absolute"],
        lower,
        upper,
    )
    return _Lift(holdout, lift_sentence(holdout), chart)


def lift_sentence(holdout: Mapping[str, Any]) -> str:
    """The holdout's outcome in words, from its rates, lift, interval and significance."""
    lift = holdout["lift"]
    lower, upper = lift["ci95"]
    verdict = (
        "significant: the interval excludes zero"
        if lift["significant"]
        else "not significant: the interval crosses zero"
    )
    return (
        f"Treatment converted {percent(holdout['treatment']['rate'])} vs "
        f"{percent(holdout['control']['rate'])} in the control group: "
        f"{points(lift['absolute'])} points (95% interval {points(lower)} to {points(upper)} "
        f"points), {verdict}."
    )


def _split(name: str, step: str, variants: Sequence[Mapping[str, Any]]) -> _Split:
    chart = rate_chart(
        f"Conversion rate by variant at step {step} of {name}, with 95% intervals",
        [str(v["variant"]) for v in variants],
        [finite(v["rate"]) for v in variants],
        [(finite(v["ci95"][0]), finite(v["ci95"][1])) for v in variants],
    )
    return _Split(step, chart, variants)
