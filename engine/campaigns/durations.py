"""The time-like values of campaign files and ``followup.yaml``, as parsers and pydantic types.

Durations are ``30m``, ``1h``, ``2d``, ``1w`` (also ``45s``) or ISO 8601 (``PT1H``, ``P1DT12H``,
``P2W``, ``PT1.5H``). Years and months have no fixed length, so they are refused with a hint to
count days.
Also: percentages (``10%``), times of day (``"09:00"``), windows (``"21:00-08:00"``), cron
schedules and IANA time zones. Every parser raises ``ValueError`` saying what to write instead.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from engine.clock import check_time_zone

DURATION_HINT = "write e.g. 30m, 1h, 2d, 1w or PT1H"
CRON_HINT = "write 5 fields (minute hour day month weekday), e.g. '0 9 * * 1' for Mondays 09:00"
_CRON_NAMES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")

_SHORT = re.compile(r"(?P<amount>\d+)\s*(?P<unit>[smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AMOUNT = (
    r"\d+(?:[.,]\d+)?"  # ISO 8601 allows a decimal fraction (dot or comma) in the smallest unit
)
_ISO = re.compile(
    rf"P(?:(?P<weeks>{_AMOUNT})W)?(?:(?P<days>{_AMOUNT})D)?"
    rf"(?:T(?:(?P<hours>{_AMOUNT})H)?(?:(?P<minutes>{_AMOUNT})M)?(?:(?P<seconds>{_AMOUNT})S)?)?"
)
_ISO_CALENDAR = re.compile(r"P(?:\d+Y)?(?:\d+M)?(?:\d+[WD])?(?:T[\d.,HMS]*)?")
_PERCENT = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*%")
_CLOCK = re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2})")


def parse_duration(value: object) -> timedelta:
    """``value`` as a positive :class:`timedelta`; ``ValueError`` says what to write instead."""
    result = parse_span(value)
    if result <= timedelta(0):
        raise ValueError(f"a duration must be longer than zero; {DURATION_HINT}")
    return result


def parse_span(value: object) -> timedelta:
    """``value`` as a :class:`timedelta` of zero or more (``0d``: never, in a window)."""
    if isinstance(value, timedelta):
        result = value
    elif value is None:
        raise ValueError(f"a duration is missing; {DURATION_HINT}")
    else:
        text = value.strip() if isinstance(value, str) else str(value)
        result = timedelta(0) if text == "0" else _parse_text(text)
    if result < timedelta(0):
        raise ValueError(f"a duration cannot be negative; {DURATION_HINT}")
    return result


def _parse_text(text: str) -> timedelta:
    short = _SHORT.fullmatch(text)
    if short:
        return timedelta(**{_UNITS[short["unit"]]: int(short["amount"])})
    iso = _ISO.fullmatch(text.upper())
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        amounts = [(unit, amount) for unit, amount in iso.groupdict().items() if amount]
        if all(amount.isdigit() for _, amount in amounts[:-1]):
            return timedelta(**{unit: float(amount.replace(",", ".")) for unit, amount in amounts})
    date_part = text.upper().partition("T")[0]
    if _ISO_CALENDAR.fullmatch(text.upper()) and ("Y" in date_part or "M" in date_part):
        raise ValueError(
            f"duration {text!r} counts years or months, which have no fixed length; "
            "count days instead, e.g. P30D or 30d"
        )
    raise ValueError(f"unknown duration {text!r}; {DURATION_HINT}")


def format_duration(value: timedelta) -> str:
    """The shortest campaign-file form of ``value`` (``90m``, ``2d``, ``PT1H30M15S``)."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"PT{value.total_seconds():g}S"


def parse_percent(value: object) -> float:
    """``"10%"`` as the fraction ``0.1``; bare numbers are refused, since 0.5 and 50 both occur."""
    match = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"unknown percentage {value!r}; write e.g. 10% or 50%")
    fraction = float(match["number"]) / 100
    if fraction > 1:
        raise ValueError(f"{value!r} is over 100%")
    return fraction


def parse_clock(value: object) -> time:
    """``"09:00"`` as a :class:`time`; 24-hour clock."""
    if isinstance(value, time):
        return value
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match["hour"]) > 23 or int(match["minute"]) > 59:
        raise ValueError(f'unknown time of day {value!r}; write e.g. "09:00" or "17:30"')
    return time(int(match["hour"]), int(match["minute"]))


def parse_window(value: object) -> tuple[time, time]:
    """``"21:00-08:00"`` as (start, end) times of day; a window may run past midnight."""
    if isinstance(value, tuple) and all(isinstance(part, time) for part in value):
        return value[0], value[1]
    parts = value.split("-") if isinstance(value, str) else []
    try:
        if len(parts) == 2:
            return parse_clock(parts[0]), parse_clock(parts[1])
    except ValueError:
        pass
    raise ValueError(f'unknown time window {value!r}; write e.g. "21:00-08:00"')


def check_cron(value: str) -> str:
    """``value`` when it is a 5-field cron expression or ``@daily`` and the like."""
    text = value.strip()
    if text.startswith("@"):
        valid = text in _CRON_NAMES
    else:
        valid = len(text.split()) == 5 and croniter.is_valid(text)
    if not valid:
        raise ValueError(f"schedule {value!r} is not a cron expression; {CRON_HINT}")
    return text


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["30m", "1h", "2d", "1w", "PT1H"]}),
]
Span = Annotated[  # a Duration that may be zero
    timedelta,
    BeforeValidator(parse_span),
    PlainSerializer(lambda value: format_duration(value) if value else "0d", return_type=str),
    WithJsonSchema({"type": "string", "examples": ["0d", "30m", "5d"]}),
]
Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    PlainSerializer(lambda value: f"{value * 100:g}%", return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?%$", "examples": ["10%"]}),
]
ClockTime = Annotated[
    time,
    BeforeValidator(parse_clock),
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$", "examples": ["09:00"]}),
]
TimeWindow = Annotated[
    tuple[time, time],
    BeforeValidator(parse_window),
    PlainSerializer(lambda w: f"{w[0]:%H:%M}-{w[1]:%H:%M}", return_type=str),
    WithJsonSchema({"type": "string", "examples": ["21:00-08:00"]}),
]
Cron = Annotated[str, AfterValidator(check_cron)]
TimeZone = Annotated[str, AfterValidator(check_time_zone)]
