"""Wilson and Newcombe intervals against the published worked examples (REPORTS.md, "Lift from
the holdout" and "A/B splits")."""

from __future__ import annotations

import pytest

from engine.reports.stats import Z95, newcombe, rate, wilson

# Newcombe RG (1998), "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Stat Med 17:873-890, Table II, method 10 (hybrid score, no
# continuity correction).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]

# Newcombe RG (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity correction).
WILSON_TABLE = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0000, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
]


def test_z95_is_the_two_sided_95_percent_normal_quantile() -> None:
    from statistics import NormalDist

    assert NormalDist().inv_cdf(0.975) == pytest.approx(Z95, abs=1e-15)


@pytest.mark.parametrize(("counts", "expected"), WILSON_TABLE)
def test_wilson_matches_the_published_examples(
    counts: tuple[int, int], expected: tuple[float, float]
) -> None:
    lower, upper = wilson(*counts)
    assert (round(lower, 4), round(upper, 4)) == expected


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_matches_table_ii(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    lower, upper = newcombe(*counts)
    assert (round(lower, 4), round(upper, 4)) == expected


def test_wilson_of_no_trials_is_zero() -> None:
    assert wilson(0, 0) == (0.0, 0.0)


def test_wilson_is_exactly_bounded_at_zero_and_all() -> None:
    assert wilson(0, 7)[0] == 0.0
    assert wilson(7, 7)[1] == 1.0
    for n in range(1, 60):
        for k in range(n + 1):
            lower, upper = wilson(k, n)
            assert 0.0 <= lower <= k / n <= upper <= 1.0


def test_wilson_is_symmetric_in_successes_and_failures() -> None:
    for n in (1, 5, 20, 263):
        for k in range(n + 1):
            lower, upper = wilson(k, n)
            mirror_lower, mirror_upper = wilson(n - k, n)
            assert lower == pytest.approx(1 - mirror_upper, abs=1e-12)
            assert upper == pytest.approx(1 - mirror_lower, abs=1e-12)


def test_wilson_narrows_with_a_smaller_z() -> None:
    wide, narrow = wilson(30, 100), wilson(30, 100, z=1.0)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


def test_newcombe_of_an_empty_group_is_zero() -> None:
    assert newcombe(0, 0, 3, 10) == (0.0, 0.0)
    assert newcombe(3, 10, 0, 0) == (0.0, 0.0)


def test_newcombe_is_antisymmetric() -> None:
    for counts in [c for c, _ in NEWCOMBE_TABLE_II]:
        k1, n1, k2, n2 = counts
        lower, upper = newcombe(k1, n1, k2, n2)
        swapped_lower, swapped_upper = newcombe(k2, n2, k1, n1)
        assert lower == pytest.approx(-swapped_upper, abs=1e-12)
        assert upper == pytest.approx(-swapped_lower, abs=1e-12)


def test_newcombe_contains_the_difference_and_stays_within_minus_one_and_one() -> None:
    for n1 in (1, 3, 10):
        for n2 in (1, 4, 10):
            for k1 in range(n1 + 1):
                for k2 in range(n2 + 1):
                    lower, upper = newcombe(k1, n1, k2, n2)
                    d = k1 / n1 - k2 / n2
                    assert -1.0 - 1e-12 <= lower <= d <= upper <= 1.0 + 1e-12


def test_newcombe_excludes_zero_only_for_a_clear_difference() -> None:
    assert newcombe(56, 70, 48, 80)[0] > 0  # significant
    assert newcombe(5, 56, 0, 29)[0] < 0 < newcombe(5, 56, 0, 29)[1]  # not significant


def test_rate() -> None:
    assert rate(0, 0) == 0.0
    assert rate(3, 4) == 0.75
    assert rate(0, 9) == 0.0
