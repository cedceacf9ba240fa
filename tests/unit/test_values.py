"""``quick_init`` makes the same frozen values as the dataclass's own ``__init__``."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.state.profile import CustomerState
from engine.values import quick_init


@dataclass(frozen=True, slots=True)
class Plain:
    name: str
    count: int = 0
    tags: dict[str, Any] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True, slots=True)
class Value:
    name: str
    count: int = 0
    tags: dict[str, Any] = field(default_factory=dict)


def test_the_same_fields_defaults_and_signature_as_the_generated_init() -> None:
    assert str(inspect.signature(Value)) == str(inspect.signature(Plain))
    for args, kwargs in [(("a",), {}), (("a", 2), {}), (("a",), {"tags": {"x": 1}, "count": 3})]:
        quick, plain = Value(*args, **kwargs), Plain(*args, **kwargs)
        assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert Value("a").tags is not Value("a").tags  # a fresh value from the factory each time


def test_values_stay_frozen_hashable_and_picklable() -> None:
    value = Value("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.name = "b"  # type: ignore[misc]
    assert value == Value("a", 1)
    assert dataclasses.replace(value, count=2) == Value("a", 2)
    assert pickle.loads(pickle.dumps(value)) == value
    state = CustomerState(user_id="u1", traits={"email": "a@example.com"})
    assert pickle.loads(pickle.dumps(state)) == state
    assert hash(Value("a", 1, ())) == hash(Value("a", 1, ()))  # type: ignore[arg-type]


def test_missing_arguments_fail_as_before() -> None:
    with pytest.raises(TypeError):
        Value()  # type: ignore[call-arg]


def test_classes_it_cannot_reproduce_are_refused() -> None:
    @dataclass
    class Mutable:
        name: str

    @dataclass(frozen=True, slots=True)
    class Checked:
        name: str

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Derived:
        name: str
        size: int = field(init=False, default=0)

    for cls in (Mutable, Checked, Derived):
        with pytest.raises(TypeError):
            quick_init(cls)
