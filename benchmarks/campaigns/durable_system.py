"""The durable-rules peer: the abandoned cart as durable-rules rules over per-customer state.

`durable-rules <https://pypi.org/project/durable-rules/>`_ matches events against rules in its C
engine (a Rete network) and keeps a JSON state per session; here a session is a customer
(``sid``) and its state holds the running journey's token and entry, and the cart log. Every
event is posted (the rules decide what matters; an event no rule matches is refused with
``MessageNotHandledException``, which the driver catches). durable-rules' own timers run on the
wall clock, so the virtual clock is a heap in the driver, as in the plain baseline: a due timer
is posted as an event, and its rule checks it belongs to the running journey.

Identities are resolved by the driver with the same rules as the baseline (durable-rules has no
notion of them); when two customers merge, the driver reads both states, joins them (one
journey survives: the earlier entry) and writes the survivor's back.

Two limits of durable-rules 2.0.28 shape the driver: a ruleset holds at most 1,024 sessions
(``MAX_STATE_INDEX_LENGTH``; the next one is a ``MemoryError``), so customers are sharded over
rulesets of 1,000 with the same rules; and its host's background dispatch threads crash the
process once there are many rulesets, so the host runs without them (:func:`_synchronous_host`).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.campaigns.baseline import DAY_MS, HORIZON_MS, HOUR_MS
from benchmarks.campaigns.campaign_files import CART_THRESHOLD
from benchmarks.campaigns.peer_state import Identities, cart_entry, cart_value, merge_logs
from benchmarks.campaigns.records import Record

TIMER = "$benchmark timer"
SESSIONS_PER_RULESET = 1000  # durable-rules 2.0.28 holds at most 1,024 sessions per ruleset


def _synchronous_host() -> None:
    """Make durable-rules' host one without its background dispatch threads.

    The stock host polls every ruleset from two timer threads (with no pause between rulesets);
    with the many rulesets this peer needs, that poll crashes the process (a segfault in
    ``start_action``) while the main thread posts. This peer uses no durable-rules timers or
    queues, and ``post`` runs the matched actions itself, so the threads have nothing to do.
    """
    import durable.lang
    from durable.engine import Host

    class SynchronousHost(Host):
        def _run(self) -> None:
            pass  # no dispatch threads

    durable.lang._main_host = SynchronousHost()


def prepare(records: list[Record], one_rule: bool = False) -> Callable[[], Counter[str]]:
    """The rules' driver; the returned call runs ``records`` through them (``one_rule``: the
    journey ends at the email)."""
    from durable.engine import MessageNotHandledException
    from durable.lang import delete_state, get_state, post, update_state

    _synchronous_host()

    base = f"abandoned_cart_{os.getpid()}"
    counts: Counter[str] = Counter()
    timers: list[tuple[int, int, int, int, int]] = []  # (due, sequence, customer, token, step)
    sequence = itertools.count()
    defined: set[str] = set()

    def push(due: int, sid: str, token: int, step: int) -> None:
        heapq.heappush(timers, (due, next(sequence), int(sid), token, step))

    def ruleset_of(customer: int) -> str:
        name = f"{base}_{customer // SESSIONS_PER_RULESET}"
        if name not in defined:  # one more shard of customers: the same rules again
            _define_rules(name, counts, push, itertools.count(len(defined) << 40), one_rule)
            defined.add(name)
        return name

    def send(customer: int, message: dict[str, Any]) -> None:
        try:
            post(ruleset_of(customer), message)
        except MessageNotHandledException:
            pass  # no rule is about this event

    def advance(identities: Identities, until: int) -> None:
        while timers and timers[0][0] <= until:
            due, _, customer, token, step = heapq.heappop(timers)
            customer = identities.final(customer)
            send(customer, {"sid": str(customer), "t": TIMER, "ts": due, "j": token, "step": step})

    def merge(other: int, survivor: int) -> None:
        counts["merges"] += 1
        gone = _state(get_state, ruleset_of(other), other) or {}
        kept = _state(get_state, ruleset_of(survivor), survivor) or {}
        log = merge_logs(kept.get("log") or [], gone.get("log") or [])
        joined: dict[str, Any] = {"sid": str(survivor), "log": log, "j": 0, "e": None}
        journeys = [state for state in (kept, gone) if state.get("j")]
        if journeys:  # one journey survives a merge: the earlier entry
            first = min(journeys, key=lambda state: state["e"])
            joined.update(j=first["j"], e=first["e"])
            counts["exit_merged"] += len(journeys) - 1
        update_state(ruleset_of(survivor), joined)
        delete_state(ruleset_of(other), str(other))

    def run() -> Counter[str]:
        identities = Identities()
        unique = {record["id"]: record for record in reversed(records)}
        ordered = sorted(unique.values(), key=lambda r: (r["ts"], r["id"]))
        for record in ordered:
            advance(identities, record["ts"])
            customer, merged = identities.resolve(record)
            for other in merged:
                merge(other, customer)
            kind = record["name"] if record["type"] == "track" else record["type"]
            send(customer, {**record, "sid": str(customer), "t": kind})
        if ordered:
            advance(identities, ordered[-1]["ts"] + HORIZON_MS)
        counts["rulesets"] = len(defined)
        return counts

    return run


def _define_rules(
    name: str,
    counts: Counter[str],
    push: Callable[[int, str, int, int], None],
    tokens: Iterator[int],
    one_rule: bool = False,
) -> None:
    """The abandoned cart's rules, as the ruleset ``name`` (``one_rule``: no rule after the
    email, whose timer ends the journey)."""
    from durable.lang import m, ruleset, when_all

    with ruleset(name):

        @when_all(m.t == "Product Added")
        def product_added(c: Any) -> None:
            message, state = c.m._d, c.s
            entry = cart_entry(message)
            if entry is not None:
                state.log = [*(state.log or []), entry]
            if state.j:
                counts["exit_restarted"] += 1
            token = next(tokens)
            state.j, state.e = token, [message["ts"], message["id"]]
            counts["entered"] += 1
            push(message["ts"] + HOUR_MS, message["sid"], token, 1)

        @when_all(m.t == "Order Completed")
        def order_completed(c: Any) -> None:
            c.s.log = [cart_entry(c.m._d)]
            if c.s.j:
                counts["exit_event"] += 1
                c.s.j = 0

        @when_all(m.t == "Checkout Started")
        def checkout_started(c: Any) -> None:
            entry = cart_entry(c.m._d)
            if entry is not None:
                c.s.log = [entry]

        @when_all(m.t == TIMER)
        def timer_due(c: Any) -> None:
            message, state = c.m._d, c.s
            if state.j != message["j"]:
                return  # the journey it was set for has ended
            if message["step"] == 1:
                counts["email"] += 1
                if one_rule:
                    state.j = 0
                    return
                push(message["ts"] + DAY_MS, message["sid"], message["j"], 2)
                return
            high = cart_value(state.log or []) >= CART_THRESHOLD
            counts["call" if high else "ads"] += 1
            state.j = 0


def _state(get_state: Callable[[str, str], Any], name: str, customer: int) -> Any:
    """A customer's durable-rules state, or ``None`` when it has none yet."""
    try:
        return get_state(name, str(customer))
    except Exception:  # noqa: BLE001 - durable-rules raises a bare Exception for an unknown sid
        return None
