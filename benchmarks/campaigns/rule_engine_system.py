"""The rule-engine peer: the plain-Python state machine with its conditions in rule-engine.

`rule-engine <https://pypi.org/project/rule-engine/>`_ evaluates expressions over a dict; it has
no notion of time, journeys or state, so the state machine and the timers are those of
:mod:`benchmarks.campaigns.baseline`, and rule-engine decides every condition: each campaign's
trigger on every event, the exit on every event, the cart-value branch when it is due. With
``rules=100`` there are 100 trigger rules (the abandoned cart and 99 event names that never come),
as with 100 campaigns: rule-engine has no index by event name, so each event is matched against
all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import rule_engine

from benchmarks.campaigns.baseline import CAMPAIGN, AbandonedCart
from benchmarks.campaigns.campaign_files import CART_THRESHOLD
from benchmarks.campaigns.records import Record


class RuleEngineConditions:
    """The campaign's conditions as rule-engine rules, parsed once."""

    def __init__(self, rules: int) -> None:
        context = rule_engine.Context(default_value=None)
        triggers = [(CAMPAIGN, 'type == "track" and name == "Product Added"')]
        triggers += [
            (f"never-{n:03d}", f'type == "track" and name == "Benchmark Never Sent {n}"')
            for n in range(1, rules)
        ]
        self._triggers = [(cid, rule_engine.Rule(text, context=context)) for cid, text in triggers]
        self._exit = rule_engine.Rule('name == "Order Completed"', context=context)
        self._branch = rule_engine.Rule(f"value >= {CART_THRESHOLD}", context=context)

    def triggered(self, record: Record) -> list[str]:
        """The campaigns whose trigger rule matches ``record`` (every rule is evaluated)."""
        return [cid for cid, rule in self._triggers if rule.matches(record)]

    def exits(self, record: Record) -> bool:
        """Whether the exit rule matches ``record``."""
        return bool(self._exit.matches(record))

    def high_value(self, value: float) -> bool:
        """Whether the branch rule holds for a cart worth ``value``."""
        return bool(self._branch.matches({"value": value}))


def prepare(records: list[Record], rules: int) -> Callable[[], Counter[str]]:
    """The rules, parsed; the returned call runs the abandoned cart over ``records``."""
    machine = AbandonedCart(RuleEngineConditions(rules))
    return lambda: machine.run(records)
