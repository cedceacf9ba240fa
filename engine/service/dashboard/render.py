"""The dashboard's pages from their templates (``templates/``, Jinja2 with autoescape), and the
small trend line of the campaigns table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from engine.journeys.plan import format_time
from engine.reports.charts import PALETTE, count, finite, money, percent, points

SPARK_WIDTH = 120
SPARK_HEIGHT = 28


def _time(value: datetime | None) -> str:
    return format_time(value) if value is not None else "-"


@cache
def environment() -> Environment:
    """The templates' environment: autoescaped, strict about undefined names, with the report's
    number formats as filters."""
    found = Environment(
        loader=PackageLoader("engine.service.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    found.filters.update(money=money, count=count, percent=percent, points=points, time=_time)
    return found


def render(template: str, **values: Any) -> str:
    """The page ``template`` with ``values``."""
    return environment().get_template(template).render(**values)


def sparkline(title: str, values: Sequence[float]) -> Markup:
    """A small line of ``values`` (one a day), scaled from 0 to their highest, with ``title``
    as its accessible name and tooltip."""
    label = escape(title)
    if not values:
        return Markup('<span class="muted">no days</span>')
    high = max(finite(v) for v in values) or 1.0
    step = (SPARK_WIDTH - 4) / max(len(values) - 1, 1)

    def y(value: float) -> float:
        return SPARK_HEIGHT - 3 - finite(value) / high * (SPARK_HEIGHT - 6)

    coordinates = " ".join(f"{2 + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    mark = (
        f'<circle cx="{2 + (len(values) - 1) * step:.1f}" cy="{y(values[-1]):.1f}" r="2" '
        f'fill="{PALETTE[0]}"/>'
    )
    return Markup(
        f'<svg class="spark" role="img" aria-label="{label}" viewBox="0 0 {SPARK_WIDTH} '
        f'{SPARK_HEIGHT}" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}"><title>{label}</title>'
        f'<polyline points="{coordinates}" fill="none" stroke="{PALETTE[0]}" '
        f'stroke-width="1.5"/>{mark}</svg>'
    )
