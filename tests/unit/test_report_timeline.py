"""The figures over time of a report: per day over a short period, per week (from Monday) past
three months, per month past two years, every period between the first and last present, and
nothing lost in the grouping (a demo over 1997 and 2017 made 7,000 rows a table)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.reports.build import timeline
from engine.reports.credit import Attributed


def _attributed(days: list[str]) -> Attributed:
    found = Attributed()
    for n, day in enumerate(days):
        found.daily_revenue[(day, "web")] += 10.0 + n
        found.daily_attributed[(day, "email")] += 1.0
    return found


@pytest.mark.parametrize(
    ("first", "last", "unit", "labels"),
    [
        ("2024-05-01", "2024-05-10", "day", 10),
        ("2024-01-03", "2024-07-20", "week", 29),  # Wednesday to Saturday: Monday 01-01 on
        ("1997-01-01", "2017-12-03", "month", 252),
    ],
)
def test_the_unit_follows_the_span_and_keeps_every_figure(
    first: str, last: str, unit: str, labels: int
) -> None:
    days = [first, last]
    middle = date.fromisoformat(first) + (date.fromisoformat(last) - date.fromisoformat(first)) / 2
    days.insert(1, middle.isoformat())
    found = timeline(_attributed(days))
    assert found.unit == unit
    assert len(found.days) == labels
    assert sum(found.revenue_by_source["web"]) == pytest.approx(10.0 + 11.0 + 12.0)
    assert sum(found.attributed_by_channel["email"]) == 3.0
    if unit == "week":
        assert found.days[0] == "2024-01-01"
        steps = {
            date.fromisoformat(b) - date.fromisoformat(a)
            for a, b in zip(found.days, found.days[1:], strict=False)
        }
        assert steps == {timedelta(days=7)}
    if unit == "month":
        assert found.days[0] == "1997-01" and found.days[-1] == "2017-12"
        assert len(set(found.days)) == len(found.days)


def test_no_figures_no_timeline() -> None:
    found = timeline(Attributed())
    assert found.days == () and found.unit == "day"
