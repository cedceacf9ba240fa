"""Where a journey is in its campaign's step tree, as a stack of frames.

The root frame walks ``campaign.steps``; an ``if`` branch, a ``wait for`` branch or a split variant
pushes a frame for its steps, and when that frame runs out the step that pushed it is done and its
parent moves on. A frame's ``prefix`` builds the plan path of each step (``"3.then.0"``,
``"2.A.0"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.campaigns.schema import AnyStep, IfStep, SplitStep, WaitStep
from engine.values import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Frame:
    """A list of steps, the index of the current one, and the path prefix of the list."""

    steps: tuple[AnyStep, ...]
    index: int = 0
    prefix: str = ""
    variant: str | None = None

    @property
    def step(self) -> AnyStep | None:
        """The current step, or ``None`` when the list is done."""
        return self.steps[self.index] if self.index < len(self.steps) else None

    @property
    def path(self) -> str:
        """The plan path of the current step."""
        return f"{self.prefix}{self.index}"


Position = tuple[Frame, ...]


def start(steps: tuple[AnyStep, ...]) -> Position:
    """The position before the first step."""
    return (Frame(steps),)


def advance(position: Position) -> Position:
    """The position after the current step (popping finished branches)."""
    depth = len(position)
    while depth:
        depth -= 1
        top = position[depth]
        index = top.index + 1
        moved = Frame(top.steps, index, top.prefix, top.variant)
        if index < len(top.steps):
            return (*position[:depth], moved)
        if not depth:
            return (moved,)  # the root is done: the journey has completed its steps
        # a branch ran out: the step that opened it (now on top) is done, move past it too
    return position


def enter_branch(
    position: Position, steps: tuple[AnyStep, ...], label: str, variant: str | None = None
) -> Position:
    """Go into the branch ``label`` (``then``, ``else`` or a variant name) of the current step;
    an empty branch means the step is done."""
    top = position[-1]
    if not steps:
        return advance(position)
    inherited = variant if variant is not None else top.variant
    return (*position, Frame(steps, 0, f"{top.path}.{label}.", inherited))


def current(position: Position) -> Frame:
    """The innermost frame."""
    return position[-1]


def finished(position: Position) -> bool:
    """Whether every step has been taken."""
    return len(position) == 1 and position[0].step is None


def variant_at(steps: tuple[AnyStep, ...], path: str) -> str | None:
    """The split variant that the step at ``path`` (``"2.A.0"``) is in, the innermost when
    splits nest; ``None`` outside any split or for a path that is not in ``steps``."""
    variant: str | None = None
    parts = path.split(".")
    for at, part in enumerate(parts):
        if at % 2 == 0:  # an index into the current list of steps
            if not part.isdigit() or int(part) >= len(steps):
                return None
            step = steps[int(part)]
            continue
        if isinstance(step, SplitStep):
            chosen = next((v for v in step.split if v.name == part), None)
            if chosen is None:
                return None
            steps, variant = chosen.steps, part
        elif isinstance(step, (IfStep, WaitStep)) and part in ("then", "else"):
            steps = step.then if part == "then" else step.else_
        else:
            return None
    return variant
