"""Small helpers the state's reducers share: a quick ``replace`` for their frozen values, and
how they read numbers and text from an event's properties."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Layout:
    """How :func:`replace` copies a value class: its field values in field order (one
    ``attrgetter`` call, in C) and the position of each field."""

    values: Callable[[Any], tuple[Any, ...]]
    position: Mapping[str, int]


_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type) -> _Layout:
    names = tuple(f.name for f in fields(cls))
    position = {name: index for index, name in enumerate(names)}
    if len(names) > 1:
        return _Layout(attrgetter(*names), position)
    # attrgetter of one name gives the value itself, not a tuple of one
    return _Layout(lambda value: tuple(getattr(value, name) for name in names), position)


def replace(value: T, **changes: Any) -> T:
    """``dataclasses.replace`` for the reducers' hot path: the same result, without its
    per-call field checks (our value classes have only plain init fields, taken in field
    order)."""
    cls = type(value)
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = _layout(cls)
    arguments = list(layout.values(value))
    for name, changed in changes.items():
        arguments[layout.position[name]] = changed
    return cls(*arguments)


def number(value: object, default: float = 0.0) -> float:
    """``value`` as a float when it is a number (not a bool), else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def text(value: object) -> str | None:
    """``value`` as text; ``None`` for nothing or an empty string."""
    if value is None or value == "":
        return None
    return str(value)
