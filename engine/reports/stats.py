"""Interval estimates for conversion rates and their differences: Wilson score intervals for
one rate (A/B variants) and Newcombe's hybrid score interval for the lift of a holdout
(../shared/design/REPORTS.md, "Lift from the holdout" and "A/B splits")."""

from __future__ import annotations

from math import sqrt

Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""


def rate(successes: int, trials: int) -> float:
    """``successes / trials``; 0.0 when there were no trials."""
    return successes / trials if trials else 0.0


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion, within [0, 1]; ``(0.0, 0.0)`` for no trials."""
    if trials == 0:
        return (0.0, 0.0)
    n, z2 = trials, z * z
    centre = (successes + z2 / 2) / (n + z2)
    half = z * sqrt(successes * (n - successes) / n + z2 / 4) / (n + z2)
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return (lower, upper)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """The interval for ``k1/n1 - k2/n2`` by Newcombe's hybrid score method (method 10 of
    Newcombe 1998): Wilson limits per group, combined by squaring and adding. ``(0.0, 0.0)``
    when either group is empty."""
    if n1 == 0 or n2 == 0:
        return (0.0, 0.0)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    lower = d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (lower, upper)
