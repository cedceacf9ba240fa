"""``followup simulate --explain REF``: why one customer did or did not get a message in a
simulation, as ``followup explain`` tells it of the live engine.

No engine decision reads another customer, so the customer's own identity group (the events whose
identity keys link to theirs, :class:`~engine.journeys.partitioned.LinkedKeys`), run alone on
the whole run's clock, gets exactly the decisions the whole simulation makes for them: only
those events are replayed, however big the file. A reference that is no event's identity key
(a customer id) replays every event. The explanation is read from the engine through the same
read model as the live one's (:func:`engine.drive.explanation.explain_customer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.campaigns.schema import Campaign
from engine.config import ProjectConfig
from engine.drive.explanation import Explanation, explain_customer
from engine.drive.memory_reads import MemoryExplainReads
from engine.events import Event
from engine.journeys.customers import Resolved
from engine.journeys.memory_customers import InMemoryCustomers
from engine.journeys.partitioned import LinkedKeys
from engine.journeys.simulate import ordered_events, run_clock, run_engine
from engine.profiles import candidate_keys
from engine.state.profile import CustomerState


@dataclass(frozen=True, slots=True)
class SimulatedCustomer:
    """A customer of a simulation, as it ended, and why they got what they got."""

    customer_id: str
    state: CustomerState
    explanation: Explanation


def own_events(ordered: list[Event], keys: list[str], phone_region: str) -> list[Event]:
    """The events of the identity groups any of ``keys`` is in, in order (every event when
    none is)."""
    linked = LinkedKeys(ordered, phone_region)
    mine = {linked.root(key) for key in keys if linked.carried(key)}
    if not mine:
        return ordered
    groups = linked.groups()
    return [event for event, group in zip(ordered, groups, strict=True) if group in mine]


def explain_simulated(
    campaigns: Iterable[Campaign],
    events: Iterable[Event],
    config: ProjectConfig,
    reference: str,
    campaign_id: str | None = None,
    until: datetime | None = None,
    templates: Path | None = None,
) -> SimulatedCustomer | None:
    """The simulated customer known as ``reference`` (a customer id, userId, email, phone or
    anonymousId), with the explanation of their decisions (of ``campaign_id`` only, if given);
    ``None`` when no event names them."""
    ordered = ordered_events(events, until)
    if not ordered:
        return None
    keys = [reference.strip(), *candidate_keys(reference, config.phone_region)]
    part = own_events(ordered, keys, config.phone_region)
    merged_into: dict[str, str] = {}

    def record(_event: Event, resolved: Resolved) -> None:
        for merged_id in resolved.merged:
            merged_into[merged_id] = resolved.customer_id

    engine, _bodies = run_engine(
        list(campaigns), part, config, run_clock(ordered, until), templates, record
    )
    customers = engine.customers
    assert isinstance(customers, InMemoryCustomers)
    customer_id = customers.find(keys)
    if customer_id is None:
        return None
    reads = MemoryExplainReads(engine, merged_into)
    explanation = explain_customer(reads, customer_id, campaign_id)
    return SimulatedCustomer(customer_id, customers.state(customer_id), explanation)
