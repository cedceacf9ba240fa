"""Which touches an order is credited to, and the shares under each model (REPORTS.md,
"Attribution of orders to touches")."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from engine.reports.attribution import (
    DEFAULT_HALF_LIFE,
    DEFAULT_WINDOWS,
    Model,
    Touch,
    credit,
    eligible,
)

T = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WINDOWS = {"email": 5 * DAY, "ads": 3 * DAY, "sms": DAY, "call": 3 * DAY, "webhook": timedelta(0)}


def touch(
    days_before: float, channel: str = "email", sequence: int = 0, campaign: str = "c"
) -> Touch:
    return Touch(
        at=T - timedelta(days=days_before), channel=channel, campaign=campaign, sequence=sequence
    )


def shares(order_at: datetime, touches: list[Touch], model: Model, **kw: object) -> list[float]:
    return [share for _, share in credit(order_at, touches, model, **kw)]  # type: ignore[arg-type]


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULT_WINDOWS == {
        "email": 5 * DAY,
        "sms": DAY,
        "call": 3 * DAY,
        "ads": DAY,
        "webhook": timedelta(0),
    }
    assert DEFAULT_HALF_LIFE == 7 * DAY
    assert [m.value for m in Model] == [
        "last_touch",
        "first_touch",
        "linear",
        "time_decay",
        "position",
    ]
    assert Model("time_decay") is Model.TIME_DECAY


# -- eligibility ---------------------------------------------------------------------------------


def test_eligible_keeps_touches_within_their_channel_window_sorted() -> None:
    email4, ads2, sms2, email6 = touch(4), touch(2, "ads", 1), touch(2, "sms", 2), touch(6)
    assert eligible(T, [sms2, email6, ads2, email4], WINDOWS) == [email4, ads2]


def test_the_window_boundary_counts_and_a_microsecond_more_does_not() -> None:
    on_edge = Touch(T - 5 * DAY, "email", "c", 1)
    past_edge = Touch(T - 5 * DAY - timedelta(microseconds=1), "email", "c", 0)
    assert eligible(T, [on_edge, past_edge], WINDOWS) == [on_edge]


def test_a_touch_at_the_order_counts_and_one_after_it_does_not() -> None:
    same = Touch(T, "email", "c", 0)
    after = Touch(T + timedelta(microseconds=1), "email", "c", 1)
    assert eligible(T, [after, same], WINDOWS) == [same]


def test_a_zero_window_or_an_unknown_channel_is_never_credited() -> None:
    webhook_now = Touch(T, "webhook", "c", 0)
    push = Touch(T - timedelta(minutes=1), "push", "c", 1)
    assert eligible(T, [webhook_now, push], WINDOWS) == []
    assert credit(T, [webhook_now, push], Model.LINEAR, WINDOWS) == []
    assert credit(T, [Touch(T, "webhook", "c", 0)], Model.LAST_TOUCH) == []


def test_eligible_breaks_ties_of_time_by_sequence() -> None:
    a, b, c = touch(1, sequence=3), touch(1, sequence=1), touch(1, sequence=2)
    assert eligible(T, [a, b, c], WINDOWS) == [b, c, a]


def test_an_order_with_no_touch_is_unattributed() -> None:
    for model in Model:
        assert credit(T, [], model) == []
        assert credit(T, [touch(6)], model, WINDOWS) == []


def test_only_eligible_touches_get_shares() -> None:
    inside, outside = touch(1), touch(2, "sms", 1)
    for model in Model:
        result = credit(T, [inside, outside], model, WINDOWS)
        assert result == [(inside, 1.0)]


# -- the models on one worked example -------------------------------------------------------------
# Order at T; email at T-4d, ads at T-2d, call at T-1d (all eligible), sms at T-2d (outside its 1d
# window), webhook at T-1h (0d window).

EMAIL = touch(4, "email", 1, "welcome")
ADS = touch(2, "ads", 2, "retarget")
SMS = touch(2, "sms", 3, "retarget")
CALL = touch(1, "call", 4, "winback")
HOOK = touch(1 / 24, "webhook", 5, "winback")
WORKED = [CALL, SMS, HOOK, ADS, EMAIL]


def test_worked_example_eligibility() -> None:
    assert eligible(T, WORKED, WINDOWS) == [EMAIL, ADS, CALL]


def test_worked_example_last_touch() -> None:
    assert credit(T, WORKED, Model.LAST_TOUCH, WINDOWS) == [(EMAIL, 0.0), (ADS, 0.0), (CALL, 1.0)]


def test_worked_example_first_touch() -> None:
    assert credit(T, WORKED, Model.FIRST_TOUCH, WINDOWS) == [(EMAIL, 1.0), (ADS, 0.0), (CALL, 0.0)]


def test_worked_example_linear() -> None:
    result = credit(T, WORKED, Model.LINEAR, WINDOWS)
    assert [t for t, _ in result] == [EMAIL, ADS, CALL]
    assert [s for _, s in result] == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=1e-15)


def test_worked_example_time_decay() -> None:
    # weights 2^(-4/7), 2^(-2/7), 2^(-1/7)
    weights = [2 ** (-4 / 7), 2 ** (-2 / 7), 2 ** (-1 / 7)]
    expected = [w / sum(weights) for w in weights]
    assert shares(T, WORKED, Model.TIME_DECAY, windows=WINDOWS) == pytest.approx(
        expected, abs=1e-15
    )


def test_worked_example_position() -> None:
    assert shares(T, WORKED, Model.POSITION, windows=WINDOWS) == pytest.approx(
        [0.4, 0.2, 0.4], abs=1e-15
    )


def test_default_windows_apply_when_none_given() -> None:
    # With the defaults, ads has a 1d window: the ads touch 2 days before drops out.
    assert [t for t, _ in credit(T, WORKED, Model.LINEAR)] == [EMAIL, CALL]


# -- last and first touch ties --------------------------------------------------------------------


def test_last_touch_tie_goes_to_the_later_plan_line() -> None:
    early_line, late_line = touch(1, sequence=7), touch(1, "ads", sequence=9)
    result = credit(T, [late_line, early_line], Model.LAST_TOUCH, WINDOWS)
    assert dict(result) == {late_line: 1.0, early_line: 0.0}


def test_first_touch_tie_goes_to_the_earlier_plan_line() -> None:
    early_line, late_line = touch(3, sequence=7), touch(3, "ads", sequence=9)
    result = credit(T, [late_line, early_line], Model.FIRST_TOUCH, WINDOWS)
    assert dict(result) == {early_line: 1.0, late_line: 0.0}


def test_last_touch_prefers_the_latest_time_over_the_sequence() -> None:
    later, earlier = touch(1, sequence=1), touch(2, sequence=99)
    assert dict(credit(T, [earlier, later], Model.LAST_TOUCH, WINDOWS))[later] == 1.0
    assert dict(credit(T, [earlier, later], Model.FIRST_TOUCH, WINDOWS))[earlier] == 1.0


# -- time decay ------------------------------------------------------------------------------------


def test_time_decay_halves_the_weight_per_half_life() -> None:
    now, week_ago = touch(0, sequence=2), touch(7, "email", sequence=1)
    windows = {"email": 10 * DAY}
    result = credit(T, [now, week_ago], Model.TIME_DECAY, windows, half_life=7 * DAY)
    assert dict(result) == {
        now: pytest.approx(2 / 3, abs=1e-15),
        week_ago: pytest.approx(1 / 3, abs=1e-15),
    }


def test_time_decay_of_equal_times_is_linear() -> None:
    touches = [touch(1, sequence=i) for i in range(4)]
    assert shares(T, touches, Model.TIME_DECAY, windows=WINDOWS) == [0.25] * 4


def test_time_decay_survives_a_tiny_half_life() -> None:
    old, new = touch(4, sequence=1), touch(0, sequence=2)
    result = credit(T, [old, new], Model.TIME_DECAY, WINDOWS, half_life=timedelta(seconds=1))
    assert result == [(old, 0.0), (new, 1.0)]


def test_time_decay_refuses_a_non_positive_half_life() -> None:
    with pytest.raises(ValueError, match="half_life"):
        credit(T, [touch(1)], Model.TIME_DECAY, WINDOWS, half_life=timedelta(0))


# -- position --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [1.0]),
        (2, [0.5, 0.5]),
        (3, [0.4, 0.2, 0.4]),
        (5, [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4]),
    ],
)
def test_position_shares(count: int, expected: list[float]) -> None:
    touches = [touch(4 - i * 0.5, sequence=i) for i in range(count)]
    result = shares(T, touches, Model.POSITION, windows=WINDOWS)
    assert result == pytest.approx(expected, abs=1e-15)
    assert sum(result) == 1.0


def test_linear_and_position_of_one_or_two_agree() -> None:
    for touches in ([touch(1)], [touch(2, sequence=0), touch(1, sequence=1)]):
        assert shares(T, touches, Model.POSITION, windows=WINDOWS) == shares(
            T, touches, Model.LINEAR, windows=WINDOWS
        )


# -- shares always add up to exactly one ------------------------------------------------------------


def test_shares_add_up_to_exactly_one_in_many_random_cases() -> None:
    rng = random.Random(20250310)
    channels = ["email", "sms", "call", "ads", "webhook"]
    attributed = 0
    for case in range(500):
        touches = [
            Touch(
                at=T - timedelta(seconds=rng.randint(-12 * 3600, 6 * 86400)),
                channel=rng.choice(channels),
                campaign=rng.choice(["a", "b", "c"]),
                sequence=rng.randint(0, 40),
            )
            for _ in range(rng.randint(0, 12))
        ]
        half_life = timedelta(hours=rng.uniform(0.5, 400))
        found = eligible(T, touches, DEFAULT_WINDOWS)
        for model in Model:
            result = credit(T, touches, model, half_life=half_life)
            assert [t for t, _ in result] == found, (case, model)
            if not found:
                assert result == []
                continue
            values = [share for _, share in result]
            assert sum(values) == 1.0, (case, model, values)
            assert math.fsum(values) == 1.0
            assert sum(Fraction(v) for v in values) == 1
            assert sum(reversed(values)) == 1.0
            assert all(0.0 <= v <= 1.0 for v in values)
            attributed += 1
    assert attributed > 1000  # the random cases are not mostly unattributed
