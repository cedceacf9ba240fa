"""What conditions and templates see, and the stable random choices of a journey.

``customer`` is the unified profile with its id; ``event`` the triggering event; ``now`` the
engine's clock. Holdout and split choices are stable functions of customer and campaign, so a
replay, or a restart of the engine, makes the same choice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.events import Event
from engine.state.profile import CustomerState
from engine.state.reducers import snake_case


class Traits(Mapping[str, Any]):
    """A customer's traits as campaigns read them. The profile keeps Segment's camelCase keys in
    snake_case (``firstName`` -> ``first_name``, ``loyaltyTier`` -> ``loyalty_tier``); a campaign
    that writes the key as the events sent it (``customer.traits.loyaltyTier``) finds the same
    trait."""

    __slots__ = ("_traits",)

    def __init__(self, traits: Mapping[str, Any]) -> None:
        self._traits = traits

    def __getitem__(self, key: str) -> Any:
        traits = self._traits
        if key in traits:
            return traits[key]
        if isinstance(key, str):
            stored = snake_case(key)
            if stored in traits:
                return traits[stored]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._traits)

    def __len__(self) -> int:
        return len(self._traits)

    def __repr__(self) -> str:
        return repr(self._traits)


class CustomerView:
    """The profile as expressions and templates see it: the state's fields plus ``id``."""

    __slots__ = ("id", "state")

    def __init__(self, customer_id: str, state: CustomerState) -> None:
        self.id = customer_id
        self.state = state

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels seen, sorted: a set's order changes from one process to the next, and
        a subject that joins them must read the same in every run."""
        return tuple(sorted(self.state.channels))

    @property
    def traits(self) -> Traits:
        """Every trait, by the key the events sent or the profile keeps."""
        return Traits(self.state.traits)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)


def names(
    customer_id: str, state: CustomerState, event: Event | None, now: datetime
) -> dict[str, Any]:
    """The names in scope of a condition or template."""
    return {"customer": CustomerView(customer_id, state), "event": event, "now": now}


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(campaign: str, customer_id: str, share: float) -> bool:
    """Whether the customer is in the campaign's control group."""
    return share > 0 and stable_fraction("holdout", campaign, customer_id) < share


def choose_variant(
    campaign: str, customer_id: str, step: str, weights: Sequence[tuple[str, float]]
) -> str:
    """The split variant of a customer: stable, in proportion to the weights."""
    point = stable_fraction("split", campaign, step, customer_id)
    running = 0.0
    for name, weight in weights:
        running += weight
        if point < running:
            return name
    return weights[-1][0]


def journey_id(campaign: str, customer_id: str, entered_at: datetime, message_id: str) -> str:
    """The stable id of a journey: campaign, customer and the entry that started it."""
    text = f"{campaign}\x1f{customer_id}\x1f{entered_at.isoformat()}\x1f{message_id}"
    return "j_" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
