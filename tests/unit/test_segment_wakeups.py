"""Segment conditions over stretches of time, and the sweep grid's search: the same answer as
looking every hour, exactly, for monotone and non-monotone conditions alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.campaigns.expressions import compile_expression
from engine.campaigns.intervals import holds_throughout
from engine.journeys.wakeups import SEARCH_BUDGET, SweepGrid

T0 = datetime(2020, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

CONDITIONS = [
    "customer.orders.last_at and customer.orders.last_at < now - days(90)",
    "customer.orders.last_at and (now - customer.orders.last_at).days >= 30",
    (  # true in a window only
        "customer.orders.last_at and now - customer.orders.last_at > days(10)"
        " and now - customer.orders.last_at < days(40)"
    ),
    "not customer.orders.last_at or customer.orders.last_at + days(60) < now",
    "now.hour == 9",  # the time of day: decided within an hour, turns at the next
    "now.weekday() == 0 and now.hour >= 9",
    "now.month == 12 or now.day == 1",
    "now.date() > customer.orders.last_at.date()",
    "customer.orders.last_at and (now - customer.orders.last_at).total_seconds() > 86400 * 3",
    "customer.orders.last_at == now",
    "customer.cart.updated_at and customer.cart.updated_at > now - hours(5)",
]


def _scope(last_order: datetime | None, cart_at: datetime | None = None) -> dict[str, Any]:
    customer = SimpleNamespace(
        orders=SimpleNamespace(last_at=last_order), cart=SimpleNamespace(updated_at=cart_at)
    )
    return {"customer": customer, "event": None}


@pytest.mark.parametrize("source", CONDITIONS)
@settings(max_examples=25, deadline=None)
@given(
    order_hours=st.one_of(st.none(), st.integers(min_value=-3000, max_value=3000)),
    start=st.integers(min_value=0, max_value=2000),
    length=st.integers(min_value=0, max_value=3000),
)
def test_a_decided_stretch_agrees_with_every_hour_in_it(
    source: str, order_hours: int | None, start: int, length: int
) -> None:
    condition = compile_expression(source)
    last = T0 + timedelta(hours=order_hours) if order_hours is not None else None
    scope = _scope(last, last)
    lo, hi = T0 + start * HOUR, T0 + (start + length) * HOUR
    decided = holds_throughout(condition, scope, lo, hi)
    if isinstance(decided, bool):  # else undecided (with, perhaps, when it turns)
        hours = range(start, start + length + 1, max(1, length // 50))
        assert all(condition.holds({**scope, "now": T0 + h * HOUR}) == decided for h in hours)
        assert condition.holds({**scope, "now": hi}) == decided


@pytest.mark.parametrize("source", CONDITIONS)
@pytest.mark.parametrize("order_hours", [None, -500, 0, 37, 1000])
@pytest.mark.parametrize("after_hours", [5, 720])
def test_the_first_change_is_the_hour_an_hourly_look_would_find(
    source: str, order_hours: int | None, after_hours: int
) -> None:
    condition = compile_expression(source)
    last = T0 + timedelta(hours=order_hours) if order_hours is not None else None
    scope = _scope(last, last)
    grid = SweepGrid(T0, HOUR)
    after = T0 + after_hours * HOUR + timedelta(minutes=7)  # an event between two sweeps
    value = condition.holds({**scope, "now": after})
    probes = []

    def probe(start: datetime, end: datetime) -> bool | datetime | None:
        probes.append(start)
        return holds_throughout(condition, scope, start, end)

    found = grid.first_change(probe, value, after)
    first = grid.index_after(after)
    hourly = next(
        (
            i
            for i in range(first, first + 2500)
            if condition.holds({**scope, "now": grid.time(i)}) != value
        ),
        None,
    )
    if len(probes) >= SEARCH_BUDGET:  # it could not tell: an early look, never a late one
        assert first <= found <= (hourly if hourly is not None else found)
    elif hourly is not None:
        assert found == hourly
    else:
        assert found >= first + 2500


def test_bookings_keep_the_earliest_look_and_drop_done_ones() -> None:
    grid = SweepGrid(T0, HOUR)
    grid.book("b", 5)
    grid.book("a", 3)
    grid.book("b", 2)  # earlier: replaces 5
    grid.book("a", 9)  # later: 3 stands
    assert grid.due(T0 + 1 * HOUR) == []
    assert grid.due(T0 + 2 * HOUR) == ["b"]
    assert grid.due(T0 + 10 * HOUR) == ["a"]  # b's old booking at 5 is gone with it
    assert grid.due(T0 + 100 * HOUR) == []


@pytest.mark.parametrize(
    ("source", "first"),
    [
        ("now.hour == 9", datetime(2020, 1, 2, 9, tzinfo=UTC)),
        ("now.weekday() == 0 and now.hour >= 9", datetime(2020, 1, 6, 9, tzinfo=UTC)),
        ("now.month == 12", datetime(2020, 12, 1, tzinfo=UTC)),
    ],
)
def test_calendar_fields_are_searched_a_period_at_a_time_on_a_grid_of_seconds(
    source: str, first: datetime
) -> None:
    """The durable runtime books looks to the second: a condition on ``now.hour`` must not be
    evaluated at each second up to its turn (165,615 evaluations, 3 s, for ``now.hour == 9``)."""
    condition = compile_expression(source)
    scope = _scope(None)
    grid = SweepGrid(datetime(1970, 1, 1, tzinfo=UTC), timedelta(seconds=1), 2**26)
    after = T0 + timedelta(hours=10, microseconds=250_000)  # Wednesday 1 January 2020
    probes = []

    def probe(start: datetime, end: datetime) -> bool | datetime | None:
        probes.append(start)
        return holds_throughout(condition, scope, start, end)

    assert grid.time(grid.first_change(probe, False, after)) == first
    assert len(probes) < 1000
    before = first - timedelta(seconds=1)
    assert not condition.holds({**scope, "now": before}) and condition.holds(
        {**scope, "now": first}
    )


def test_a_condition_the_search_cannot_follow_gets_an_early_look_not_a_hang() -> None:
    """``now.strftime`` is undecided over every stretch: without a budget the search would probe
    each microsecond of two years. It stops and books the first stretch it could not tell, early
    (a look there checks the value again and books the next)."""
    condition = compile_expression("now.strftime('%H') == '09'")
    scope = _scope(None)
    grid = SweepGrid(datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1), 2**46)
    after = T0 + timedelta(hours=10)
    probes = []

    def probe(start: datetime, end: datetime) -> bool | datetime | None:
        probes.append(start)
        return holds_throughout(condition, scope, start, end)

    look = grid.time(grid.first_change(probe, False, after))
    turn = T0 + timedelta(days=1, hours=9)  # the next 09:00
    assert after < look <= turn
    assert len(probes) <= SEARCH_BUDGET
