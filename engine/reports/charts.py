"""Inline SVG charts and number formats for the HTML report: small pure functions, figures in,
markup out.

Every chart is one ``<svg>`` with a ``<title>`` and an ``aria-label``, no script and no reference
to another host. Coordinates and labels are formatted here with fixed decimals, so the same figures
always give the same bytes; a value that is not finite is drawn and written as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup, escape

# Okabe & Ito's colour-blind-safe palette, yellow last: it is the hardest to see on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
WIDTH = 640
_CHAR = 6.5  # average width of a character at 12px, to lay out labels without measuring text
_BAR = 14
_LABEL_CHARS = 30
_PLOT_LEFT = 72.0
_STROKES = {
    "grid": 'stroke="#dddddd"',
    "axis": 'stroke="#555555"',
    "zero": 'stroke="#000000" stroke-dasharray="4 3"',
    "whisker": 'stroke="#000000" stroke-width="2"',
}

Unit = Literal["money", "count", "rate", "points"]


@dataclass(frozen=True)
class Series:
    """One named line, or one bar per category: a name and its values in category order."""

    name: str
    values: tuple[float, ...]


# -- numbers ----------------------------------------------------------------------------------


def finite(value: float | None) -> float:
    """The value as a float, 0.0 when it is missing, NaN or infinite."""
    number = float(value) if value is not None else 0.0
    return number if math.isfinite(number) else 0.0


def _fixed(value: float, decimals: int, sign: bool = False) -> str:
    number = finite(value)
    if round(number, decimals) == 0:
        number = 0.0  # no "-0.00"
    text = f"{number:,.{decimals}f}"
    return f"+{text}" if sign and number > 0 else text


def money(value: float | None) -> str:
    """An amount with thousands separators and 2 decimals: ``1,234.50``."""
    return _fixed(finite(value), 2)


def count(value: float | None) -> str:
    """A count: whole as ``1,234``, fractional (shared attribution) with up to 2 decimals."""
    number = finite(value)
    if number == round(number):
        return _fixed(number, 0)
    return _fixed(number, 2).rstrip("0").rstrip(".")


def percent(rate: float | None) -> str:
    """A rate (0.123) as a percentage with 1 decimal: ``12.3%``."""
    return f"{_fixed(finite(rate) * 100, 1)}%"


def points(difference: float | None) -> str:
    """A difference of rates in percentage points, signed, 1 decimal: ``+4.0``, ``-1.2``."""
    return _fixed(finite(difference) * 100, 1, sign=True)


def value_label(value: float, unit: Unit) -> str:
    """A figure written in its unit, as on a bar or in a table."""
    formats: dict[str, Callable[[float], str]] = {
        "money": money,
        "count": count,
        "rate": percent,
        "points": points,
    }
    return formats[unit](value)


def nice_ticks(low: float, high: float, steps: int = 4) -> tuple[float, ...]:
    """Round tick values covering ``[low, high]`` and 0, about ``steps`` steps apart."""
    low, high = min(finite(low), 0.0), max(finite(high), 0.0)
    if high - low <= 0:
        high = 1.0
    step = _nice_step((high - low) / steps)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return tuple(round(i * step, 10) + 0.0 for i in range(first, last + 1))


def _nice_step(raw: float) -> float:
    exponent = math.floor(math.log10(raw))
    fraction = raw / 10**exponent
    nice = next(n for n in (1.0, 2.0, 5.0, 10.0) if fraction <= n + 1e-9)
    return nice * 10.0**exponent


def tick_label(value: float, step: float, unit: Unit) -> str:
    """A tick value with as many decimals as its step needs (rates and points in percent)."""
    scale = 100.0 if unit in ("rate", "points") else 1.0
    decimals = max(0, -math.floor(math.log10(step * scale) + 1e-9))
    text = _fixed(value * scale, decimals, sign=unit == "points")
    return f"{text}%" if unit == "rate" else text


# -- drawing helpers --------------------------------------------------------------------------


def colour(index: int) -> str:
    """The palette colour for the index-th series (cycling past the palette's end)."""
    return PALETTE[index % len(PALETTE)]


def _n(value: float) -> str:
    return _fixed(value, 1).replace(",", "")


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"


def _text(x: float, y: float, text: str, anchor: str = "start", css: str = "") -> str:
    klass = f' class="{css}" fill="#555555"' if css else ""
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{klass}>{escape(text)}</text>'


def _vertical_text(x: float, y: float, text: str) -> str:
    return (
        f'<text class="axis-title" fill="#555555" x="{_n(x)}" y="{_n(y)}" text-anchor="middle" '
        f'transform="rotate(-90 {_n(x)} {_n(y)})">{escape(text)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, css: str) -> str:
    stroke = _STROKES[css.split()[0]]
    return f'<line class="{css}" x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" {stroke}/>'


def _rect(x: float, y: float, width: float, height: float, fill: str, css: str = "bar") -> str:
    return (
        f'<rect class="{css}" x="{_n(x)}" y="{_n(y)}" width="{_n(max(width, 0.0))}" '
        f'height="{_n(max(height, 0.0))}" fill="{fill}"/>'
    )


def _svg(title: str, height: float, body: Iterable[str], css: str) -> Markup:
    label = escape(title)
    head = (
        f'<svg class="chart {css}" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} '
        f'{_n(height)}" width="{WIDTH}" height="{_n(height)}" font-size="12" '
        f'font-family="system-ui, sans-serif"><title>{label}</title>'
    )
    return Markup("\n".join([head, *body, "</svg>"]))


def _empty(title: str, css: str) -> Markup:
    return _svg(title, 40, [_text(WIDTH / 2, 24, "No data", "middle", "muted")], css)


def _legend(names: Sequence[str], top: float) -> tuple[list[str], float]:
    """Swatches and names in rows from ``top``; the markup and the height it takes."""
    parts: list[str] = []
    x, y = 8.0, top
    for index, name in enumerate(names):
        width = 16 + len(_short(name)) * _CHAR + 16
        if x > 8 and x + width > WIDTH - 8:
            x, y = 8.0, y + 18
        parts.append(_rect(x, y, 12, 12, colour(index), "swatch"))
        parts.append(_text(x + 16, y + 10, _short(name)))
        x += width
    return parts, (y - top + 18 if names else 0.0)


def _y_axis(ticks: Sequence[float], unit: Unit, scale: Callable[[float], float]) -> list[str]:
    """Horizontal grid lines with their labels at the left of the plot."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = []
    for tick in ticks:
        y = scale(tick)
        parts.append(_line(_PLOT_LEFT, y, WIDTH - 16, y, "axis" if tick == 0 else "grid"))
        parts.append(_text(_PLOT_LEFT - 6, y + 4, tick_label(tick, step, unit), "end"))
    return parts


# -- charts -----------------------------------------------------------------------------------


def line_chart(
    title: str,
    days: Sequence[str],
    series: Sequence[Series],
    unit: Unit,
    y_label: str,
    plot_height: float = 180.0,
    x_label: str = "day (UTC)",
) -> Markup:
    """One polyline per series over consecutive days, with a legend, y ticks and the first,
    middle and last day labelled."""
    if not days or not series:
        return _empty(title, "line-chart")
    legend, legend_height = _legend([s.name for s in series], 8)
    top = 8 + legend_height + 10
    bottom = top + plot_height
    values = [finite(v) for s in series for v in s.values]
    ticks = nice_ticks(min(values, default=0.0), max(values, default=0.0))
    low, high = ticks[0], ticks[-1]
    right = WIDTH - 16

    def x_of(index: int) -> float:
        if len(days) == 1:
            return (_PLOT_LEFT + right) / 2
        return _PLOT_LEFT + index * (right - _PLOT_LEFT) / (len(days) - 1)

    def y_of(value: float) -> float:
        return bottom - (finite(value) - low) / (high - low) * (bottom - top)

    parts = [*legend, *_y_axis(ticks, unit, y_of)]
    parts.append(_vertical_text(14, (top + bottom) / 2, y_label))
    for index in sorted({0, (len(days) - 1) // 2, len(days) - 1}):
        anchor = "middle" if len(days) == 1 or 0 < index < len(days) - 1 else "start"
        anchor = "end" if index == len(days) - 1 and len(days) > 1 else anchor
        parts.append(_text(x_of(index), bottom + 16, days[index], anchor))
    parts.append(_text((_PLOT_LEFT + right) / 2, bottom + 32, x_label, "middle", "axis-title"))
    for number, line in enumerate(series):
        parts.extend(_polyline(line, colour(number), x_of, y_of))
    return _svg(title, bottom + 40, parts, "line-chart")


def _polyline(
    series: Series, fill: str, x_of: Callable[[int], float], y_of: Callable[[float], float]
) -> list[str]:
    coordinates = " ".join(f"{_n(x_of(i))},{_n(y_of(v))}" for i, v in enumerate(series.values))
    polyline = (
        f'<polyline class="series" points="{coordinates}" fill="none" stroke="{fill}" '
        f'stroke-width="2"><title>{escape(series.name)}</title></polyline>'
    )
    parts = [polyline]
    if len(series.values) == 1:  # a line of one point is invisible: mark it
        parts.append(
            f'<circle cx="{_n(x_of(0))}" cy="{_n(y_of(series.values[0]))}" r="3" fill="{fill}"/>'
        )
    return parts


def bar_chart(
    title: str, categories: Sequence[str], series: Sequence[Series], unit: Unit
) -> Markup:
    """Horizontal bars from 0, one group per category and one bar per series, values written at
    the bars' ends (negative values draw no bar)."""
    if not categories or not series:
        return _empty(title, "bar-chart")
    legend, legend_height = _legend([s.name for s in series], 8)
    top = 8 + legend_height + 8
    left = min(200.0, max(len(_short(c)) for c in categories) * _CHAR + 16)
    right = WIDTH - 96
    high = max((finite(v) for s in series for v in s.values), default=0.0)
    high = high if high > 0 else 1.0
    group = len(series) * (_BAR + 2) + 10
    parts = list(legend)
    for row, category in enumerate(categories):
        y = top + row * group
        parts.append(_text(left - 8, y + (group - 10) / 2 + 4, _short(category), "end"))
        for number, line in enumerate(series):
            value = finite(line.values[row])
            width = max(value, 0.0) / high * (right - left)
            bar_y = y + number * (_BAR + 2)
            parts.append(_rect(left, bar_y, width, _BAR, colour(number)))
            parts.append(_text(left + width + 4, bar_y + _BAR - 3, value_label(value, unit)))
    bottom = top + len(categories) * group
    parts.append(_line(left, top - 4, left, bottom - 6, "axis"))
    return _svg(title, bottom + 4, parts, "bar-chart")


def interval_chart(title: str, estimate: float, lower: float, upper: float) -> Markup:
    """A difference of rates in points on an axis that includes 0: a bar from 0 to the
    estimate, a marker at it and whiskers to the interval's bounds."""
    lower, upper = sorted((finite(lower), finite(upper)))
    estimate = finite(estimate)
    ticks = nice_ticks(min(lower, estimate), max(upper, estimate))
    low, high = ticks[0], ticks[-1]
    left, right, middle, axis = 32.0, WIDTH - 32.0, 40.0, 64.0

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * (right - left)

    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = []
    for tick in ticks:
        parts.append(_line(x_of(tick), 12, x_of(tick), axis, "grid"))
        parts.append(_text(x_of(tick), axis + 16, tick_label(tick, step, "points"), "middle"))
    parts.append(_line(left, axis, right, axis, "axis"))
    parts.append(_line(x_of(0), 8, x_of(0), axis, "zero"))
    start, end = sorted((x_of(0), x_of(estimate)))
    parts.append(_rect(start, middle - 8, end - start, 16, "#9BC7E6", "estimate-bar"))
    parts.append(_line(x_of(lower), middle, x_of(upper), middle, "whisker"))
    parts.append(_line(x_of(lower), middle - 8, x_of(lower), middle + 8, "whisker ci-lower"))
    parts.append(_line(x_of(upper), middle - 8, x_of(upper), middle + 8, "whisker ci-upper"))
    parts.append(
        f'<circle class="estimate" cx="{_n(x_of(estimate))}" cy="{_n(middle)}" r="5" fill="#000000"/>'
    )
    parts.append(_text(x_of(estimate), middle - 14, f"{points(estimate)} points", "middle"))
    parts.append(
        _text(WIDTH / 2, axis + 32, "points (treatment - control)", "middle", "axis-title")
    )
    return _svg(title, axis + 40, parts, "interval-chart")


def rate_chart(
    title: str,
    labels: Sequence[str],
    rates: Sequence[float],
    intervals: Sequence[tuple[float, float]],
) -> Markup:
    """Vertical bars of rates side by side, each with whiskers to its 95% interval."""
    if not labels:
        return _empty(title, "rate-chart")
    highest = max(
        max(finite(r), finite(i[0]), finite(i[1])) for r, i in zip(rates, intervals, strict=True)
    )
    ticks = nice_ticks(0.0, min(highest, 1.0))
    top, bottom, right = 24.0, 184.0, WIDTH - 16.0

    def y_of(value: float) -> float:
        return bottom - (finite(value) - ticks[0]) / (ticks[-1] - ticks[0]) * (bottom - top)

    parts = [
        *_y_axis(ticks, "rate", y_of),
        _vertical_text(14, (top + bottom) / 2, "conversion rate"),
    ]
    slot = (right - _PLOT_LEFT) / len(labels)
    width = min(72.0, slot / 2)
    for index, (label, rate, (low, high)) in enumerate(zip(labels, rates, intervals, strict=True)):
        x = _PLOT_LEFT + slot * (index + 0.5)
        parts.append(_rect(x - width / 2, y_of(rate), width, bottom - y_of(rate), colour(index)))
        parts.append(_line(x, y_of(low), x, y_of(high), "whisker"))
        parts.append(_line(x - 8, y_of(low), x + 8, y_of(low), "whisker ci-lower"))
        parts.append(_line(x - 8, y_of(high), x + 8, y_of(high), "whisker ci-upper"))
        parts.append(_text(x, y_of(max(rate, high)) - 6, percent(rate), "middle"))
        parts.append(_text(x, bottom + 16, _short(label), "middle"))
    return _svg(title, bottom + 28, parts, "rate-chart")
